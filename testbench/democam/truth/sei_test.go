package truth

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestSEIRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		at   time.Time
	}{
		{"now", time.Now()},
		{"zero bytes needing emulation prevention", time.Unix(0, 0x0000000100000002)},
		{"all zero", time.Unix(0, 0)},
		{"three zero bytes then 3", time.Unix(0, 0x1100000003000000)},
		{"before 1970", time.Unix(-5, 0)},
		{"far future", time.Date(2100, 1, 2, 3, 4, 5, 6, time.UTC)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nalu := AppendSEI(nil, tc.at)
			if nalu[0] != NALUTypeSEI {
				t.Fatalf("NAL header %#x, want %#x", nalu[0], NALUTypeSEI)
			}
			if len(nalu) > maxSEISize {
				t.Errorf("SEI is %d bytes, more than %d", len(nalu), maxSEISize)
			}
			checkNoStartCodeEmulation(t, nalu)
			orig := slices.Clone(nalu)
			got, found, err := ParseSEI(nalu)
			if err != nil || !found {
				t.Fatalf("ParseSEI(% x) = %v, %v, %v", nalu, got, found, err)
			}
			if !bytes.Equal(orig, nalu) {
				t.Error("ParseSEI modified its input")
			}
			if !got.Equal(tc.at) {
				t.Errorf("time = %v, want %v", got, tc.at)
			}
		})
	}
}

// checkNoStartCodeEmulation requires that no 00 00 0x with x ≤ 3 appears in a NAL unit.
func checkNoStartCodeEmulation(t *testing.T, nalu []byte) {
	t.Helper()
	for i := 0; i+2 < len(nalu); i++ {
		if nalu[i] == 0 && nalu[i+1] == 0 && nalu[i+2] <= 3 && nalu[i+2] != 3 {
			t.Fatalf("bytes %d-%d of % x emulate a start code", i, i+2, nalu)
		}
	}
	if nalu[len(nalu)-1] == 0 {
		t.Fatalf("the NAL unit ends with a zero byte: % x", nalu)
	}
}

func TestSEIAppends(t *testing.T) {
	prefix := []byte{1, 2, 3}
	out := AppendSEI(slices.Clone(prefix), time.Unix(1700000000, 0))
	if !bytes.HasPrefix(out, prefix) {
		t.Fatalf("AppendSEI lost dst: % x", out)
	}
	if _, found, err := ParseSEI(out[3:]); !found || err != nil {
		t.Fatalf("ParseSEI of the appended NAL unit: %v %v", found, err)
	}
}

// seiNALU builds an SEI NAL unit from raw RBSP bytes (no emulation prevention needed by the
// callers' contents).
func seiNALU(rbsp ...byte) []byte { return append([]byte{NALUTypeSEI}, rbsp...) }

func ourPayload(ns int64) []byte {
	b := slices.Clone(UUID[:])
	return binary.BigEndian.AppendUint64(b, uint64(ns))
}

func TestParseSEI(t *testing.T) {
	clip, err := os.ReadFile("../clip/video.h264")
	if err != nil {
		t.Fatal(err)
	}
	// the clip's first SEI is x264's user_data_unregistered (its own UUID and version).
	i := bytes.Index(clip, []byte{0, 0, 1, 6})
	j := bytes.Index(clip[i+3:], []byte{0, 0, 1})
	x264 := clip[i+3 : i+3+j]
	x264 = bytes.TrimRight(x264, "\x00")

	ours := AppendSEI(nil, time.Unix(0, 42))
	twoMessages := seiNALU(append(append([]byte{5, 20}, bytes.Repeat([]byte{0xaa}, 20)...),
		append(append([]byte{5, 24}, ourPayload(7)...), 0x80)...)...)
	// a payload type ≥ 255 is written as 0xFF bytes then the rest.
	longType := seiNALU(append(append([]byte{0xff, 0x01, 2, 9, 9}, 5, 24), append(ourPayload(9), 0x80)...)...)
	wrongSize := seiNALU(append(append([]byte{5, 25}, ourPayload(1)...), 0xee, 0x80)...)

	for _, tc := range []struct {
		name  string
		nalu  []byte
		want  int64
		found bool
		err   string
		isErr error
	}{
		{name: "ours", nalu: ours, want: 42, found: true},
		{name: "x264's own SEI", nalu: x264, found: false},
		{name: "after another message", nalu: twoMessages, want: 7, found: true},
		{name: "payload type over 255", nalu: longType, want: 9, found: true},
		{name: "trailing bits only", nalu: seiNALU(0x80), found: false},
		{name: "trailing bits and zeros", nalu: seiNALU(0x80, 0, 0), found: false},
		{name: "nothing after the header", nalu: seiNALU(), found: false},
		{name: "slice, not SEI", nalu: []byte{0x65, 0x88, 0x84}, isErr: ErrNotSEI},
		{name: "empty", nalu: nil, err: "empty"},
		{name: "forbidden bit", nalu: []byte{0x86, 5, 1, 0}, err: "forbidden_zero_bit"},
		{name: "size beyond the end", nalu: seiNALU(5, 40, 1, 2, 3), err: "says 40 bytes, but 3 remain"},
		{name: "type cut short", nalu: seiNALU(0xff, 0xff), err: "payload type is cut short"},
		{name: "size cut short", nalu: seiNALU(5), err: "payload size is cut short"},
		{name: "our UUID, wrong size", nalu: wrongSize, err: "is 25 bytes, want 24"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, found, err := ParseSEI(tc.nalu)
			switch {
			case tc.isErr != nil:
				if !errors.Is(err, tc.isErr) {
					t.Fatalf("error = %v, want %v", err, tc.isErr)
				}
				return
			case tc.err != "":
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error = %v, want one containing %q", err, tc.err)
				}
				return
			case err != nil:
				t.Fatalf("ParseSEI: %v", err)
			}
			if found != tc.found {
				t.Fatalf("found = %v, want %v", found, tc.found)
			}
			if found && got.UnixNano() != tc.want {
				t.Errorf("time = %d ns, want %d", got.UnixNano(), tc.want)
			}
		})
	}
}

func TestEmulationPrevention(t *testing.T) {
	for _, tc := range []struct{ rbsp, ebsp []byte }{
		{[]byte{0, 0, 0}, []byte{0, 0, 3, 0}},
		{[]byte{0, 0, 1}, []byte{0, 0, 3, 1}},
		{[]byte{0, 0, 3}, []byte{0, 0, 3, 3}},
		{[]byte{0, 0, 4}, []byte{0, 0, 4}},
		{[]byte{0, 0, 0, 0, 0}, []byte{0, 0, 3, 0, 0, 3, 0}},
		{[]byte{1, 0, 0, 2, 0, 0}, []byte{1, 0, 0, 3, 2, 0, 0}},
	} {
		got := appendEmulationPrevented(nil, tc.rbsp)
		if !bytes.Equal(got, tc.ebsp) {
			t.Errorf("appendEmulationPrevented(% x) = % x, want % x", tc.rbsp, got, tc.ebsp)
		}
		back := removeEmulationPrevention(nil, got)
		if !bytes.Equal(back, tc.rbsp) {
			t.Errorf("removeEmulationPrevention(% x) = % x, want % x", got, back, tc.rbsp)
		}
	}
}

func TestDepacketizer(t *testing.T) {
	sei := AppendSEI(nil, time.Unix(0, 5))
	slice := append([]byte{0x41}, bytes.Repeat([]byte{0x9a}, 3000)...)
	stap := []byte{0x78}
	for _, n := range [][]byte{{0x67, 1, 2}, {0x68, 3}, sei} {
		stap = append(stap, byte(len(n)>>8), byte(len(n)))
		stap = append(stap, n...)
	}
	fu := func(start, end bool, body []byte) []byte {
		h := byte(0x41 & 0x1f)
		if start {
			h |= 0x80
		}
		if end {
			h |= 0x40
		}
		return append([]byte{0x41&0xe0 | fuA, h}, body...)
	}
	frag1, frag2, frag3 := fu(true, false, slice[1:1000]), fu(false, false, slice[1000:2000]), fu(false, true, slice[2000:])

	var d Depacketizer
	type step struct {
		seq     uint16
		payload []byte
		want    [][]byte
		err     string
	}
	for i, s := range []step{
		{seq: 10, payload: stap, want: [][]byte{{0x67, 1, 2}, {0x68, 3}, sei}},
		{seq: 11, payload: sei, want: [][]byte{sei}},
		{seq: 12, payload: frag1},
		{seq: 13, payload: frag2},
		{seq: 14, payload: frag3, want: [][]byte{slice}},
		// a lost middle fragment drops the NAL unit.
		{seq: 15, payload: frag1},
		{seq: 17, payload: frag3},
		// a lost start fragment too.
		{seq: 18, payload: frag2},
		{seq: 19, payload: frag3},
		{seq: 20, payload: fu(true, true, []byte{1, 2}), want: [][]byte{{0x41, 1, 2}}},
		{seq: 21, payload: nil, err: "empty"},
		{seq: 22, payload: []byte{0x79, 0, 1}, err: "packet type 25"},
		{seq: 23, payload: []byte{0x78, 0, 9, 1}, err: "says 9 bytes"},
		{seq: 24, payload: []byte{0x78, 0, 1, 6, 0}, err: "stray byte"},
		{seq: 25, payload: []byte{0x78}, err: "no NAL unit"},
		{seq: 26, payload: []byte{0x7c}, err: "without its FU header"},
		{seq: 27, payload: []byte{0xe1}, err: "forbidden_zero_bit"},
	} {
		orig := slices.Clone(s.payload)
		got, err := d.Push(s.seq, s.payload)
		if !bytes.Equal(orig, s.payload) {
			t.Fatalf("step %d: Push modified its input", i)
		}
		if s.err != "" {
			if err == nil || !strings.Contains(err.Error(), s.err) {
				t.Fatalf("step %d: error = %v, want one containing %q", i, err, s.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if !slices.EqualFunc(got, s.want, bytes.Equal) {
			t.Fatalf("step %d (seq %d): got %d NAL units %x, want %d", i, s.seq, len(got), got, len(s.want))
		}
	}
}
