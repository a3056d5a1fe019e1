package recorder

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"fieldvideo/internal/store"
	"fieldvideo/internal/testkit"
)

func s3Store(t *testing.T, name string, s *testkit.S3Server) store.Store {
	t.Helper()
	st, err := s3Config(s).open(name)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// With MinIO as the primary and versitygw as the off-site store: the
// off-site server stops for a while (RPO rises, the primary keeps up), then
// the primary stops (the off-site copy stays current); afterwards both hold
// every segment, verified, and playable end to end.
func TestS3SiteOutages(t *testing.T) {
	prim := testkit.StartMinIO(t, testkit.S3ServerParams{})
	off := testkit.StartVersityGW(t, testkit.S3ServerParams{})
	a, b := s3Store(t, "minio", prim), s3Store(t, "versitygw", off)
	r := startRecorder(t, Params{Primary: a, Offsite: b, SegmentDuration: 2 * time.Second, PartDuration: 500 * time.Millisecond,
		UploadTimeout: 10 * time.Second})
	st := testkit.LiveStream(t, context.Background(), "cam1", true)
	stop, err := r.Record("cam1", st)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	testkit.WaitFor(t, 30*time.Second, "a segment at both sites", func() bool {
		s := r.Stats()
		return s.Stores[0].Uploaded >= 1 && s.Stores[1].Uploaded >= 1
	})

	off.Stop()
	downAt := time.Now()
	testkit.WaitFor(t, 30*time.Second, "RPO above 8 s with versitygw stopped", func() bool { return r.Stats().RPO > 8*time.Second })
	s := r.Stats()
	t.Logf("off-site down %s: RPO %s, off-site backlog %+v, primary backlog %+v", time.Since(downAt).Round(time.Millisecond), s.RPO, s.Stores[1].Backlog, s.Stores[0].Backlog)
	if s.Stores[1].Up || s.Stores[0].Backlog.Segments > 1 {
		t.Fatalf("with the off-site store down: %+v", s.Stores)
	}
	peak := s.RPO
	off.Start()
	testkit.WaitFor(t, 40*time.Second, "RPO back under 5 s", func() bool { return r.Stats().RPO < 5*time.Second })
	t.Logf("off-site back: RPO fell from %s to %s", peak, r.Stats().RPO)

	prim.Stop()
	before := r.Stats().Stores[1].Uploaded
	testkit.WaitFor(t, 30*time.Second, "3 segments off-site with MinIO stopped", func() bool {
		s := r.Stats()
		return s.Stores[1].Uploaded >= before+3 && s.Stores[0].Backlog.Segments >= 3
	})
	if rpo := r.Stats().RPO; rpo > 6*time.Second {
		t.Errorf("RPO %s with only the primary down", rpo)
	}
	prim.Start()
	stop()
	waitDelivered(t, r, 40*time.Second)
	segs, ms := checkSites(t, a, b, "inc-1", "cam1")
	checkPlayback(t, b, segs, ms, []string{"h264", "opus"}, 40*time.Millisecond)
	if s := r.Stats(); s.RPO != 0 || s.Lost != 0 {
		t.Fatalf("after the outages: RPO %s, lost %d", s.RPO, s.Lost)
	}
}

// An off-site server that stops answering (its process frozen: a link into a black hole)
// is reported down within seconds, long before an upload's timeout ends, and up again
// once it answers.
func TestS3SiteHangs(t *testing.T) {
	// MinIO refuses a PUT over an object by itself, so uploads to it skip the Stat
	// before the PUT: a frozen MinIO leaves a PUT waiting for its answer, which the
	// client gives up on only after its 30 s response timeout.
	prim := testkit.StartVersityGW(t, testkit.S3ServerParams{})
	off := testkit.StartMinIO(t, testkit.S3ServerParams{})
	a := s3Store(t, "versitygw", prim)
	// the store's own timeout as deployed (30 s), not the short one of the other tests
	b, err := store.NewS3(store.S3Params{Name: "minio", Endpoint: off.Endpoint, Bucket: off.Bucket, Region: off.Region,
		AccessKey: off.AccessKey, SecretKey: off.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	r := startRecorder(t, Params{Primary: a, Offsite: b, SegmentDuration: 2 * time.Second, PartDuration: 500 * time.Millisecond,
		UploadTimeout: 2 * time.Minute})
	st := testkit.LiveStream(t, context.Background(), "cam1", true)
	stop, err := r.Record("cam1", st)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	testkit.WaitFor(t, 30*time.Second, "two segments at both sites", func() bool {
		s := r.Stats()
		return s.Stores[0].Uploaded >= 2 && s.Stores[1].Uploaded >= 2
	})

	pid := off.Pid()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	frozen := true
	thaw := func() {
		if frozen {
			frozen = false
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	}
	t.Cleanup(thaw)
	at := time.Now()
	testkit.WaitFor(t, 25*time.Second, "the hung off-site store reported down", func() bool {
		s := r.Stats()
		return !s.Stores[1].Up && s.Stores[0].Up && hasAlarm(r.View(), "store_down")
	})
	s := r.Stats()
	t.Logf("off-site frozen: reported down after %s: %s", time.Since(at).Round(100*time.Millisecond), s.Stores[1].LastError)
	if !strings.Contains(s.Stores[1].LastError, "no answer") {
		t.Errorf("the hung store's error %q; want it to say the store does not answer", s.Stores[1].LastError)
	}
	thaw()
	testkit.WaitFor(t, 60*time.Second, "the off-site store up again and caught up", func() bool {
		s := r.Stats()
		return s.Stores[1].Up && s.RPO < 5*time.Second
	})
}
