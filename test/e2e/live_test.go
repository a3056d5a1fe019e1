package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"fieldvideo/internal/auth"
	"fieldvideo/internal/testkit"
	"fieldvideo/internal/unit"
	"fieldvideo/internal/whip"
)

// h264Watch records what a WHEP viewer receives on its video track.
type h264Watch struct {
	mu        sync.Mutex
	nals      map[byte]int
	packets   int
	audio     int
	audioName string
	seqs      []uint64 // unwrapped video sequence numbers, as received
	unwrap    unit.Unwrapper
	lastIDR   time.Time // arrival of the last IDR packet
}

func (w *h264Watch) on(kind webrtc.RTPCodecType, codec string, p *rtp.Packet, at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if kind == webrtc.RTPCodecTypeAudio {
		w.audio++
		w.audioName = codec
		return
	}
	w.unwrap.Bits = 16
	w.seqs = append(w.seqs, w.unwrap.Unwrap(uint64(p.SequenceNumber)))
	w.packets++
	for _, t := range nalTypes(p.Payload) {
		w.nals[t]++
		if t == 5 {
			w.lastIDR = at
		}
	}
}

// keyframeSince reports whether an IDR picture arrived after t.
func (w *h264Watch) keyframeSince(t time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.lastIDR.After(t)
}

// nalTypes lists the H.264 NAL unit types an RTP payload carries or starts.
func nalTypes(b []byte) []byte {
	if len(b) < 1 {
		return nil
	}
	switch t := b[0] & 0x1f; t {
	case 24: // STAP-A
		var out []byte
		for b = b[1:]; len(b) > 2; {
			n := int(b[0])<<8 | int(b[1])
			if n == 0 || len(b) < 2+n {
				break
			}
			out = append(out, b[2]&0x1f)
			b = b[2+n:]
		}
		return out
	case 28: // FU-A: the type of the fragmented unit, on its first fragment
		if len(b) > 1 && b[1]&0x80 != 0 {
			return []byte{b[1] & 0x1f}
		}
		return nil
	default:
		return []byte{t}
	}
}

// snapshot returns what was received; gaps counts sequence numbers never
// received (a packet lost on a loaded loopback and repaired by NACK arrives
// late, out of order, and is not a gap).
func (w *h264Watch) snapshot() (nals map[byte]int, packets, audio, gaps int, audioName string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	nals = map[byte]int{}
	for k, v := range w.nals {
		nals[k] = v
	}
	seqs := slices.Clone(w.seqs)
	slices.Sort(seqs)
	seqs = slices.Compact(seqs)
	for i := 1; i < len(seqs); i++ {
		gaps += int(seqs[i] - seqs[i-1] - 1)
	}
	return nals, w.packets, w.audio, gaps, w.audioName
}

// ffmpeg pushes H.264+Opus by RTSP into ingest; a WHEP client receives
// decodable H.264 from the SFU.
func TestFFmpegPushReachesWHEPViewer(t *testing.T) {
	_, sfu := startSFU(t, "127.0.0.1:0")
	in := startIngest(t, sfu, "[]")
	wall := token(t, auth.RoleWall, nil, []string{"*"})

	push := token(t, auth.RoleCamera, []string{"field1"}, nil)
	testkit.StartPush(t, context.Background(), testkit.PushParams{
		URL: "rtsp://" + in.listen["rtsp"] + "/field1?token=" + push, Audio: testkit.AudioOpus, Size: "640x360", GOP: 50,
	})
	waitState(t, sfu, wall, "field1", "live", 20*time.Second)

	api, err := whip.NewAPI(whip.APIParams{LoopbackOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	w := &h264Watch{nals: map[byte]int{}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := whip.View(ctx, whip.ViewerParams{Endpoint: whip.Endpoint(sfu, "field1", "whep"), Client: &whip.Client{Token: wall}, API: api, OnPacket: w.on})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		nals, packets, audio, _, _ := w.snapshot()
		if nals[7] > 0 && nals[8] > 0 && nals[5] > 0 && packets > 150 && audio > 50 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 30 s: NAL types %v in %d video packets, %d audio packets; want SPS (7), PPS (8), IDR (5), 150 video and 50 audio packets", nals, packets, audio)
		}
		time.Sleep(20 * time.Millisecond)
	}
	nals, packets, audio, gaps, audioName := w.snapshot()
	t.Logf("received %d video packets (NAL types %v), %d %s packets, %d sequence gaps", packets, nals, audio, audioName, gaps)
	if gaps != 0 {
		t.Errorf("%d sequence gaps on loopback", gaps)
	}
	if audioName != "opus" {
		t.Errorf("audio codec %q, want opus", audioName)
	}

	// The wall signs out: its token is refused from then on and its session ends.
	req, err := http.NewRequest(http.MethodPost, sfu+"/v1/signout", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+wall)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("sign out: %s", res.Status)
	}
	if _, err := (&whip.Client{Token: wall}).Get(context.Background(), sfu+"/v1/sources"); err == nil || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("the signed-out token listing sources: %v, want refused as revoked", err)
	}
	op := token(t, auth.RoleOperator, nil, nil)
	testkit.WaitFor(t, 5*time.Second, "the signed-out wall's session to end", func() bool {
		body, err := (&whip.Client{Token: op}).Get(context.Background(), sfu+"/v1/sources")
		if err != nil {
			t.Fatal(err)
		}
		var list struct {
			Sources []struct {
				Name    string
				Viewers int
			}
		}
		if err := json.Unmarshal(body, &list); err != nil {
			t.Fatal(err)
		}
		return len(list.Sources) == 1 && list.Sources[0].Name == "field1" && list.Sources[0].Viewers == 0
	})
}
