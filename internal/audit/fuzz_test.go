package audit

import (
	"bytes"
	"testing"
)

// FuzzVerify feeds the verifier arbitrary files. The seed corpus in
// testdata/fuzz/FuzzVerify holds valid logs and broken ones (edited, deleted,
// swapped, torn, rotated, forged, older format), signed with testSeed.
func FuzzVerify(f *testing.F) {
	pub := testPub()
	f.Fuzz(func(t *testing.T, data []byte) {
		orig := append([]byte(nil), data...)
		rep, err := Verify(bytes.NewReader(data), pub)
		if !bytes.Equal(orig, data) {
			t.Fatal("Verify modified its input")
		}
		lines := bytes.Count(data, []byte("\n"))
		if len(data) > 0 && data[len(data)-1] != '\n' {
			lines++
		}
		if rep.Lines != lines {
			t.Fatalf("report has %d lines, the input %d", rep.Lines, lines)
		}
		if err != nil {
			p := problemOf(t, err)
			if p != rep.Problem || p.Line < 1 || p.Line > lines || p.Kind == "" || p.Detail == "" {
				t.Fatalf("problem %+v, report %+v", p, rep)
			}
		} else if rep.Problem != nil {
			t.Fatalf("problem %v without an error", rep.Problem)
		}
		if rep.LastSigned.Seq > rep.LastSeq || rep.Checkpoints > lines || rep.Unsigned > lines {
			t.Fatalf("report %+v", rep)
		}
		for _, line := range bytes.Split(data, []byte("\n")) {
			p, err := parseLine(line)
			if err != nil {
				continue
			}
			// A line the parser accepts is exactly what appendLine writes
			// for its seq, prev and body.
			head := bytes.Index(line, []byte(`",`)) + 2
			if got := appendLine(nil, p.seq, p.prev, append([]byte("{"), line[head:]...), nil); !bytes.Equal(got, line) {
				t.Fatalf("line %q parses as seq %d but is written as %q", line, p.seq, got)
			}
		}
	})
}
