package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pion/rtp"

	"fieldvideo/internal/stream"
	"fieldvideo/internal/unit"
)

// clip is an H.264 and Opus recording as RTP packets, ready to be replayed
// in a loop.
type clip struct {
	tracks   []unit.Track
	packets  [][]*rtp.Packet // per track, in order
	duration time.Duration   // whole GOPs
}

// makeClip has ffmpeg encode a test pattern and a tone, and captures its
// RTP output.
func makeClip(ctx context.Context, size, bitrate string, seconds int) (*clip, error) {
	dir, err := os.MkdirTemp("", "recbench")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	var conns []net.PacketConn
	for range 2 {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		c.(*net.UDPConn).SetReadBuffer(8 << 20)
		defer c.Close()
		conns = append(conns, c)
	}
	port := func(i int) string { return strconv.Itoa(conns[i].LocalAddr().(*net.UDPAddr).Port) }
	sdp := filepath.Join(dir, "clip.sdp")
	// -re keeps ffmpeg from overrunning the UDP buffers; two extra seconds
	// let the last GOP finish.
	cmd := exec.CommandContext(ctx, "/usr/bin/ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-re",
		"-t", strconv.Itoa(seconds+2), "-f", "lavfi", "-i", "testsrc2=size="+size+":rate=25",
		"-t", strconv.Itoa(seconds+2), "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-map", "0:v", "-c:v", "libx264", "-profile:v", "baseline", "-preset", "veryfast", "-tune", "zerolatency",
		"-b:v", bitrate, "-g", "50", "-keyint_min", "50", "-sc_threshold", "0", "-pix_fmt", "yuv420p",
		"-x264-params", "repeat-headers=1", "-f", "rtp", "-payload_type", "96", "rtp://127.0.0.1:"+port(0)+"?pkt_size=1200",
		"-map", "1:a", "-c:a", "libopus", "-ac", "2", "-b:a", "48k", "-payload_type", "97",
		"-f", "rtp", "rtp://127.0.0.1:"+port(1)+"?pkt_size=1200", "-sdp_file", sdp)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &clip{packets: make([][]*rtp.Packet, 2)}
	var wg sync.WaitGroup
	for i, conn := range conns {
		wg.Go(func() {
			buf := make([]byte, 2048)
			for {
				conn.SetReadDeadline(time.Now().Add(10 * time.Second))
				n, _, err := conn.ReadFrom(buf)
				if err != nil {
					return
				}
				p := &rtp.Packet{}
				if p.Unmarshal(append([]byte(nil), buf[:n]...)) == nil {
					c.packets[i] = append(c.packets[i], p)
				}
			}
		})
	}
	if err := cmd.Wait(); err != nil {
		return nil, fmt.Errorf("ffmpeg: %w", err)
	}
	wg.Wait()
	b, err := os.ReadFile(sdp)
	if err != nil {
		return nil, err
	}
	c.tracks = parseSDP(string(b))
	if len(c.tracks) != 2 || len(c.packets[0]) == 0 || len(c.packets[1]) == 0 {
		return nil, fmt.Errorf("clip: %d tracks, %d and %d packets", len(c.tracks), len(c.packets[0]), len(c.packets[1]))
	}
	// Keep whole GOPs: cut the video at the last keyframe within seconds,
	// and the audio at the same time.
	v := c.packets[0]
	t0 := v[0].Timestamp
	cut := 0
	for i, p := range v {
		if p.Timestamp-t0 > uint32(seconds*90000) {
			break
		}
		if unit.IsKeyframe(unit.CodecH264, p.Payload) {
			j := i // the access unit starts with its parameter sets
			for j > 0 && v[j-1].Timestamp == p.Timestamp {
				j--
			}
			cut = j
		}
	}
	if cut == 0 {
		return nil, fmt.Errorf("clip has a single GOP; make it longer")
	}
	c.packets[0] = v[:cut]
	c.duration = time.Duration(v[cut].Timestamp-t0) * time.Second / 90000
	a := c.packets[1]
	a0 := a[0].Timestamp
	n := 0
	for n < len(a) && time.Duration(a[n].Timestamp-a0)*time.Second/48000 < c.duration {
		n++
	}
	c.packets[1] = a[:n]
	return c, nil
}

// parseSDP reads the tracks of the SDP ffmpeg writes for its RTP outputs.
func parseSDP(s string) []unit.Track {
	var out []unit.Track
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(l, "m="):
			f := strings.Fields(l[2:])
			if len(f) < 4 {
				return nil
			}
			pt, _ := strconv.Atoi(f[3])
			t := unit.Track{Kind: unit.KindAudio, PayloadType: uint8(pt)}
			if f[0] == "video" {
				t.Kind = unit.KindVideo
			}
			out = append(out, t)
		case len(out) > 0 && strings.HasPrefix(l, "a=rtpmap:"):
			t := &out[len(out)-1]
			_, v, _ := strings.Cut(l, " ")
			f := strings.Split(v, "/")
			switch strings.ToUpper(f[0]) {
			case "H264":
				t.Codec = unit.CodecH264
			case "OPUS":
				t.Codec = unit.CodecOpus
			default:
				t.Codec = f[0]
			}
			if len(f) > 1 {
				c, _ := strconv.Atoi(f[1])
				t.ClockRate = uint32(c)
			}
			if len(f) > 2 {
				c, _ := strconv.Atoi(f[2])
				t.Channels = uint16(c)
			}
		case len(out) > 0 && strings.HasPrefix(l, "a=fmtp:"):
			_, v, _ := strings.Cut(l, " ")
			out[len(out)-1].Fmtp = strings.TrimSpace(v)
		}
	}
	return out
}

// replay plays the clip into st as a live camera until ctx ends: each loop
// continues the previous one's sequence numbers and timestamps.
func (c *clip) replay(ctx context.Context, st *stream.Stream) {
	var wg sync.WaitGroup
	start := time.Now()
	for i := range c.tracks {
		wg.Go(func() {
			a := unit.NewAssembler(i, c.tracks[i], st.Write)
			ps := c.packets[i]
			clock := int64(c.tracks[i].ClockRate)
			t0 := ps[0].Timestamp
			loopTicks := uint32(int64(c.duration) * clock / int64(time.Second))
			var seqOff uint16
			for loop := 0; ; loop++ {
				base := start.Add(time.Duration(loop) * c.duration)
				for _, p := range ps {
					at := base.Add(time.Duration(int64(p.Timestamp-t0) * int64(time.Second) / clock))
					if d := time.Until(at); d > 0 {
						select {
						case <-ctx.Done():
							return
						case <-time.After(d):
						}
					}
					q := *p
					q.SequenceNumber = p.SequenceNumber + seqOff
					q.Timestamp = p.Timestamp + uint32(loop)*loopTicks
					a.Push(&q, time.Now())
				}
				seqOff += uint16(len(ps))
			}
		})
	}
	wg.Wait()
}
