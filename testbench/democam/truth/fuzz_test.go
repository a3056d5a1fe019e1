package truth

import (
	"bytes"
	"slices"
	"testing"
	"time"
)

// FuzzParseSEI checks that reading an SEI never panics nor modifies its input, and that a
// time found survives a round trip through AppendSEI.
func FuzzParseSEI(f *testing.F) {
	f.Add(AppendSEI(nil, time.Unix(1700000000, 123456789)))
	f.Add(AppendSEI(nil, time.Unix(0, 0x0000000100000002)))
	f.Add([]byte{6, 5, 4, 1, 2, 3, 4, 0x80})
	f.Fuzz(func(t *testing.T, data []byte) {
		orig := slices.Clone(data)
		got, found, err := ParseSEI(data)
		if !bytes.Equal(orig, data) {
			t.Fatal("ParseSEI modified its input")
		}
		if err != nil && found {
			t.Fatal("found with an error")
		}
		if !found {
			return
		}
		back, found, err := ParseSEI(AppendSEI(nil, got))
		if err != nil || !found || !back.Equal(got) {
			t.Fatalf("round trip of %v: %v %v %v", got, back, found, err)
		}
	})
}

// FuzzDepacketizer checks that depacketizing never panics nor modifies its input, and that
// every NAL unit it returns is non-empty and has a clear forbidden_zero_bit. Each input is
// cut into packets: a length byte, then that many payload bytes.
func FuzzDepacketizer(f *testing.F) {
	sei := AppendSEI(nil, time.Unix(0, 5))
	stap := append([]byte{0x78, 0, byte(len(sei))}, sei...)
	f.Add(append([]byte{byte(len(stap))}, stap...))
	f.Add([]byte{4, 0x7c, 0x85, 1, 2, 3, 0x7c, 0x05, 3, 4, 3, 0x7c, 0x45, 5})
	f.Add([]byte{3, 0x65, 0x88, 0x80, 2, 0x78, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		orig := slices.Clone(data)
		var d Depacketizer
		seq := uint16(0)
		for rest := data; len(rest) > 0; {
			n := min(int(rest[0]), len(rest)-1)
			payload := rest[1 : 1+n]
			rest = rest[1+n:]
			nalus, _ := d.Push(seq, payload)
			seq++
			for _, nalu := range nalus {
				if len(nalu) == 0 || nalu[0]&0x80 != 0 {
					t.Fatalf("bad NAL unit % x", nalu)
				}
				_, _, _ = ParseSEI(nalu)
			}
		}
		if !bytes.Equal(orig, data) {
			t.Fatal("Push modified its input")
		}
	})
}
