package console_test

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"fieldvideo/internal/auth"
	"fieldvideo/internal/recorder"
	"fieldvideo/internal/testkit"
)

// shimScript makes the page reach the SFU's UDP address only through a shim: the SFU's
// candidates point at the shim, and the page sends none of its own, so the SFU learns its
// address from the connectivity checks that come through the shim.
func shimScript(sfuUDP, shim string) string {
	from := " " + strings.Replace(sfuUDP, ":", " ", 1) + " typ"
	to := " " + strings.Replace(shim, ":", " ", 1) + " typ"
	return fmt.Sprintf(`(() => {
	const from = %q, to = %q;
	const rewrite = (s) => s.split(from).join(to);
	const srd = RTCPeerConnection.prototype.setRemoteDescription;
	RTCPeerConnection.prototype.setRemoteDescription = function (d) {
		if (d && typeof d.sdp === 'string') d = { type: d.type, sdp: rewrite(d.sdp) };
		return srd.call(this, d);
	};
	const aic = RTCPeerConnection.prototype.addIceCandidate;
	RTCPeerConnection.prototype.addIceCandidate = function (c) {
		if (c && c.candidate) c = { candidate: rewrite(c.candidate), sdpMid: c.sdpMid, sdpMLineIndex: c.sdpMLineIndex };
		return aic.call(this, c);
	};
	const send = WebSocket.prototype.send;
	WebSocket.prototype.send = function (data) {
		try {
			const m = JSON.parse(data);
			if (m.type === 'candidate' && m.candidate) return;
			if (typeof m.sdp === 'string') {
				m.sdp = m.sdp.split('\r\n').filter((l) => !l.startsWith('a=candidate:')).join('\r\n');
				data = JSON.stringify(m);
			}
		} catch (e) {}
		return send.call(this, data);
	};
})();`, from, to)
}

// recordedSpan is one recorded segment: its span on the common baseline (from its key)
// and its video decode times as ffprobe reads them.
type recordedSpan struct {
	name       string
	start, end time.Time
	dts        []float64
}

// readSegments reads the recorded segments of source under a filesystem store.
func readSegments(t *testing.T, dir, source string) []recordedSpan {
	t.Helper()
	var out []recordedSpan
	for _, p := range testkit.Segments(dir, source) {
		rel, _ := filepath.Rel(dir, p)
		k, err := recorder.ParseKey(filepath.ToSlash(rel))
		if err != nil {
			t.Fatalf("segment %s: %v", p, err)
		}
		cmd := exec.CommandContext(context.Background(), testkit.FFprobePath, "-v", "error", "-select_streams", "v:0",
			"-show_entries", "packet=dts_time", "-of", "csv=p=0", p)
		raw, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("ffprobe %s: %v\n%s", p, err, raw)
		}
		s := recordedSpan{name: filepath.Base(p), start: k.Start, end: k.Start.Add(k.Duration)}
		for _, f := range strings.Fields(string(raw)) {
			v, err := strconv.ParseFloat(strings.TrimSuffix(f, ","), 64)
			if err != nil {
				t.Fatalf("ffprobe %s printed %q, not a decode time", p, f)
			}
			s.dts = append(s.dts, v)
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b recordedSpan) int { return a.start.Compare(b.start) })
	return out
}

// TestCallRecordingCoverage records a call whose commander publishes through a 4G-like
// uplink of 400 kb/s: her camera arrives at whatever simulcast layer fits, and the
// recording of it covers at least 99% of the call, in segments of about their target
// length whose decode times only go forward. The link's short queue drops pieces of her
// keyframes; the recorder waits for their retransmissions instead of losing the picture
// until the next keyframe. When her top layer stops, the recording goes on with the lower
// layer from its last keyframe, kept while the top one was recorded.
func TestCallRecordingCoverage(t *testing.T) {
	h := startCallSFU(t)
	link := testkit.NewShim(t, h.srv.UDPAddr())
	link.LimitUp(400_000)
	alice := &callPage{Page: testkit.PooledPage(t), t: t, name: "alice"}
	alice.Do("initScript", 5*time.Second, map[string]any{"script": shimScript(h.srv.UDPAddr(), link.Addr())})
	alice.Open(callURL(h.base, callRoom, h.callToken("alice", auth.RoleCommander, callRoom)))
	alice.waitFor("in the call", `document.body.dataset.call === 'in-call'`, 20*time.Second)
	bob := openCall(t, "bob", callURL(h.base, callRoom, h.callToken("bob", auth.RoleResponder, callRoom)))
	bob.waitPlaying("alice/camera", 10, 60*time.Second)
	var layer string
	bob.Eval(tileExpr("alice")+`.layer`, &layer)
	t.Logf("bob plays alice's camera (layer %q) through her 400 kb/s uplink", layer)

	const aliceCamera = callRoom + ".alice.camera"
	testkit.WaitFor(t, 40*time.Second, "alice's camera recorded off-site", func() bool { return len(testkit.Segments(h.recDir, aliceCamera)) > 0 })
	// the call goes on for 30 s of recording, then alice leaves.
	first := readSegments(t, h.recDir, aliceCamera)[0].start
	testkit.WaitFor(t, 60*time.Second, "30 s of alice's camera recorded", func() bool { return time.Since(first) > 30*time.Second })
	alice.click("#leave")
	left := time.Now()
	// what she sent before leaving reaches the store: the last segment ends near her leaving.
	var segs []recordedSpan
	testkit.WaitFor(t, 30*time.Second, "alice's last segment off-site", func() bool {
		segs = readSegments(t, h.recDir, aliceCamera)
		return left.Sub(segs[len(segs)-1].end) < 3*time.Second
	})

	callStart, callEnd := segs[0].start, segs[len(segs)-1].end
	var covered, longest time.Duration
	var gaps []string
	cursor := callStart
	for _, s := range segs {
		if s.start.After(cursor) {
			gaps = append(gaps, fmt.Sprintf("%s before %s", s.start.Sub(cursor).Round(time.Millisecond), s.name))
		}
		if s.end.After(cursor) {
			from := s.start
			if cursor.After(from) {
				from = cursor
			}
			covered += s.end.Sub(from)
			cursor = s.end
		}
		longest = max(longest, s.end.Sub(s.start))
		for i := 1; i < len(s.dts); i++ {
			if s.dts[i] <= s.dts[i-1] {
				t.Errorf("segment %s: decode time %.3f s after %.3f s (frame %d)", s.name, s.dts[i], s.dts[i-1], i)
				break
			}
		}
		if len(s.dts) == 0 {
			t.Errorf("segment %s has no video", s.name)
		}
	}
	var lengths []string
	for _, s := range segs {
		lengths = append(lengths, fmt.Sprintf("%.1f", s.end.Sub(s.start).Seconds()))
	}
	t.Logf("alice's camera: segments of %s s", strings.Join(lengths, " "))
	span := callEnd.Sub(callStart)
	pct := 100 * covered.Seconds() / span.Seconds()
	t.Logf("alice's camera: %d segments cover %s of %s (%.2f%%), the longest %s; gaps: %v",
		len(segs), covered.Round(time.Millisecond), span.Round(time.Millisecond), pct, longest.Round(time.Millisecond), gaps)
	if pct < 99 {
		t.Errorf("the recording of alice's camera covers %.2f%% of the call, want at least 99%%", pct)
	}
	if longest > 5*time.Second {
		t.Errorf("a segment of alice's camera runs %s against a 2 s target", longest)
	}
}
