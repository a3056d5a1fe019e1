package sync

import (
	"bytes"
	"encoding/binary"
	"math"
	"testing"
	"time"
)

func FuzzParseTSRefClk(f *testing.F) {
	for _, s := range []string{"ntp=/traceable/", "ntp=pool.ntp.org:123", "ptp=IEEE1588-2008:39-A7-94-FF-FE-07-CB-D0:0",
		"ptp=IEEE1588-2008:traceable", "gps", "private:traceable", "localmac=7C-E9-D3-1B-9A-AF", "foo=bar", "ntp=[::1]:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		rc, err := ParseTSRefClk(s)
		if err != nil {
			if rc != (RefClock{}) {
				t.Fatalf("error %v with a non-zero result %+v", err, rc)
			}
			return
		}
		if rc.Source == ClockNone {
			t.Fatalf("%q parsed without a clock source", s)
		}
		_ = rc.Locked()
		_ = rc.Source.String()
	})
}

func FuzzParseMediaClk(f *testing.F) {
	for _, s := range []string{"direct=0", "direct=963214424 rate=1000/1001", "id=abc direct", "sender",
		"IEEE1722=38-D6-6D-8E-D2-78-13-2F", "x=y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		mc, err := ParseMediaClk(s)
		if err != nil {
			if mc != (MediaClock{}) {
				t.Fatalf("error %v with a non-zero result %+v", err, mc)
			}
			return
		}
		if mc.Kind == MediaClockNone {
			t.Fatalf("%q parsed without a kind", s)
		}
		if (mc.RateNum == 0) != (mc.RateDen == 0) {
			t.Fatalf("%q: half a rate %+v", s, mc)
		}
	})
}

func FuzzRefClocksFromSDP(f *testing.F) {
	f.Add([]byte("v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=cam\r\nt=0 0\r\na=ts-refclk:local\r\n" +
		"m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=ts-refclk:ntp=/traceable/\r\na=mediaclk:direct=0\r\n"))
	f.Add([]byte("v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 0 RTP/AVP 97\r\na=mediaclk:sender\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		in := bytes.Clone(b)
		rcs, err := RefClocksFromSDP(b)
		if !bytes.Equal(in, b) {
			t.Fatal("input modified")
		}
		if err != nil && rcs == nil {
			return
		}
		for _, rc := range rcs {
			_ = rc.Locked()
		}
	})
}

func FuzzUnmarshalAbsCaptureTime(f *testing.F) {
	f.Add([]byte{0xeb, 0xe6, 0x1d, 0x40, 0x80, 0, 0, 0})
	f.Add([]byte{0xeb, 0xe6, 0x1d, 0x40, 0x80, 0, 0, 0, 0xff, 0xff, 0xff, 0xfe, 0, 0, 0, 0})
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		in := bytes.Clone(b)
		act, err := UnmarshalAbsCaptureTime(b)
		if !bytes.Equal(in, b) {
			t.Fatal("input modified")
		}
		if err != nil {
			return
		}
		if out := MarshalAbsCaptureTime(act); !bytes.Equal(out, b) {
			t.Fatalf("re-encoding %x gave %x", b, out)
		}
		now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
		if d := act.Time(now).Sub(now); d.Abs() > 69*366*24*time.Hour {
			t.Fatalf("capture time %v is more than half an NTP era away", act.Time(now))
		}
		_ = act.SenderTime(now)
	})
}

// FuzzTrack drives a Track with arbitrary sequences of frames, sender
// reports, abs-capture-time samples and resets; 16 bytes per operation.
func FuzzTrack(f *testing.F) {
	// A regular camera: frames every 40 ms, a sender report every 25 frames.
	var seed []byte
	for i := 0; i < 100; i++ {
		op := make([]byte, 16)
		op[0] = 0
		if i%25 == 0 {
			op[0] = 3
		}
		binary.BigEndian.PutUint16(op[2:], 4) // 40 ms
		binary.BigEndian.PutUint32(op[4:], 3600)
		seed = append(seed, op...)
	}
	f.Add(seed)
	f.Add(bytes.Repeat([]byte{3, 1, 0xff, 0xff, 0x80, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 1}, 20))
	f.Add(bytes.Repeat([]byte{4, 0, 0, 5, 0, 0, 0x0e, 0x10, 0xeb, 0xe6, 0x1d, 0x40, 0x80, 0, 0, 0}, 20))
	f.Fuzz(func(t *testing.T, b []byte) {
		tr, err := NewTrack(TrackParams{ClockRate: 90000, RefClock: RefClock{Source: ClockNTP}})
		if err != nil {
			t.Fatal(err)
		}
		arrival := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
		var rtp uint64 = 1 << 33
		for ; len(b) >= 16; b = b[16:] {
			op, ssrc := b[0]%6, uint32(b[1]%3)
			arrival = arrival.Add(time.Duration(int16(binary.BigEndian.Uint16(b[2:]))) * 10 * time.Millisecond)
			rtp += uint64(int64(int32(binary.BigEndian.Uint32(b[4:]))))
			raw := binary.BigEndian.Uint64(b[8:])
			switch op {
			case 0, 1, 2:
				out, errEst := tr.Frame(ssrc, rtp, arrival)
				if out.IsZero() || errEst < 0 {
					t.Fatalf("Frame gave %v ± %v", out, errEst)
				}
				if d := out.Sub(arrival).Abs(); d > 24*time.Hour {
					t.Fatalf("capture time %v is %v from arrival %v", out, d, arrival)
				}
			case 3:
				ntp := raw
				if b[1]&0x80 == 0 {
					// A wall clock near the arrival time.
					ntp = UnixNanoToNTP(arrival.UnixNano() - int64(int32(raw)))
				}
				tr.SenderReport(ssrc, ntp, uint32(rtp), arrival)
			case 4:
				tr.AbsCaptureTime(ssrc, rtp, AbsCaptureTime{Timestamp: raw, Offset: int64(raw >> 7), HasOffset: b[1]&1 == 1}, arrival)
			case 5:
				if b[1]&1 == 1 {
					tr.Reset()
				}
				h := tr.Health(arrival)
				if math.IsNaN(h.SkewPPM) || math.IsInf(h.SkewPPM, 0) {
					t.Fatalf("health %+v", h)
				}
			}
			for _, v := range []float64{tr.prevOut, tr.errEst, tr.pathDelay, tr.env.yc, tr.env.b, tr.env.meanGap,
				tr.wall.w0, tr.wall.slope, tr.wall.scatter} {
				if math.IsNaN(v) || math.IsInf(v, 0) {
					t.Fatalf("state went non-finite: %+v", tr)
				}
			}
		}
	})
}
