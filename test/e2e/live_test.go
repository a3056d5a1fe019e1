package e2e

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"fieldvideo/internal/auth"
	"fieldvideo/internal/testkit"
	"fieldvideo/internal/whip"
)

// h264Watch records what a WHEP viewer receives on its video track.
type h264Watch struct {
	mu        sync.Mutex
	nals      map[byte]int
	packets   int
	audio     int
	audioName string
	gaps      int
	last      uint16
	started   bool
}

func (w *h264Watch) on(kind webrtc.RTPCodecType, codec string, p *rtp.Packet, _ time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if kind == webrtc.RTPCodecTypeAudio {
		w.audio++
		w.audioName = codec
		return
	}
	if w.started && p.SequenceNumber != w.last+1 {
		w.gaps++
	}
	w.started, w.last = true, p.SequenceNumber
	w.packets++
	for _, t := range nalTypes(p.Payload) {
		w.nals[t]++
	}
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

func (w *h264Watch) snapshot() (nals map[byte]int, packets, audio, gaps int, audioName string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	nals = map[byte]int{}
	for k, v := range w.nals {
		nals[k] = v
	}
	return nals, w.packets, w.audio, w.gaps, w.audioName
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
	testkit.WaitFor(t, 20*time.Second, "SPS, PPS, two IDRs and audio", func() bool {
		nals, _, audio, _, _ := w.snapshot()
		return nals[7] > 0 && nals[8] > 0 && nals[5] >= 2 && audio > 50
	})
	nals, packets, audio, gaps, audioName := w.snapshot()
	t.Logf("received %d video packets (NAL types %v), %d %s packets, %d sequence gaps", packets, nals, audio, audioName, gaps)
	if gaps != 0 {
		t.Errorf("%d sequence gaps on loopback", gaps)
	}
	if audioName != "opus" {
		t.Errorf("audio codec %q, want opus", audioName)
	}
}
