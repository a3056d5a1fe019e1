package mp4

import (
	"bytes"
	"testing"
)

// FuzzReadSamples: whatever a store returns as a segment, scanning,
// reading its samples and rewriting its init (edit lists, merging) give a
// result or an error, never a panic, and never read outside the input.
func FuzzReadSamples(f *testing.F) {
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		orig := append([]byte(nil), b...)
		sc, err := Scan(b)
		if err != nil {
			return
		}
		if samples, err := ReadSamples(b, sc); err == nil {
			total := 0
			for _, ss := range samples {
				for _, s := range ss {
					total += len(s.Data)
				}
			}
			if total > len(b) {
				t.Fatalf("%d bytes of samples in %d bytes", total, len(b))
			}
		}
		init := b[:sc.InitEnd]
		ids := map[uint32]uint32{}
		edits := map[uint32]int64{}
		for i, tr := range sc.Tracks {
			ids[tr.ID] = uint32(i + 1)
			edits[uint32(i+1)] = int64(i * 100)
		}
		merged, err := MergeInits([][]byte{init, init}, []map[uint32]uint32{ids, {}})
		if err == nil {
			if out, err := WithEditLists(merged, edits); err == nil {
				if sc2, err := Scan(out); err != nil || len(sc2.Tracks) != len(sc.Tracks) {
					t.Fatalf("rewritten init does not scan back: %v", err)
				}
			}
		}
		if !bytes.Equal(b, orig) {
			t.Fatal("the input was modified")
		}
	})
}
