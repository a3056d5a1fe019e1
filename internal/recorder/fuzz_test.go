package recorder

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"

	"fieldvideo/internal/mp4"
	"fieldvideo/internal/unit"
)

// testSegment builds a segment file like the segmenter writes: an Opus
// track and an H.264 track, parts of a few samples each.
func testSegment(t testing.TB, parts int) []byte {
	t.Helper()
	v, err := newRecTrack(0, unit.Track{Kind: unit.KindVideo, Codec: unit.CodecH264, ClockRate: 90000, PayloadType: 96,
		Fmtp: "packetization-mode=1;sprop-parameter-sets=Z0LADdoFB+wEQAAAAwBAAAAMg8UKqA==,aM4PyA=="})
	if err != nil {
		t.Fatal(err)
	}
	a, err := newRecTrack(1, unit.Track{Kind: unit.KindAudio, Codec: unit.CodecOpus, ClockRate: 48000, Channels: 2, PayloadType: 111})
	if err != nil {
		t.Fatal(err)
	}
	g, err := newRecTrack(2, unit.Track{Kind: unit.KindAudio, Codec: unit.CodecPCMU, ClockRate: 8000, Channels: 1, PayloadType: 0})
	if err != nil {
		t.Fatal(err)
	}
	v.id, a.id, g.id = 1, 2, 3
	v.reorder = 3600
	tracks := []*recTrack{v, a, g}
	b, err := marshalInit(tracks, func(t *recTrack) int64 { return t.reorder })
	if err != nil {
		t.Fatal(err)
	}
	start := time.Unix(1795400000, 0)
	for p := 0; p < parts; p++ {
		pts := []*partTrack{{tr: v, base: uint64(p * 90000)}, {tr: a, base: uint64(p * 48000)}, {tr: g, base: uint64(p * 8000)}}
		for i := 0; i < 3; i++ {
			pts[0].samples = append(pts[0].samples, &fmp4.Sample{Duration: 30000, PTSOffset: 3600, IsNonSyncSample: i > 0, Payload: []byte{0, 0, 0, 2, 0x65, byte(i)}})
			pts[1].samples = append(pts[1].samples, &fmp4.Sample{Duration: 16000, Payload: []byte{0xfc, byte(i), 1, 2}})
			pts[2].samples = append(pts[2].samples, &fmp4.Sample{Duration: 2666, Payload: bytes.Repeat([]byte{0xff}, 16)})
		}
		part, err := marshalPart(uint32(p+1), pts, pts[0], start, false)
		if err != nil {
			t.Fatal(err)
		}
		b = append(b, part...)
	}
	return b
}

func TestScanSegment(t *testing.T) {
	b := testSegment(t, 3)
	sc, err := mp4.Scan(b)
	if err != nil {
		t.Fatal(err)
	}
	if sc.Valid != len(b) || sc.Parts != 3 || sc.Stop != nil || len(sc.Tracks) != 3 || len(sc.PRFT) != 3 {
		t.Fatalf("scan %+v", sc)
	}
	entries := []string{sc.Tracks[0].Entry, sc.Tracks[1].Entry, sc.Tracks[2].Entry}
	if !reflect.DeepEqual(entries, []string{"avc1", "Opus", "ulaw"}) {
		t.Fatalf("sample entries %v", entries)
	}
	if v := sc.Tracks[0]; v.End != 3*90000 || v.Samples != 9 || v.TimeScale != 90000 || v.Handler != "vide" {
		t.Fatalf("video track %+v", v)
	}
	if d := scanDuration(sc); d != 3*time.Second {
		t.Fatalf("duration %s", d)
	}
	if got, want := sc.PRFT[1].Wall, time.Unix(1795400001, 0); got.Sub(want).Abs() > time.Microsecond {
		t.Fatalf("second part's prft says %s, want %s", got, want)
	}
	// Cut anywhere: the scan keeps exactly the complete parts before the cut.
	for cut := len(b) - 1; cut > 0; cut -= 7 {
		sc2, err := mp4.Scan(b[:cut])
		if cut < sc.InitEnd {
			if err == nil {
				t.Fatalf("cut at %d inside the init: no error", cut)
			}
			continue
		}
		if err != nil {
			t.Fatalf("cut at %d: %v", cut, err)
		}
		if sc2.Valid > cut || (sc2.Valid < cut && sc2.Stop == nil) {
			t.Fatalf("cut at %d: valid %d, stop %v", cut, sc2.Valid, sc2.Stop)
		}
	}
}

func TestJournalTornTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal")
	j, recs, tail, err := openJournal(path)
	if err != nil || len(recs) != 0 || tail != nil {
		t.Fatalf("new journal: %v %v %v", recs, tail, err)
	}
	want := []record{
		{Op: opOpen, ID: 1, Source: "cam", File: "seg/cam/1-5-u.mp4", StartNS: 5},
		{Op: opClose, ID: 1, Key: "rec/i/cam/2026/01/01/00/1-2.mp4", Size: 10, SHA256: string(bytes.Repeat([]byte("a"), 64))},
		{Op: opStored, ID: 1, Store: "primary"},
	}
	for i := range want {
		if err := j.append(&want[i]); err != nil {
			t.Fatal(err)
		}
	}
	j.close()
	full, _ := os.ReadFile(path)
	var ends []int // end offset of each record
	for off := len(journalHeader) + 1; off <= len(full); off++ {
		if atRecordEnd(full, off) {
			ends = append(ends, off)
		}
	}
	if len(ends) != len(want) {
		t.Fatalf("record ends %v", ends)
	}
	// Every torn length reads back the complete records before it and
	// truncates the rest; a new append then follows them.
	for cut := len(full); cut >= len(journalHeader); cut-- {
		if err := os.WriteFile(path, full[:cut], 0o600); err != nil {
			t.Fatal(err)
		}
		j, recs, tail, err := openJournal(path)
		if err != nil {
			t.Fatalf("cut %d: %v", cut, err)
		}
		n := 0
		for n < len(ends) && ends[n] <= cut {
			n++
		}
		boundary := cut == len(journalHeader) || (n > 0 && ends[n-1] == cut)
		if len(recs) != n || (n > 0 && !reflect.DeepEqual(recs, want[:n])) || (tail == nil) != boundary {
			t.Fatalf("cut %d: %d records %+v, tail %v; ends %v n %d", cut, len(recs), recs, tail, ends, n)
		}
		if err := j.append(&record{Op: opEvict, ID: 9}); err != nil {
			t.Fatal(err)
		}
		j.close()
		_, recs2, tail2, _ := openJournal(path)
		if len(recs2) != n+1 || tail2 != nil || recs2[n].ID != 9 {
			t.Fatalf("cut %d: after an append, %d records, tail %v", cut, len(recs2), tail2)
		}
	}
	// A file that is not a journal is refused, not overwritten.
	os.WriteFile(path, []byte("something else entirely, long enough"), 0o600)
	if _, _, _, err := openJournal(path); err == nil {
		t.Fatal("foreign file opened as a journal")
	}
}

// atRecordEnd reports whether cut falls on a record boundary of journal b.
func atRecordEnd(b []byte, cut int) bool {
	_, valid, _, _ := parseJournal(b[:cut])
	return valid == cut
}

func FuzzParseJournal(f *testing.F) {
	for _, s := range journalSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		orig := append([]byte(nil), b...)
		recs, valid, tail, err := parseJournal(b)
		if !bytes.Equal(b, orig) {
			t.Fatal("parseJournal modified its input")
		}
		if err != nil {
			return
		}
		if valid > len(b) || (tail == nil && valid != len(b) && len(b) > 0) {
			t.Fatalf("valid %d of %d, tail %v", valid, len(b), tail)
		}
		// The valid prefix reads back the same records, with nothing torn.
		recs2, valid2, tail2, err := parseJournal(b[:valid])
		if err != nil || valid2 != valid || tail2 != nil || len(recs2) != len(recs) {
			t.Fatalf("prefix: %d records, valid %d, tail %v, err %v; want %d records", len(recs2), valid2, tail2, err, len(recs))
		}
		// Re-encoding the records gives a journal that reads back the same.
		enc := []byte(journalHeader)
		for i := range recs {
			if enc, err = appendRecord(enc, &recs[i]); err != nil {
				t.Fatal(err)
			}
		}
		recs3, _, tail3, err := parseJournal(enc)
		if err != nil || tail3 != nil || !reflect.DeepEqual(recs3, recs) {
			t.Fatalf("re-encoded journal: %v %v", tail3, err)
		}
	})
}

func FuzzScanSegment(f *testing.F) {
	for _, s := range segmentSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		orig := append([]byte(nil), b...)
		sc, err := mp4.Scan(b)
		if !bytes.Equal(b, orig) {
			t.Fatal("mp4.Scan modified its input")
		}
		if err != nil {
			return
		}
		if sc.Valid > len(b) || sc.Valid < sc.InitEnd || (sc.Valid < len(b) && sc.Stop == nil) {
			t.Fatalf("valid %d, init end %d, length %d, stop %v", sc.Valid, sc.InitEnd, len(b), sc.Stop)
		}
		// Cutting the file where the scan says leaves a clean segment with
		// the same parts.
		sc2, err := mp4.Scan(b[:sc.Valid])
		if err != nil || sc2.Parts != sc.Parts || sc2.Valid != sc.Valid || sc2.Stop != nil {
			t.Fatalf("cut segment: %+v %v; first scan %d parts", sc2, err, sc.Parts)
		}
		if sc.Parts > 0 {
			_ = scanDuration(sc)
		}
	})
}

func FuzzParseKeyAndManifest(f *testing.F) {
	for _, kv := range keySeeds {
		f.Add(kv[0], []byte(kv[1]))
	}
	f.Fuzz(func(t *testing.T, key string, manifest []byte) {
		if k, err := ParseKey(key); err == nil {
			back := SegmentKey(k.Incident, k.Source, k.Start, k.Duration, k.Recorder, k.Seq)
			if k.Recorder == "" {
				back = strings.TrimSuffix(back, "--0.mp4") + ".mp4"
			}
			if k.Manifest {
				back = ManifestKey(back)
			}
			if back != key {
				t.Fatalf("key %q parses to %+v, which makes %q", key, k, back)
			}
		}
		if m, err := ParseManifest(manifest); err == nil {
			if _, err := ParseKey(m.Key); err != nil || len(m.SHA256) != 64 {
				t.Fatalf("accepted manifest %+v", m)
			}
		}
	})
}

// journalSeeds are journals: whole, torn at several places, with a flipped
// byte, and foreign.
func journalSeeds(t testing.TB) [][]byte {
	b := []byte(journalHeader)
	for _, r := range []record{
		{Op: opOpen, ID: 1, Source: "cam1", File: "seg/cam1/1-1795400000000000000-a.mp4", StartNS: 1795400000000000000, Aligned: true},
		{Op: opClose, ID: 1, Key: "rec/inc/cam1/2026/11/23/04/1795400000000-4000.mp4", Size: 1000, SHA256: string(bytes.Repeat([]byte("f"), 64)), DurationNS: 4e9, Manifest: 300},
		{Op: opStored, ID: 1, Store: "primary"},
		{Op: opStored, ID: 1, Store: "offsite"},
		{Op: opEvict, ID: 1, Reason: "confirmed at both sites"},
		{Op: opNextID, ID: 2},
	} {
		var err error
		if b, err = appendRecord(b, &r); err != nil {
			t.Fatal(err)
		}
	}
	flipped := append([]byte(nil), b...)
	flipped[len(journalHeader)+40] ^= 0x20
	return [][]byte{b, b[:len(b)-1], b[:len(b)/2], b[:len(journalHeader)+5], b[:10], flipped, []byte("garbage that is not a journal at all")}
}

// segmentSeeds are segments: whole, torn inside a part, inside the init,
// and with a damaged run.
func segmentSeeds(t testing.TB) [][]byte {
	b := testSegment(t, 2)
	sc, err := mp4.Scan(b)
	if err != nil {
		t.Fatal(err)
	}
	bad := append([]byte(nil), b...)
	bad[len(bad)-40] ^= 0xff
	return [][]byte{b, b[:len(b)-10], b[:sc.InitEnd+50], b[:sc.InitEnd], b[:100], bad}
}

// TestWriteFuzzSeeds writes the seed corpora into testdata/fuzz when
// RECORDER_WRITE_SEEDS is set (they are committed).
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("RECORDER_WRITE_SEEDS") == "" {
		t.Skip("set RECORDER_WRITE_SEEDS=1 to rewrite testdata/fuzz")
	}
	write := func(target string, seeds [][]byte) {
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i, s := range seeds {
			body := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(s)))
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%02d", i)), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	write("FuzzParseJournal", journalSeeds(t))
	write("FuzzScanSegment", segmentSeeds(t))
	dir := filepath.Join("testdata", "fuzz", "FuzzParseKeyAndManifest")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, kv := range keySeeds {
		body := fmt.Sprintf("go test fuzz v1\nstring(%s)\n[]byte(%s)\n", strconv.Quote(kv[0]), strconv.Quote(kv[1]))
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%02d", i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

var keySeeds = [][2]string{
	{"rec/inc-1/cam1/2026/11/23/04/1795400000000-4000.mp4", `{"version":1,"key":"rec/inc-1/cam1/2026/11/23/04/1795400000000-4000.mp4","size":5,"sha256":"` + string(bytes.Repeat([]byte("0"), 64)) + `"}`},
	{"rec/inc-1/cam1/2026/11/23/04/1795400000000-4000.json", `{"version":2}`},
	{"rec/a/b/1970/01/01/00/0-0.mp4", `not json`},
	{"rec/a/b/2026/11/23/04/x-y.mp4", `{}`},
	{"rec//b/2026/11/23/04/1-1.mp4", `{"version":1,"key":"x"}`},
	{"rec/inc-1/cam1/2026/11/23/04/1795400000000-4000-9f2c1a7b-17.mp4", `{"version":1,"key":"rec/inc-1/cam1/2026/11/23/04/1795400000000-4000-9f2c1a7b-17.mp4","size":5,"sha256":"` + string(bytes.Repeat([]byte("0"), 64)) + `"}`},
	{"rec/inc-1/cam1/2026/11/23/04/1795400000000-4000-9F2C1A7B-017.json", `{}`},
}
