package main

import (
	"bytes"
	"slices"
	"strings"
	"testing"
)

func TestSplitAnnexB(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		want [][]byte
		err  string
	}{
		{
			name: "4-byte and 3-byte start codes",
			in:   []byte{0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 4, 5},
			want: [][]byte{{0x67, 1, 2}, {0x68, 3}, {0x65, 4, 5}},
		},
		{
			name: "leading and trailing zeros",
			in:   []byte{0, 0, 0, 0, 0, 1, 0x09, 0xf0, 0, 0, 0, 0, 0, 1, 0x41, 9, 0, 0},
			want: [][]byte{{0x09, 0xf0}, {0x41, 9}},
		},
		{
			name: "empty NAL units skipped",
			in:   []byte{0, 0, 1, 0, 0, 1, 0x41, 7, 0, 0, 1},
			want: [][]byte{{0x41, 7}},
		},
		{
			name: "zeros that are not a start code stay",
			in:   []byte{0, 0, 1, 0x41, 0, 0, 3, 0, 2},
			want: [][]byte{{0x41, 0, 0, 3, 0, 2}},
		},
		{name: "empty", in: nil, err: "empty"},
		{name: "no start code", in: []byte{0x67, 0, 0, 1, 0x68}, err: "does not start with an Annex-B start code"},
		{name: "only zeros", in: []byte{0, 0, 0}, err: "does not start"},
		{name: "start codes only", in: []byte{0, 0, 1, 0, 0, 1}, err: "no NAL units"},
		{name: "forbidden bit", in: []byte{0, 0, 1, 0xe7, 1}, err: "forbidden_zero_bit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			orig := slices.Clone(tc.in)
			got, err := SplitAnnexB(tc.in)
			if !bytes.Equal(orig, tc.in) {
				t.Error("SplitAnnexB modified its input")
			}
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error = %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("SplitAnnexB: %v", err)
			}
			if !slices.EqualFunc(got, tc.want, bytes.Equal) {
				t.Errorf("got % x, want % x", got, tc.want)
			}
		})
	}
}

func TestGroupAccessUnits(t *testing.T) {
	sps := []byte{0x67, 0x42}
	pps := []byte{0x68, 0xce}
	sei := []byte{0x06, 0x05}
	aud := []byte{0x09, 0xf0}
	idr := []byte{0x65, 0x88}      // first_mb_in_slice = 0
	idrSlice2 := []byte{0x65, 0x1} // first_mb_in_slice != 0: same picture
	p1 := []byte{0x41, 0x9a}
	p2 := []byte{0x41, 0x9b}

	for _, tc := range []struct {
		name  string
		nalus [][]byte
		want  [][][]byte
		err   string
	}{
		{
			name:  "parameter sets join the next picture",
			nalus: [][]byte{sps, pps, sei, idr, p1, p2, sps, pps, idr},
			want:  [][][]byte{{sps, pps, sei, idr}, {p1}, {p2}, {sps, pps, idr}},
		},
		{
			name:  "slices of one picture stay together",
			nalus: [][]byte{sps, pps, idr, idrSlice2, p1},
			want:  [][][]byte{{sps, pps, idr, idrSlice2}, {p1}},
		},
		{
			name:  "access unit delimiters",
			nalus: [][]byte{aud, sps, pps, idr, aud, p1, aud, p2},
			want:  [][][]byte{{aud, sps, pps, idr}, {aud, p1}, {aud, p2}},
		},
		{name: "trailing parameter sets", nalus: [][]byte{idr, sps, pps}, err: "belong to no picture"},
		{name: "no picture", nalus: nil, err: "no coded picture"},
		{name: "empty NAL unit", nalus: [][]byte{idr, {}}, err: "is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := GroupAccessUnits(tc.nalus)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error = %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("GroupAccessUnits: %v", err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d access units, want %d: % x", len(got), len(tc.want), got)
			}
			for i := range got {
				if !slices.EqualFunc(got[i], tc.want[i], bytes.Equal) {
					t.Errorf("access unit %d = % x, want % x", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestParseClipErrors(t *testing.T) {
	clipVideo := []byte{0, 0, 0, 1, 0x67, 0x42, 0, 0, 0, 1, 0x68, 0xce, 0, 0, 0, 1, 0x65, 0x88}
	for _, tc := range []struct {
		name  string
		video []byte
		audio []byte
		fps   int
		err   string
	}{
		{"no IDR first", []byte{0, 0, 1, 0x67, 0x42, 0, 0, 1, 0x68, 0xce, 0, 0, 1, 0x41, 0x88}, make([]byte, 160), 25, "IDR"},
		{"odd audio size", clipVideo, make([]byte, 161), 25, "161 bytes"},
		{"no audio", clipVideo, nil, 25, "0 bytes"},
		{"bad fps", clipVideo, make([]byte, 160), 0, "frame rate"},
		{"not Annex-B", []byte("ftypisom"), make([]byte, 160), 25, "start code"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseClip(tc.video, tc.audio, tc.fps)
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("error = %v, want one containing %q", err, tc.err)
			}
		})
	}
	if _, err := ParseClip(clipVideo, make([]byte, 320), 25); err != nil {
		t.Errorf("ParseClip of a minimal valid clip: %v", err)
	}
}

// FuzzSplitAnnexB checks that splitting and grouping never panic, never modify the input, and
// return NAL units that contain no start code and that add up to the input.
func FuzzSplitAnnexB(f *testing.F) {
	if len(embeddedVideo) > 0 {
		f.Add(embeddedVideo[:min(2048, len(embeddedVideo))])
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		orig := slices.Clone(data)
		nalus, err := SplitAnnexB(data)
		if !bytes.Equal(orig, data) {
			t.Fatal("SplitAnnexB modified its input")
		}
		if err != nil {
			if nalus != nil {
				t.Fatal("NAL units returned with an error")
			}
			return
		}
		total := 0
		for i, n := range nalus {
			if len(n) == 0 {
				t.Fatalf("NAL unit %d is empty", i)
			}
			if n[len(n)-1] == 0 {
				t.Fatalf("NAL unit %d ends with a zero byte", i)
			}
			if bytes.Contains(n, []byte{0, 0, 1}) {
				t.Fatalf("NAL unit %d contains a start code", i)
			}
			total += len(n)
		}
		if total > len(data) {
			t.Fatalf("NAL units hold %d bytes, more than the %d of the input", total, len(data))
		}

		aus, err := GroupAccessUnits(nalus)
		if err != nil {
			return
		}
		count := 0
		for i, au := range aus {
			if len(au) == 0 {
				t.Fatalf("access unit %d is empty", i)
			}
			hasVCL := false
			for _, n := range au {
				hasVCL = hasVCL || isVCL(n[0]&0x1f)
			}
			if !hasVCL {
				t.Fatalf("access unit %d holds no picture", i)
			}
			count += len(au)
		}
		if count != len(nalus) {
			t.Fatalf("access units hold %d NAL units, want %d", count, len(nalus))
		}
	})
}
