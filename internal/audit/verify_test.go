package audit

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// sampleLog returns the lines of a log: start, 10 events, checkpoint (line
// 12), 3 events, checkpoint (line 16), 2 unsigned events (lines 17-18).
func sampleLog(t *testing.T) [][]byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.log")
	l := openTest(t, Params{File: path, KeyFile: testKeyFile(t)})
	writeN(t, l, "a", 10)
	if err := l.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	writeN(t, l, "b", 3)
	if err := l.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	writeN(t, l, "c", 2)
	lines := readLines(t, path)
	closeTest(t, l)
	if len(lines) != 18 {
		t.Fatalf("%d lines", len(lines))
	}
	return lines
}

func TestVerifyIntact(t *testing.T) {
	lines := sampleLog(t)
	rep, err := Verify(bytes.NewReader(joinLines(lines)), testPub())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Lines != 18 || rep.Checkpoints != 2 || rep.LastSigned != (Position{Line: 16, Seq: 16}) || rep.Unsigned != 2 || !rep.SignaturesChecked {
		t.Fatalf("report %+v", rep)
	}
	rep, err = Verify(bytes.NewReader(joinLines(lines)), nil)
	if err != nil || rep.SignaturesChecked || rep.Checkpoints != 2 {
		t.Fatalf("without a key: %+v, %v", rep, err)
	}
}

func TestVerifyNamesTheFirstTamperedLine(t *testing.T) {
	lines := sampleLog(t)
	edit := func(i int) []byte { return bytes.Replace(lines[i], []byte(`"actor":"a-`), []byte(`"actor":"z-`), 1) }
	// forged continues the chain after line 5 as seq 6, as an attacker can.
	forged := appendLine(nil, 6, sha256.Sum256(lines[4]), []byte(`{"time":"2025-01-01T00:00:00Z","actor":"mallory","action":"view","via":"whep","result":"ok"}`), nil)
	tests := []struct {
		name   string
		mutate func() [][]byte
		line   int
		seq    uint64
		kind   string
		detail string
	}{
		{"edit a line", func() [][]byte { return with(lines, 4, edit(4)) }, 5, 5, "altered", "its hash does not match the prev of line 6 (seq 6)"},
		{"edit the seq of a line", func() [][]byte {
			return with(lines, 4, bytes.Replace(lines[4], []byte(`{"seq":5,`), []byte(`{"seq":9,`), 1))
		}, 5, 9, "altered", "seq 9 where seq 5 belongs (line 6 has seq 6)"},
		{"delete a line", func() [][]byte { return without(lines, 4) }, 5, 6, "missing", "seq 6 follows seq 4 on line 4: 1 line missing"},
		{"delete three lines", func() [][]byte { return without(without(without(lines, 4), 4), 4) }, 5, 8, "missing", "3 lines missing"},
		{"delete the first line", func() [][]byte { return without(lines, 0) }, 1, 2, "missing", "does not begin with a start or reopen line"},
		{"insert a forged line", func() [][]byte { return inserted(lines, 5, forged) }, 6, 6, "inserted", "seq 6 is used again by line 7 (seq 6)"},
		{"insert a copy of a line", func() [][]byte { return inserted(lines, 5, lines[2]) }, 6, 3, "inserted", "line 7 (seq 6) continues the chain"},
		{"insert a line that is not JSON", func() [][]byte { return inserted(lines, 5, []byte("hello")) }, 6, 0, "inserted", "not an audit line"},
		{"insert an old-format line", func() [][]byte {
			return inserted(lines, 5, []byte(`{"time":"2025-01-01T00:00:00Z","actor":"mallory","action":"view"}`))
		}, 6, 0, "inserted", "line 7 (seq 6) continues the chain from line 5 (seq 5)"},
		{"swap two lines", func() [][]byte { return swapped(lines, 4, 5) }, 5, 6, "out of order", "swapped with line 6 (seq 5)"},
		{"move a line later", func() [][]byte { return inserted(without(lines, 4), 7, lines[4]) }, 5, 6, "out of order", "seq 6 comes before seq 5, which is on line 8"},
		{"replace a line by garbage", func() [][]byte { return with(lines, 4, []byte("garbage")) }, 5, 0, "altered", "seq 5 belongs here"},
		{"edit a checkpoint", func() [][]byte {
			return with(lines, 11, bytes.Replace(lines[11], []byte(`"time":"2`), []byte(`"time":"1`), 1))
		}, 12, 12, "bad signature", "does not verify"},
		{"edit the line a checkpoint covers", func() [][]byte { return with(lines, 10, edit(10)) }, 11, 11, "altered", "its hash does not match the prev of line 12 (seq 12)"},
		{"rewrite the chain after an edit", func() [][]byte { return rechain(t, with(lines, 2, edit(2)), 3, nil) }, 12, 12, "bad signature", "rewritten"},
		{"rewrite and sign with another key", func() [][]byte {
			return rechain(t, with(lines, 2, edit(2)), 3, ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, 32)))
		}, 12, 12, "bad signature", "forged"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Verify(bytes.NewReader(joinLines(tc.mutate())), testPub())
			p := problemOf(t, err)
			if p.Line != tc.line || p.Seq != tc.seq || p.Kind != tc.kind || !strings.Contains(p.Detail, tc.detail) {
				t.Fatalf("got %q\nwant line %d (seq %d): %s: ...%s...", err, tc.line, tc.seq, tc.kind, tc.detail)
			}
		})
	}
}

func TestVerifyForgedCheckpointKeyID(t *testing.T) {
	lines := sampleLog(t)
	other := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, 32))
	otherID := keyID(other.Public().(ed25519.PublicKey))
	// Name the attacker's key in every checkpoint and re-sign with it.
	for i := range lines {
		lines[i] = bytes.Replace(lines[i], []byte(`"key":"`+keyID(testPub())+`"`), []byte(`"key":"`+otherID+`"`), 1)
	}
	lines = rechain(t, lines, 0, other)
	_, err := Verify(bytes.NewReader(joinLines(lines)), testPub())
	p := problemOf(t, err)
	if p.Line != 12 || p.Kind != "other key" {
		t.Fatalf("got %v", err)
	}
	// The attacker's own key verifies the forgery: the public key must come
	// from the server, not from the log.
	if _, err := Verify(bytes.NewReader(joinLines(lines)), other.Public().(ed25519.PublicKey)); err != nil {
		t.Fatalf("with the forger's key: %v", err)
	}
}

func TestVerifyRewrittenWithoutCheckpointsIsUnsigned(t *testing.T) {
	lines := sampleLog(t)
	var kept [][]byte
	for _, l := range lines {
		if !bytes.Contains(l, []byte(`"kind":"checkpoint"`)) {
			kept = append(kept, l)
		}
	}
	kept = rechain(t, kept, 1, nil)
	for i := range kept { // renumber
		kept[i] = renumber(t, kept[i], uint64(i+1))
	}
	kept = rechain(t, kept, 1, nil)
	rep, err := Verify(bytes.NewReader(joinLines(kept)), testPub())
	if err != nil || rep.Checkpoints != 0 || rep.LastSigned.Seq != 0 || rep.Unsigned != len(kept) {
		t.Fatalf("report %+v, %v", rep, err)
	}
	path := filepath.Join(t.TempDir(), "audit.log")
	if err := os.WriteFile(path, joinLines(kept), 0o640); err != nil {
		t.Fatal(err)
	}
	pubFile := filepath.Join(t.TempDir(), "audit.key.pub")
	if err := os.WriteFile(pubFile, []byte(hexPub()), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err = Command([]string{"verify", "-key", pubFile, path}, &out)
	if err == nil || !strings.Contains(err.Error(), "no signed checkpoint") {
		t.Fatalf("command: %v", err)
	}
}

func TestVerifyRotatedSet(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	l := openTest(t, Params{File: path, KeyFile: testKeyFile(t)})
	writeN(t, l, "a", 3)
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	writeN(t, l, "b", 3)
	closeTest(t, l)
	rep, err := VerifyFiles([]string{path + ".1", path}, testPub())
	if err != nil || rep.Reopens != 1 || rep.LastSeq != 9 || rep.Checkpoints != 1 {
		t.Fatalf("report %+v, %v", rep, err)
	}
	// The newer file alone continues an earlier one.
	rep, err = VerifyFiles([]string{path}, testPub())
	if err != nil || rep.ContinuesFrom != 4 {
		t.Fatalf("newer file alone: %+v, %v", rep, err)
	}
	// Out of order, or with a file left out, the set does not verify.
	_, err = VerifyFiles([]string{path, path + ".1"}, testPub())
	if p := problemOf(t, err); p.File != path+".1" || p.Line != 1 {
		t.Fatalf("reversed: %v", err)
	}
	other := filepath.Join(dir, "other.log")
	l = openTest(t, Params{File: other, KeyFile: testKeyFile(t)})
	writeN(t, l, "c", 1)
	closeTest(t, l)
	_, err = VerifyFiles([]string{path + ".1", other}, testPub())
	if p := problemOf(t, err); p.Kind != "not linked" || p.File != other {
		t.Fatalf("unrelated files: %v", err)
	}
}

func TestCommand(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	l := openTest(t, Params{File: path, KeyFile: testKeyFile(t)})
	writeN(t, l, "a", 4)
	closeTest(t, l)
	pubFile := filepath.Join(dir, "audit.key.pub")
	if err := os.WriteFile(pubFile, []byte(hexPub()), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := Command([]string{"verify", "-key", pubFile, path}, &out); err != nil {
		t.Fatal(err)
	}
	var sealed struct {
		Time time.Time `json:"time"`
	}
	if lines := readLines(t, path); json.Unmarshal(lines[len(lines)-1], &sealed) != nil || sealed.Time.IsZero() {
		t.Fatalf("the last line %q has no time", lines[len(lines)-1])
	}
	want := "OK: 1 file(s), 6 lines, seq 1-6, 1 checkpoint(s), last signed seq 6 (line 6 at " + sealed.Time.UTC().Format(time.RFC3339) + "), 0 line(s) after it unsigned\n"
	if out.String() != want {
		t.Fatalf("output %q\nwant   %q", out.String(), want)
	}

	lines := readLines(t, path)
	tampered := filepath.Join(dir, "tampered.log")
	if err := os.WriteFile(tampered, joinLines(without(lines, 2)), 0o640); err != nil {
		t.Fatal(err)
	}
	err := Command([]string{"verify", "-key", pubFile, tampered}, &out)
	if err == nil || !strings.Contains(err.Error(), "line 3 (seq 4): missing: seq 4 follows seq 2") {
		t.Fatalf("tampered: %v", err)
	}

	for _, args := range [][]string{nil, {"check"}, {"verify"}, {"verify", "-key", filepath.Join(dir, "nope.pub"), path}} {
		if err := Command(args, &out); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
	out.Reset()
	if err := Command([]string{"verify", "-key", "", path}, &out); err != nil || !strings.Contains(out.String(), "signatures NOT checked") {
		t.Fatalf("chain only: %q, %v", out.String(), err)
	}
}

func hexPub() string { return hex.EncodeToString(testPub()) + "\n" }

func with(lines [][]byte, i int, line []byte) [][]byte {
	out := append([][]byte(nil), lines...)
	out[i] = line
	return out
}

func without(lines [][]byte, i int) [][]byte {
	out := append([][]byte(nil), lines[:i]...)
	return append(out, lines[i+1:]...)
}

func inserted(lines [][]byte, i int, line []byte) [][]byte {
	out := append([][]byte(nil), lines[:i]...)
	out = append(out, line)
	return append(out, lines[i:]...)
}

func swapped(lines [][]byte, i, j int) [][]byte {
	out := append([][]byte(nil), lines...)
	out[i], out[j] = out[j], out[i]
	return out
}

// renumber sets the seq of a line.
func renumber(t *testing.T, line []byte, seq uint64) []byte {
	t.Helper()
	i := bytes.Index(line, []byte(`,"prev":`))
	if i < 0 {
		t.Fatalf("line %q has no prev", line)
	}
	return append([]byte(`{"seq":`+strconv.FormatUint(seq, 10)), line[i:]...)
}
