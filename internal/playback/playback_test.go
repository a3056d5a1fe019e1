package playback

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"fieldvideo/internal/auth"
	"fieldvideo/internal/store"
	"fieldvideo/internal/testkit"
)

// recorded is a source recorded in two sessions (two recorders, as across
// a restart) with a gap between them, at MinIO (primary) and versitygw
// (off-site).
type recorded struct {
	primary, offsite       store.Store
	minio, versity         *testkit.S3Server
	first, gapFrom, gapTo  time.Time
	last                   time.Time
	firstSeg               recorderSeg
	sessionOne, sessionTwo []recorderSeg
}

type recorderSeg struct {
	key        string
	start, end time.Time
}

func segsOf(t testing.TB, st store.Store, source string) []recorderSeg {
	t.Helper()
	x := newIndex(st, time.Hour, time.Hour)
	if err := x.refresh(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	var out []recorderSeg
	x.mu.Lock()
	defer x.mu.Unlock()
	if si := x.source(incident, source, false); si != nil {
		for _, s := range si.segs {
			out = append(out, recorderSeg{key: s.key, start: s.start, end: s.end})
		}
	}
	return out
}

// record makes the recordings: cam1 (H.264 and Opus) for two sessions
// with a gap of at least two keyframe intervals between them.
func record(t *testing.T) *recorded {
	rec := &recorded{minio: testkit.StartMinIO(t, testkit.S3ServerParams{}), versity: testkit.StartVersityGW(t, testkit.S3ServerParams{})}
	rec.primary, rec.offsite = s3Store(t, "primary", rec.minio), s3Store(t, "offsite", rec.versity)
	st := testkit.LiveStream(t, context.Background(), "cam1", true)
	testkit.WaitKeyframes(t, st, 1, 20*time.Second)

	one := startSession(t, rec.primary, rec.offsite)
	stop, err := one.r.Record("cam1", st)
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 40*time.Second, "four segments of the first session at both sites", func() bool {
		s := one.r.Stats()
		return s.Stores[0].Uploaded >= 4 && s.Stores[1].Uploaded >= 4
	})
	stop()
	one.stop(t)
	rec.sessionOne = segsOf(t, rec.offsite, "cam1")

	// The gap: two keyframe intervals (4 s) pass unrecorded.
	k := st.Stats().Keyframes
	testkit.WaitKeyframes(t, st, k+2, 20*time.Second)

	two := startSession(t, rec.primary, rec.offsite)
	stop, err = two.r.Record("cam1", st)
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 40*time.Second, "three segments of the second session at both sites", func() bool {
		s := two.r.Stats()
		return s.Stores[0].Uploaded >= 3 && s.Stores[1].Uploaded >= 3
	})
	stop()
	two.stop(t)
	all := segsOf(t, rec.offsite, "cam1")
	rec.sessionTwo = all[len(rec.sessionOne):]
	if len(rec.sessionOne) < 4 || len(rec.sessionTwo) < 3 {
		t.Fatalf("recorded %d and %d segments", len(rec.sessionOne), len(rec.sessionTwo))
	}
	rec.first, rec.last = all[0].start, all[len(all)-1].end
	rec.gapFrom, rec.gapTo = rec.sessionOne[len(rec.sessionOne)-1].end, rec.sessionTwo[0].start
	rec.firstSeg = all[0]
	t.Logf("recorded %s..%s, gap %s..%s (%s), %d+%d segments", ts(rec.first), ts(rec.last), ts(rec.gapFrom), ts(rec.gapTo),
		rec.gapTo.Sub(rec.gapFrom), len(rec.sessionOne), len(rec.sessionTwo))
	return rec
}

func prevEnd(segs []recorderSeg, s recorderSeg) time.Time {
	for i := 1; i < len(segs); i++ {
		if segs[i].key == s.key {
			return segs[i-1].end
		}
	}
	return time.Time{}
}

func TestPlayback(t *testing.T) {
	rec := record(t)
	srv := startServer(t, rec.primary, rec.offsite)

	t.Run("list", func(t *testing.T) {
		var out struct {
			Site      string
			Incidents []IncidentSummary
		}
		srv.getJSON(t, "/v1/recordings", nil, &out)
		if out.Site != "primary" || len(out.Incidents) != 1 || out.Incidents[0].Incident != incident ||
			len(out.Incidents[0].Sources) != 1 || out.Incidents[0].Sources[0].Source != "cam1" {
			t.Fatalf("%+v", out)
		}
	})

	t.Run("coverage", func(t *testing.T) {
		var out struct {
			Site    string
			Sources []Coverage
		}
		from, to := rec.first.Add(-time.Minute), rec.last.Add(time.Minute)
		srv.getJSON(t, "/v1/recordings/coverage", url.Values{"source": {"cam1"}, "start": {ts(from)}, "end": {ts(to)}}, &out)
		c := out.Sources[0]
		if len(c.Ranges) != 2 || len(c.Gaps) != 3 {
			t.Fatalf("ranges %+v gaps %+v", c.Ranges, c.Gaps)
		}
		if !c.Ranges[0].Start.Equal(rec.first) || !c.Ranges[0].End.Equal(rec.gapFrom) ||
			!c.Ranges[1].Start.Equal(rec.gapTo) || !c.Ranges[1].End.Equal(rec.last) {
			t.Fatalf("ranges %+v, want %s..%s and %s..%s", c.Ranges, ts(rec.first), ts(rec.gapFrom), ts(rec.gapTo), ts(rec.last))
		}
		if g := c.Gaps[1]; !g.Start.Equal(rec.gapFrom) || !g.End.Equal(rec.gapTo) {
			t.Fatalf("inner gap %+v", g)
		}
	})

	t.Run("stream from mid-segment", func(t *testing.T) {
		// 1.3 s into the first segment: between keyframes (every 2 s).
		seg := rec.sessionOne[0]
		at := seg.start.Add(1300 * time.Millisecond)
		code, h, body := srv.get(t, srv.reviewer, "/v1/recordings/stream",
			url.Values{"source": {"cam1"}, "start": {ts(at)}, "duration": {"5"}})
		if code != http.StatusOK {
			t.Fatalf("%d %s", code, body)
		}
		if got := h.Get("X-Capture-Start"); got != ts(at) {
			t.Fatalf("X-Capture-Start %s, asked %s", got, ts(at))
		}
		key, _ := time.Parse(time.RFC3339Nano, h.Get("X-Capture-Keyframe"))
		if key.After(at) || at.Sub(key) > 2*time.Second {
			t.Fatalf("decoding starts at the keyframe of %s for %s", ts(key), ts(at))
		}
		p := ffprobe(t, writeFile(t, body))
		kinds := map[string]string{}
		for _, s := range p.Streams {
			kinds[s.CodecType] = s.CodecName
		}
		if kinds["video"] != "h264" || kinds["audio"] != "opus" {
			t.Fatalf("streams %v", kinds)
		}
		firstV, lastV, n := math.Inf(1), 0.0, 0
		for _, f := range p.Frames {
			if f.MediaType == "video" && ptime(f.PTSTime) >= 0 {
				firstV, lastV = math.Min(firstV, ptime(f.PTSTime)), math.Max(lastV, ptime(f.PTSTime))
				n++
			}
		}
		// The first frame shown is the one captured at the asked instant:
		// presentation time zero is the asked capture time.
		if firstV > 0.040 {
			t.Fatalf("first video frame at %.3f s, want within one frame (40 ms) of 0", firstV)
		}
		if lastV < 4.8 || n < 115 || n > 130 {
			t.Fatalf("%d video frames up to %.3f s for 5 s", n, lastV)
		}
		t.Logf("stream from %s: keyframe %s before, first frame at %.3f s, %d frames, %d bytes", ts(at), at.Sub(key), firstV, n, len(body))
	})

	t.Run("stream from just after a segment's start", func(t *testing.T) {
		// The segment before ends with audio reaching past the cut; decoding
		// still starts at the asked segment's own keyframe, not the one before.
		for _, seg := range rec.sessionOne[1:] {
			at := seg.start.Add(time.Millisecond)
			code, h, body := srv.get(t, srv.reviewer, "/v1/recordings/stream",
				url.Values{"source": {"cam1"}, "start": {ts(at)}, "duration": {"1"}})
			if code != http.StatusOK {
				t.Fatalf("%d %s", code, body)
			}
			key, _ := time.Parse(time.RFC3339Nano, h.Get("X-Capture-Keyframe"))
			if key.Before(seg.start) || !key.Before(at) {
				t.Fatalf("from %s (segment %s, the one before ends %s): decoding starts at the keyframe of %s, want the segment's own in [%s, %s)",
					ts(at), seg.key, ts(prevEnd(rec.sessionOne, seg)), ts(key), ts(seg.start), ts(at))
			}
		}
	})

	t.Run("byte ranges", func(t *testing.T) {
		// A media element asks by range: the whole stream has a length,
		// and any part of it is served.
		q := url.Values{"source": {"cam1"}, "start": {ts(rec.sessionOne[0].start.Add(700 * time.Millisecond))}, "duration": {"4"}, "token": {srv.reviewer}}
		ranged := func(rg string) (*http.Response, []byte) {
			req, _ := http.NewRequest(http.MethodGet, srv.base+"/v1/recordings/stream?"+q.Encode(), nil)
			req.Header.Set("Range", rg)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			b, err := io.ReadAll(res.Body)
			if err != nil {
				t.Fatal(err)
			}
			return res, b
		}
		res, whole := ranged("bytes=0-")
		if res.StatusCode != http.StatusPartialContent || res.ContentLength != int64(len(whole)) || res.Header.Get("X-Capture-Start") != q.Get("start") {
			t.Fatalf("bytes=0-: %d, length %d of %d, %v", res.StatusCode, res.ContentLength, len(whole), res.Header)
		}
		ffprobe(t, writeFile(t, whole))
		res, part := ranged("bytes=1000-1999")
		if res.StatusCode != http.StatusPartialContent || !bytes.Equal(part, whole[1000:2000]) ||
			res.Header.Get("Content-Range") != fmt.Sprintf("bytes 1000-1999/%d", len(whole)) {
			t.Fatalf("bytes=1000-1999: %d %q, %d bytes", res.StatusCode, res.Header.Get("Content-Range"), len(part))
		}
		res, _ = ranged(fmt.Sprintf("bytes=%d-", len(whole)+10))
		if res.StatusCode != http.StatusRequestedRangeNotSatisfiable {
			t.Fatalf("a range past the end: %d", res.StatusCode)
		}
	})

	t.Run("stream across the gap and the restart", func(t *testing.T) {
		from := rec.sessionOne[len(rec.sessionOne)-2].start
		to := rec.sessionTwo[1].end
		code, h, body := srv.get(t, srv.reviewer, "/v1/recordings/stream",
			url.Values{"source": {"cam1"}, "start": {ts(from)}, "end": {ts(to)}})
		if code != http.StatusOK || h.Get("X-Playback-Skipped") != "" || h.Get("X-Playback-Ended") != "" {
			t.Fatalf("%d skipped %q ended %q %s", code, h.Get("X-Playback-Skipped"), h.Get("X-Playback-Ended"), body[:min(len(body), 200)])
		}
		p := ffprobe(t, writeFile(t, body))
		// Frames keep their capture times: none falls in the gap, and
		// the first after it is presented at the gap's end.
		gapA, gapB := rec.gapFrom.Sub(from).Seconds(), rec.gapTo.Sub(from).Seconds()
		after := math.Inf(1)
		for _, f := range p.Frames {
			pt := ptime(f.PTSTime)
			if f.MediaType != "video" || pt < 0 {
				continue
			}
			if pt > gapA+0.05 && pt < gapB-0.05 {
				t.Fatalf("a video frame at %.3f s, inside the gap %.3f..%.3f", pt, gapA, gapB)
			}
			if pt >= gapB-0.05 {
				after = math.Min(after, pt)
			}
		}
		if math.Abs(after-gapB) > 0.045 {
			t.Fatalf("first frame after the gap at %.3f s, the second session starts at %.3f s", after, gapB)
		}
	})

	t.Run("at", func(t *testing.T) {
		var out struct {
			Site    string
			Sources []SourceAt
		}
		in := rec.sessionOne[2].start.Add(500 * time.Millisecond)
		srv.getJSON(t, "/v1/recordings/at", url.Values{"source": {"cam1"}, "t": {ts(in)}}, &out)
		a := out.Sources[0]
		if !a.Present || a.Segment != rec.sessionOne[2].key || a.OffsetMS == nil || math.Abs(*a.OffsetMS-500) > 2 || a.CaptureStart == nil {
			t.Fatalf("%+v", a)
		}
		gap := rec.gapFrom.Add(rec.gapTo.Sub(rec.gapFrom) / 2)
		srv.getJSON(t, "/v1/recordings/at", url.Values{"source": {"cam1"}, "t": {ts(gap)}}, &out)
		a = out.Sources[0]
		if a.Present || a.PreviousEnd == nil || !a.PreviousEnd.Equal(rec.gapFrom) || a.NextStart == nil || !a.NextStart.Equal(rec.gapTo) {
			t.Fatalf("in the gap: %+v", a)
		}
	})

	t.Run("mediamtx list and get", func(t *testing.T) {
		var list []struct {
			Start    time.Time
			Duration float64
			URL      string
		}
		srv.getJSON(t, "/list", url.Values{"path": {"cam1"}, "start": {ts(rec.first.Add(-time.Hour))}}, &list)
		if len(list) != 2 || !list[0].Start.Equal(rec.first) || math.Abs(list[0].Duration-rec.gapFrom.Sub(rec.first).Seconds()) > 0.001 {
			t.Fatalf("%+v", list)
		}
		u, err := url.Parse(list[1].URL)
		if err != nil || u.Path != "/get" {
			t.Fatalf("url %q", list[1].URL)
		}
		code, h, body := srv.get(t, srv.reviewer, "/get", u.Query())
		if code != http.StatusOK || h.Get("Content-Type") != "video/mp4" {
			t.Fatalf("%d %s", code, body)
		}
		p := ffprobe(t, writeFile(t, body))
		if len(p.Frames) == 0 {
			t.Fatal("no frames")
		}
	})

	t.Run("refused", func(t *testing.T) {
		in := ts(rec.first.Add(time.Second))
		wall := mint(t, auth.Claims{Role: auth.RoleWall, View: []string{"*"}})
		cases := []struct {
			name, tok, path string
			q               url.Values
			code            int
			says            string
		}{
			{"no token", "", "/v1/recordings", nil, 401, "token"},
			{"wall token", wall, "/v1/recordings/coverage", url.Values{"source": {"cam1"}, "start": {in}, "duration": {"10"}}, 403, "reviewer"},
			{"unknown incident", srv.reviewer, "/v1/recordings/coverage", url.Values{"incident": {"nope"}, "source": {"cam1"}, "start": {in}, "duration": {"10"}}, 404, `incident "nope"`},
			{"unknown source", srv.reviewer, "/v1/recordings/stream", url.Values{"source": {"cam9"}, "start": {in}, "duration": {"10"}}, 404, `source "cam9"`},
			{"reversed", srv.reviewer, "/v1/recordings/stream", url.Values{"source": {"cam1"}, "start": {in}, "end": {ts(rec.first)}}, 400, "reversed"},
			{"huge", srv.reviewer, "/v1/recordings/coverage", url.Values{"source": {"cam1"}, "start": {in}, "duration": {"900h"}}, 400, "longer than"},
			{"malformed time", srv.reviewer, "/v1/recordings/stream", url.Values{"source": {"cam1"}, "start": {"yesterday"}, "duration": {"10"}}, 400, "RFC 3339"},
			{"no recording", srv.reviewer, "/v1/recordings/stream", url.Values{"source": {"cam1"}, "start": {ts(rec.last.Add(time.Hour))}, "duration": {"10"}}, 404, "no recording"},
			{"slash in source", srv.reviewer, "/v1/recordings/coverage", url.Values{"source": {"../x"}, "start": {in}, "duration": {"10"}}, 400, "not a name"},
			{"source named twice", srv.reviewer, "/v1/recordings/stream", url.Values{"source": {"cam1", "cam1"}, "start": {in}, "duration": {"10"}}, 400, `source "cam1" is named twice`},
			{"bad mediamtx path", srv.reviewer, "/get", url.Values{"path": {"a/b/c"}, "start": {in}, "duration": {"1"}}, 400, "path"},
		}
		for _, c := range cases {
			code, _, body := srv.get(t, c.tok, c.path, c.q)
			if code != c.code || !strings.Contains(string(body), c.says) {
				t.Errorf("%s: %d %q, want %d naming %q", c.name, code, body, c.code, c.says)
			}
		}
		// Every stream slot busy: 503 with Retry-After, not a queue.
		var held []func()
		for {
			rel, err := srv.pb.acquire("")
			if err != nil {
				break
			}
			held = append(held, rel)
		}
		code, h, body := srv.get(t, srv.reviewer, "/v1/recordings/stream", url.Values{"source": {"cam1"}, "start": {in}, "duration": {"1"}})
		for _, rel := range held {
			rel()
		}
		if code != http.StatusServiceUnavailable || h.Get("Retry-After") == "" || !strings.Contains(string(body), "busy") {
			t.Errorf("with %d streams busy: %d %q", len(held), code, body)
		}
		evs := srv.auditEvents(t)
		denied := 0
		for _, ev := range evs {
			if ev.Result == "denied" && ev.Action == "review" {
				denied++
			}
		}
		if denied < len(cases) {
			t.Errorf("%d refusals audited, want %d", denied, len(cases))
		}
	})

	t.Run("export", func(t *testing.T) { testExport(t, rec, srv) })
	t.Run("failover", func(t *testing.T) { testFailover(t, rec, srv) })

	t.Run("missing at the primary", func(t *testing.T) {
		// A segment the primary lacks (an outage's segments reach it only
		// after it is back; or it was lost) is found off-site.
		seg := rec.sessionTwo[0]
		for _, k := range []string{seg.key, strings.TrimSuffix(seg.key, ".mp4") + ".json"} {
			if err := rec.minio.Client().RemoveObject(context.Background(), rec.minio.Bucket, k, minio.RemoveObjectOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		if err := srv.pb.sites[0].idx.refresh(context.Background(), true); err != nil {
			t.Fatal(err)
		}
		var out struct {
			Site    string
			Sources []Coverage
		}
		srv.getJSON(t, "/v1/recordings/coverage", url.Values{"source": {"cam1"}, "start": {ts(rec.first)}, "end": {ts(rec.last)}}, &out)
		if out.Site != "primary" || len(out.Sources[0].Ranges) != 2 || !out.Sources[0].Ranges[1].Start.Equal(seg.start) {
			t.Fatalf("coverage without the primary's copy: %+v", out)
		}
		code, h, body := srv.get(t, srv.reviewer, "/v1/recordings/stream", url.Values{"source": {"cam1"}, "start": {ts(seg.start.Add(200 * time.Millisecond))}, "duration": {"1"}})
		if code != http.StatusOK || h.Get("X-Playback-Skipped") != "" {
			t.Fatalf("%d skipped %q %s", code, h.Get("X-Playback-Skipped"), body[:min(200, len(body))])
		}
		ffprobe(t, writeFile(t, body))
	})

	t.Run("damaged copy", func(t *testing.T) {
		seg := rec.sessionTwo[1]
		at := seg.start.Add(100 * time.Millisecond)
		// The primary's copy is damaged behind the store's back: playback
		// serves the intact off-site copy.
		corrupt(t, rec.minio, seg.key)
		code, h, body := srv.get(t, srv.reviewer, "/v1/recordings/stream", url.Values{"source": {"cam1"}, "start": {ts(at)}, "duration": {"1"}})
		if code != http.StatusOK || h.Get("X-Playback-Skipped") != "" {
			t.Fatalf("one damaged copy: %d skipped %q", code, h.Get("X-Playback-Skipped"))
		}
		ffprobe(t, writeFile(t, body))
		// Both copies damaged: left out and reported, never served.
		corrupt(t, rec.versity, seg.key)
		code, h, body = srv.get(t, srv.reviewer, "/v1/recordings/stream", url.Values{"source": {"cam1"}, "start": {ts(seg.start.Add(-time.Second))}, "end": {ts(seg.end.Add(time.Second))}})
		if code != http.StatusOK || !strings.Contains(h.Get("X-Playback-Skipped"), seg.key) {
			t.Fatalf("both copies damaged: %d skipped %q", code, h.Get("X-Playback-Skipped"))
		}
		start, err := time.Parse(time.RFC3339Nano, h.Get("X-Capture-Start"))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, f := range ffprobe(t, writeFile(t, body)).Frames {
			at := start.Add(time.Duration(ptime(f.PTSTime) * float64(time.Second)))
			if f.MediaType == "video" && at.After(seg.start.Add(100*time.Millisecond)) && at.Before(seg.end.Add(-100*time.Millisecond)) {
				t.Fatalf("a frame captured at %s, inside the damaged segment %s..%s", ts(at), ts(seg.start), ts(seg.end))
			}
			n++
		}
		if n < 25 {
			t.Fatalf("%d frames around the damaged segment", n)
		}
	})
}

// corrupt flips a byte of an object, writing it back with the server's
// own client (our stores never overwrite).
func corrupt(t *testing.T, s *testkit.S3Server, key string) {
	t.Helper()
	ctx := context.Background()
	obj, err := s.Client().GetObject(ctx, s.Bucket, key, minioGetOptions())
	if err != nil {
		t.Fatal(err)
	}
	b, err := readAllClose(obj)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-10] ^= 0xff
	if err := putObject(ctx, s, key, b); err != nil {
		t.Fatal(err)
	}
}

func minioGetOptions() minio.GetObjectOptions { return minio.GetObjectOptions{} }

func readAllClose(o *minio.Object) ([]byte, error) {
	defer o.Close()
	return io.ReadAll(o)
}

func putObject(ctx context.Context, s *testkit.S3Server, key string, b []byte) error {
	_, err := s.Client().PutObject(ctx, s.Bucket, key, bytes.NewReader(b), int64(len(b)), minio.PutObjectOptions{})
	return err
}

// twoSites returns a primary and an off-site store, each in a directory of
// its own.
func twoSites(t *testing.T) (a, b *store.FS) {
	t.Helper()
	a, err := store.NewFS("primary", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if b, err = store.NewFS("offsite", t.TempDir()); err != nil {
		t.Fatal(err)
	}
	return a, b
}

// A call participant's camera and microphone are recorded as two sources;
// played as the participant, they come as one file with both.
func TestParticipantStream(t *testing.T) {
	a, b := twoSites(t)
	st := testkit.LiveStream(t, context.Background(), "alice", true)
	testkit.WaitKeyframes(t, st, 1, 20*time.Second)
	s := startSession(t, a, b)
	for name, track := range map[string]int{"ops.alice.camera": 0, "ops.alice.microphone": 1} {
		stop, err := s.r.RecordTracks(name, st, []int{track})
		if err != nil {
			t.Fatal(err)
		}
		defer stop()
	}
	testkit.WaitFor(t, 40*time.Second, "three segments of each at both sites", func() bool {
		x := s.r.Stats()
		return x.Stores[0].Uploaded >= 6 && x.Stores[1].Uploaded >= 6
	})
	s.stop(t)
	cam, mic := segsOf(t, b, "ops.alice.camera"), segsOf(t, b, "ops.alice.microphone")
	from := maxTime(cam[0].start, mic[0].start).Add(300 * time.Millisecond)
	srv := startServer(t, a, b)
	code, h, body := srv.get(t, srv.reviewer, "/v1/recordings/stream", url.Values{"participant": {"ops.alice"}, "start": {ts(from)}, "duration": {"3"}})
	if code != http.StatusOK {
		t.Fatalf("%d %s", code, body)
	}
	p := ffprobe(t, writeFile(t, body))
	kinds := map[string]string{}
	frames := map[string]int{}
	for _, s := range p.Streams {
		kinds[s.CodecType] = s.CodecName
	}
	for _, f := range p.Frames {
		if ptime(f.PTSTime) >= 0 {
			frames[f.MediaType]++
		}
	}
	if kinds["video"] != "h264" || kinds["audio"] != "opus" || frames["video"] < 70 || frames["audio"] < 140 {
		t.Fatalf("streams %v, frames %v", kinds, frames)
	}
	if got := h.Get("X-Capture-Start"); got != ts(from) {
		t.Fatalf("X-Capture-Start %s, asked %s", got, ts(from))
	}
	code, _, body = srv.get(t, srv.reviewer, "/v1/recordings/stream", url.Values{"participant": {"ops.bob"}, "start": {ts(from)}, "duration": {"3"}})
	if code != http.StatusNotFound || !strings.Contains(string(body), "participant") {
		t.Fatalf("unknown participant: %d %s", code, body)
	}
}
