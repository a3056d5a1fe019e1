package e2e

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fieldvideo/internal/auth"
	"fieldvideo/internal/mp4"
	"fieldvideo/internal/testkit"
	"fieldvideo/testbench/democam/truth"
)

// firstShown returns the true capture time (from its SEI) of the first
// video frame a player shows from a stitched stream: the first sample
// presented at or after time zero once the edit list is applied.
func firstShown(t *testing.T, b []byte) time.Time {
	t.Helper()
	sc, err := mp4.Scan(b)
	if err != nil {
		t.Fatal(err)
	}
	samples, err := mp4.ReadSamples(b, sc)
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range sc.Tracks {
		if tr.Handler != "vide" {
			continue
		}
		var best *mp4.Sample
		for k := range samples[tr.ID] {
			s := &samples[tr.ID][k]
			if p := int64(s.DTS) + int64(s.PTSOffset) - tr.EditMediaTime; p >= 0 && (best == nil || p < int64(best.DTS)+int64(best.PTSOffset)-tr.EditMediaTime) {
				best = s
			}
		}
		if best == nil {
			t.Fatal("no video sample presented at or after time zero")
		}
		for d := best.Data; len(d) > 4; {
			n := int(binary.BigEndian.Uint32(d))
			if n <= 0 || n > len(d)-4 {
				break
			}
			if at, found, err := truth.ParseSEI(d[4 : 4+n]); err == nil && found {
				return at
			}
			d = d[4+n:]
		}
		t.Fatal("the first frame shown carries no true capture time")
	}
	t.Fatal("no video track")
	return time.Time{}
}

// A reviewer plays two cameras recorded at the edge from the same instant,
// through the SFU's playback API: the first frame each shows was captured
// at the asked instant (its true capture time, carried in the video), so
// the two line up; the file decodes cleanly.
func TestReviewPlaysCamerasInSync(t *testing.T) {
	camAddr := fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t))
	args := []string{"-listen", camAddr, "-cameras", "3", "-sei",
		"-clock", "1:" + syncCameras[0].clock, "-clock", "3:" + syncCameras[2].clock}
	cams := testkit.Start(t, context.Background(), bin+"/democam", args...)
	testkit.WaitFor(t, 10*time.Second, "the cameras to listen", func() bool {
		if cams.Exited() {
			t.Fatalf("democam exited: %v\n%s", cams.Err(), cams.Output())
		}
		return strings.Contains(cams.Output(), "demo cameras ready")
	})
	_, sfu := startSFU(t, "127.0.0.1:0")
	startIngest(t, sfu, fmt.Sprintf(`[{name: cam1, url: "rtsp://%s/cam1", transport: tcp}, {name: cam3, url: "rtsp://%s/cam3", transport: tcp}]`, camAddr, camAddr))
	s := storesOf(t)
	testkit.WaitFor(t, 60*time.Second, "five segments of each camera off-site", func() bool {
		return len(testkit.Segments(s.offsite, "cam1")) >= 5 && len(testkit.Segments(s.offsite, "cam3")) >= 5
	})

	reviewer := token(t, auth.RoleReviewer, nil, nil)
	get := func(path string, q url.Values) (*http.Response, []byte) {
		t.Helper()
		q.Set("token", reviewer)
		res, err := http.Get(sfu + path + "?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, res.StatusCode, b)
		}
		return res, b
	}
	now := time.Now()
	_, b := get("/v1/recordings/coverage", url.Values{"source": {"cam1", "cam3"}, "start": {now.Add(-time.Minute).Format(time.RFC3339Nano)}, "end": {now.Format(time.RFC3339Nano)}})
	var cov struct {
		Site    string
		Sources []struct {
			Source string
			Ranges []struct{ Start, End time.Time }
		}
	}
	if err := json.Unmarshal(b, &cov); err != nil {
		t.Fatal(err)
	}
	from := cov.Sources[0].Ranges[0].Start
	for _, c := range cov.Sources {
		if len(c.Ranges) != 1 {
			t.Fatalf("%s: ranges %+v", c.Source, c.Ranges)
		}
		if c.Ranges[0].Start.After(from) {
			from = c.Ranges[0].Start
		}
	}
	// An instant between frames and between keyframes, in both recordings.
	at := from.Add(3*time.Second + 517*time.Millisecond)

	var at2 struct {
		Sources []struct {
			Source           string
			Present          bool
			TimeTrust        string   `json:"time_trust"`
			AlignmentErrorMS *float64 `json:"alignment_error_ms"`
		}
	}
	_, b = get("/v1/recordings/at", url.Values{"source": {"cam1", "cam3"}, "t": {at.Format(time.RFC3339Nano)}})
	if err := json.Unmarshal(b, &at2); err != nil {
		t.Fatal(err)
	}
	shown := map[string]time.Time{}
	var slackSum time.Duration
	for i, src := range []string{"cam1", "cam3"} {
		a := at2.Sources[i]
		if !a.Present || a.TimeTrust != "sender-reports" {
			t.Fatalf("%s at %s: %+v", src, at.Format(time.RFC3339Nano), a)
		}
		res, body := get("/v1/recordings/stream", url.Values{"source": {src}, "start": {at.Format(time.RFC3339Nano)}, "duration": {"3"}})
		if res.Header.Get("X-Capture-Start") != at.UTC().Format(time.RFC3339Nano) || res.Header.Get("X-Playback-Site") != "primary" {
			t.Fatalf("%s: headers %v", src, res.Header)
		}
		shown[src] = firstShown(t, body)
		errMS := 0.0
		if a.AlignmentErrorMS != nil {
			errMS = *a.AlignmentErrorMS
		}
		// 25 fps: the frame shown at the instant was captured within one
		// frame after it (or at it), give or take the alignment error.
		d := shown[src].Sub(at)
		slack := time.Duration((errMS + 2) * float64(time.Millisecond))
		slackSum += slack
		if d < -slack || d > 40*time.Millisecond+slack {
			t.Errorf("%s: asked %s, the first frame shown was captured at %s (%s off; alignment error %.1f ms)",
				src, at.Format(time.RFC3339Nano), shown[src].Format(time.RFC3339Nano), d, errMS)
		}
		t.Logf("%s: first frame shown captured %s after the asked instant (alignment error %.1f ms)", src, d, errMS)
		p := filepath.Join(t.TempDir(), src+".mp4")
		if err := os.WriteFile(p, body, 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(testkit.FFprobePath, "-v", "error", "-show_entries", "stream=codec_name", "-of", "csv", p)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if out, err := cmd.Output(); err != nil || stderr.Len() > 0 || !strings.Contains(string(out), "h264") {
			t.Fatalf("ffprobe %s: %v %s %s", src, err, out, stderr.String())
		}
	}
	// Each camera shows its first frame at or after the instant, so the two
	// are captured less than one frame apart, give or take each camera's
	// alignment error: one can be placed a little late and the other a
	// little early.
	if d := shown["cam1"].Sub(shown["cam3"]).Abs(); d > 40*time.Millisecond+slackSum {
		t.Errorf("the two cameras' first frames were captured %s apart (more than one frame and both alignment errors, %s)", d, slackSum)
	}
}
