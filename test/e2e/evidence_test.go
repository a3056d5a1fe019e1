package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"fieldvideo/internal/auth"
	"fieldvideo/internal/recorder"
	"fieldvideo/internal/testkit"
	"fieldvideo/internal/whip"
)

// watchVideo opens a WHEP viewer of source and returns a function that
// reports whether a keyframe arrived after a time.
func watchVideo(t *testing.T, sfu, tok, source string) func(since time.Time) bool {
	t.Helper()
	api, err := whip.NewAPI(whip.APIParams{LoopbackOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	w := &h264Watch{nals: map[byte]int{}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := whip.View(ctx, whip.ViewerParams{Endpoint: whip.Endpoint(sfu, source, "whep"), Client: &whip.Client{Token: tok}, API: api, OnPacket: w.on})
	if err != nil {
		t.Fatalf("view %s: %v", source, err)
	}
	t.Cleanup(func() { v.Close() })
	return w.keyframeSince
}

func hasAlarm(v recorder.View, kind, text string) bool {
	for _, a := range v.Alarms {
		if a.Kind == kind && strings.Contains(a.Message, text) {
			return true
		}
	}
	return false
}

func s3Env(prefix, role string, s *testkit.S3Server) []string {
	k := prefix + "_RECORD_" + strings.ToUpper(role) + "_"
	return []string{k + "TYPE=s3", k + "S3_ENDPOINT=" + s.Endpoint, k + "S3_BUCKET=" + s.Bucket,
		k + "S3_REGION=" + s.Region, k + "S3_ACCESS_KEY=" + s.AccessKey, k + "S3_SECRET_KEY=" + s.SecretKey}
}

func s3Keys(t *testing.T, s *testkit.S3Server, source string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for o := range s.Client().ListObjects(context.Background(), s.Bucket, minio.ListObjectsOptions{Prefix: "rec/incident/" + source + "/", Recursive: true}) {
		if o.Err != nil {
			t.Fatalf("list %s: %v", s, o.Err)
		}
		out[o.Key] = o.ETag
	}
	return out
}

// Ingest starts at a site whose recording stores cannot be reached (a WAN
// outage at boot): live video reaches the wall, segments wait in the spool,
// the API says which site is down and why, and they arrive at both sites
// once the stores answer.
func TestIngestStartsWithStoresDown(t *testing.T) {
	primary := testkit.StartMinIO(t, testkit.S3ServerParams{})
	offsite := testkit.StartVersityGW(t, testkit.S3ServerParams{})
	primary.Stop()
	offsite.Stop()

	camAddr := fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t))
	startCamera(t, camAddr)
	_, sfu := startSFU(t, "127.0.0.1:0")
	env := append(s3Env("FV_INGEST", "primary", primary), s3Env("FV_INGEST", "offsite", offsite)...)
	start := time.Now()
	in := startIngest(t, sfu, fmt.Sprintf(`[{name: cam1, url: "rtsp://%s/cam1"}]`, camAddr), env...)
	t.Logf("ingest listening %s after start with both stores down", time.Since(start).Round(time.Millisecond))
	operator := token(t, auth.RoleOperator, nil, []string{"*"})
	waitState(t, sfu, operator, "cam1", "live", 20*time.Second)
	keyframeSince := watchVideo(t, sfu, operator, "cam1")
	testkit.WaitFor(t, 15*time.Second, "a keyframe of cam1 on a WHEP viewer", func() bool { return keyframeSince(start) })

	api := "http://" + in.listen["api"]
	testkit.WaitFor(t, 30*time.Second, "segments spooled and both sites reported down", func() bool {
		v := recording(t, api, operator)
		return v.SpoolSegments >= 2 && hasAlarm(v, "store_down", "primary") && hasAlarm(v, "store_down", "offsite")
	})
	v := recording(t, api, operator)
	t.Logf("while the stores are down: %d segments spooled, alarms %+v", v.SpoolSegments, v.Alarms)

	primary.Start()
	offsite.Start()
	testkit.WaitFor(t, 60*time.Second, "the spooled segments at both sites", func() bool {
		v := recording(t, api, operator)
		return !hasAlarm(v, "store_down", "") && v.Stores[0].BacklogSegs == 0 && v.Stores[1].BacklogSegs == 0 && v.Stores[1].Uploaded >= 2
	})
	a, b := s3Keys(t, primary, "cam1"), s3Keys(t, offsite, "cam1")
	if len(a) < 4 || len(a) != len(b) {
		t.Fatalf("%d objects of cam1 at the primary, %d off-site", len(a), len(b))
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			t.Fatalf("%s is at the primary only", k)
		}
	}
}

// Ingest is killed and restarted: the camera is back on the wall within
// seconds (the SFU lets ingest's new session replace its stale one), and
// the recordings lose at most the part being written.
func TestIngestCrashAndRestart(t *testing.T) {
	camAddr := fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t))
	startCamera(t, camAddr)
	_, sfu := startSFU(t, "127.0.0.1:0")
	spool := filepath.Join(t.TempDir(), "spool")
	cams := fmt.Sprintf(`[{name: cam1, url: "rtsp://%s/cam1"}]`, camAddr)
	in := startIngest(t, sfu, cams, "FV_INGEST_RECORD_SPOOL_DIR="+spool)
	wall := token(t, auth.RoleWall, nil, []string{"*"})
	waitState(t, sfu, wall, "cam1", "live", 20*time.Second)
	keyframeSince := watchVideo(t, sfu, wall, "cam1")
	testkit.WaitFor(t, 15*time.Second, "cam1 on the viewer", func() bool { return keyframeSince(time.Time{}) })
	s := storesOf(t)
	testkit.WaitFor(t, 30*time.Second, "recording under way", func() bool { return len(testkit.Segments(s.offsite, "cam1")) >= 2 })

	// Kill at a random moment of the camera's GOP and of the recorder's
	// parts, not just after a segment was uploaded, so the figures logged
	// are fair.
	time.Sleep(rand.N(2 * time.Second))
	in.kill()
	killed := time.Now()
	startIngest(t, sfu, cams, "FV_INGEST_RECORD_SPOOL_DIR="+spool)
	restarted := time.Now()
	testkit.WaitFor(t, 15*time.Second, "a new keyframe of cam1 on the same viewer", func() bool { return keyframeSince(restarted) })
	back := time.Since(restarted)
	t.Logf("cam1 back on the WHEP viewer %s after ingest restarted (%s after the kill)", back.Round(time.Millisecond), time.Since(killed).Round(time.Millisecond))
	if back > 5*time.Second {
		t.Fatalf("cam1 came back %s after ingest restarted", back)
	}

	// The segment cut by the kill is recovered: the recordings reach to
	// within the part being written of the kill.
	var last time.Time
	testkit.WaitFor(t, 30*time.Second, "the recovered segment at both sites", func() bool {
		last = time.Time{}
		for _, seg := range testkit.Segments(s.offsite, "cam1") {
			ki, err := recorder.ParseKey(strings.TrimPrefix(filepath.ToSlash(strings.TrimPrefix(seg, s.offsite)), "/"))
			if err != nil {
				t.Fatal(err)
			}
			if end := ki.Start.Add(ki.Duration); end.Before(killed.Add(time.Second)) && end.After(last) {
				last = end
			}
		}
		return killed.Sub(last) < 3*time.Second
	})
	t.Logf("media lost to the kill: %s (the recordings end that long before it; a part is %s)", killed.Sub(last).Round(10*time.Millisecond), time.Second)
}
