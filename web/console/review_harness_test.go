package console_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fieldvideo/internal/auth"
	"fieldvideo/internal/playback"
	"fieldvideo/internal/recorder"
	"fieldvideo/internal/store"
	"fieldvideo/internal/testkit"
)

const reviewIncident = "inc-1"

// reviewRecording is what recordReview made: sources recorded from one live test pattern,
// in a filesystem store per site.
type reviewRecording struct {
	primary, offsite store.Store
	// full are the sources recorded from the start; late the one recorded only in the second
	// half.
	full []string
	late string
}

// recordReview records one live test pattern (H.264 and Opus) as the sources full for about
// 2·keyframes keyframe intervals (2 s each), and as late only over the second half. One
// encoder feeds every source: the same frames, with the same capture times, under each name.
func recordReview(t *testing.T, full []string, late string, keyframes uint64) *reviewRecording {
	t.Helper()
	dir := t.TempDir()
	rec := &reviewRecording{full: full, late: late}
	var err error
	if rec.primary, err = store.NewFS("primary", filepath.Join(dir, "primary")); err != nil {
		t.Fatal(err)
	}
	if rec.offsite, err = store.NewFS("offsite", filepath.Join(dir, "offsite")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel() // ends ffmpeg once the recording is made
	st := testkit.LiveStream(t, ctx, "review", true)
	testkit.WaitKeyframes(t, st, 1, 20*time.Second)

	r, err := recorder.New(recorder.Params{SpoolDir: filepath.Join(dir, "spool"), Incident: reviewIncident,
		SegmentDuration: 2 * time.Second, PartDuration: 500 * time.Millisecond, Primary: rec.primary, Offsite: rec.offsite,
		RetryMin: 50 * time.Millisecond, RetryMax: 500 * time.Millisecond, UploadTimeout: 10 * time.Second,
		Log: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = r.Run(rctx); close(done) }()
	defer func() { rcancel(); <-done; r.Close() }()

	for _, name := range full {
		if _, err := r.Record(name, st); err != nil {
			t.Fatal(err)
		}
	}
	k := st.Stats().Keyframes
	testkit.WaitKeyframes(t, st, k+keyframes, time.Duration(keyframes)*4*time.Second+20*time.Second)
	if late != "" {
		if _, err := r.Record(late, st); err != nil {
			t.Fatal(err)
		}
	}
	testkit.WaitKeyframes(t, st, k+2*keyframes, time.Duration(keyframes)*4*time.Second+20*time.Second)
	sctx, scancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer scancel()
	if left := r.Stop(sctx); left[0].Segments+left[1].Segments != 0 {
		t.Fatalf("segments left in the spool at stop: %+v", left)
	}
	return rec
}

// reviewServer is an SFU serving the console and the playback API over a recording.
type reviewServer struct {
	*wallSFU
	reviewer string
}

func startReviewServer(t *testing.T, rec *reviewRecording) *reviewServer {
	t.Helper()
	pb, err := playback.New(playback.Params{Sites: []store.Store{rec.primary, rec.offsite},
		Refresh: 200 * time.Millisecond, FullRefresh: time.Second, HealthInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = pb.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	v, err := auth.NewVerifier(testSecret, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := startSFUWithRoutes(t, func(mux *http.ServeMux) { pb.Routes(mux, v, reviewIncident, "", nil) })
	return &reviewServer{wallSFU: h, reviewer: h.token(auth.Claims{Role: auth.RoleReviewer})}
}

// span is a recorded range of capture time.
type span struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// coverage asks the playback API what each source holds between from and to.
func (s *reviewServer) coverage(from, to time.Time, sources ...string) map[string][]span {
	s.t.Helper()
	q := url.Values{"incident": {reviewIncident}, "source": sources,
		"start": {from.UTC().Format(time.RFC3339Nano)}, "end": {to.UTC().Format(time.RFC3339Nano)}}
	var out struct {
		Sources []struct {
			Source string `json:"source"`
			Ranges []span `json:"ranges"`
		} `json:"sources"`
	}
	s.getJSON("/v1/recordings/coverage?"+q.Encode(), &out)
	m := map[string][]span{}
	for _, c := range out.Sources {
		m[c.Source] = c.Ranges
	}
	return m
}

// recorded returns the span of capture time the sources were recorded over.
func (s *reviewServer) recorded(sources ...string) (first, last time.Time) {
	s.t.Helper()
	var out struct {
		Incidents []struct {
			Incident string `json:"incident"`
			Sources  []struct {
				Source      string `json:"source"`
				First, Last time.Time
			} `json:"sources"`
		} `json:"incidents"`
	}
	s.getJSON("/v1/recordings", &out)
	for _, inc := range out.Incidents {
		if inc.Incident != reviewIncident {
			continue
		}
		for _, src := range inc.Sources {
			for _, want := range sources {
				if src.Source != want {
					continue
				}
				if first.IsZero() || src.First.Before(first) {
					first = src.First
				}
				if src.Last.After(last) {
					last = src.Last
				}
			}
		}
	}
	if first.IsZero() {
		s.t.Fatalf("GET /v1/recordings lists none of %v", sources)
	}
	return first, last
}

func (s *reviewServer) getJSON(path string, v any) {
	s.t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.base+path, nil)
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.reviewer)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK {
		s.t.Fatalf("GET %s: %s: %s", path, res.Status, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		s.t.Fatalf("GET %s: %v: %s", path, err, b)
	}
}

// reviewURL is the address of the review page for sources over [from, to], opened at t.
func (s *reviewServer) reviewURL(sources []string, from, to, at time.Time) string {
	q := url.Values{"token": {s.reviewer}, "incident": {reviewIncident}, "sources": {strings.Join(sources, ",")},
		"start": {ms(from)}, "end": {ms(to)}, "t": {ms(at)}}
	return s.base + "/review.html?" + q.Encode()
}

func ms(t time.Time) string { return fmt.Sprint(t.UnixMilli()) }
