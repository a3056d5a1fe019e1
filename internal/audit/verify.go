package audit

import (
	"bufio"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// Report is the result of verifying an audit trail.
type Report struct {
	Files []string // the files verified, in order ("" for a reader)
	Lines int      // lines read, in all files

	FirstSeq, LastSeq uint64 // of the chain, up to the problem if any
	// ContinuesFrom is the seq the first line continues when the trail
	// begins with a reopen line (its earlier files were not given).
	ContinuesFrom uint64
	// Unchained counts lines before the chain started (an older format).
	Unchained int

	// Checkpoints counts checkpoints whose signature verified (or, without a
	// public key, that were seen).
	Checkpoints       int
	SignaturesChecked bool
	LastSigned        Position // the last such checkpoint; zero when none
	// LastSignedAt is when the last checkpoint was written. What was written after it
	// and cut off cannot be told from the file; a clean stop ends the file with one.
	LastSignedAt time.Time
	// Unsigned counts the chained lines after LastSigned: chained but not
	// yet signed.
	Unsigned int

	Restarts, Reopens, Gaps int
	// Notes describe torn lines, gaps, reopens and the like, which are part
	// of an honest trail.
	Notes []string

	// Problem is the first altered, inserted, missing or unsigned line, or
	// nil when the trail verifies.
	Problem *Problem
}

// Position names a line of a trail.
type Position struct {
	File string // "" for a single reader
	Line int    // from 1 in its file
	Seq  uint64
}

// Problem is the first line where the trail does not verify.
type Problem struct {
	Position
	// Kind is "altered", "inserted", "missing", "out of order", "not linked",
	// "not an audit line", "altered or inserted", "bad signature" or
	// "other key".
	Kind   string
	Detail string
}

func (p *Problem) Error() string {
	return p.Position.String() + ": " + p.Kind + ": " + p.Detail
}

func (p Position) String() string {
	s := fmt.Sprintf("line %d", p.Line)
	if p.File != "" {
		s = p.File + " " + s
	}
	if p.Seq > 0 {
		s += fmt.Sprintf(" (seq %d)", p.Seq)
	}
	return s
}

// Verify checks one audit file read from r. Checkpoints are verified with
// pub; with a nil pub only the chain is checked. The error is a *Problem when
// the trail does not verify, and also in the report.
func Verify(r io.Reader, pub ed25519.PublicKey) (Report, error) {
	v := &verifier{pub: pub, names: []string{""}, accepted: -1, probAt: -1}
	if err := v.read(r, 0); err != nil {
		return Report{}, err
	}
	return v.run()
}

// VerifyFiles checks a rotated set of audit files, oldest first, as one
// trail.
func VerifyFiles(paths []string, pub ed25519.PublicKey) (Report, error) {
	if len(paths) == 0 {
		return Report{}, errors.New("audit verify: no files given")
	}
	v := &verifier{pub: pub, names: paths, accepted: -1, probAt: -1}
	for i, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return Report{}, fmt.Errorf("audit verify: %w", err)
		}
		err = v.read(f, i)
		_ = f.Close()
		if err != nil {
			return Report{}, fmt.Errorf("audit verify %s: %w", p, err)
		}
	}
	return v.run()
}

// rec is what the verifier keeps of a line.
type rec struct {
	file, line int
	size       int
	hash       [32]byte
	noNewline  bool
	ok         bool   // a chained line
	bad        string // why not
	seq        uint64
	prev       [32]byte
	kind       string
	time       time.Time
	sig        sigState
	keyID      string
	tornBytes  int
	tornHash   string
	lost       int
	reason     string
}

type verifier struct {
	pub   ed25519.PublicKey
	names []string
	recs  []rec
	rep   Report
	// accepted is the index of the last line taken into the chain, probAt that of the
	// line a problem names (-1: none).
	accepted, probAt int
}

// read appends the lines of file number file.
func (v *verifier) read(r io.Reader, file int) error {
	br := bufio.NewReaderSize(r, 64<<10)
	h := sha256.New()
	var keep []byte
	for line := 1; ; line++ {
		h.Reset()
		keep = keep[:0]
		size, long, newline := 0, false, false
		var err error
		for {
			var chunk []byte
			chunk, err = br.ReadSlice('\n')
			if n := len(chunk); n > 0 && chunk[n-1] == '\n' {
				chunk, newline = chunk[:n-1], true
			}
			h.Write(chunk)
			size += len(chunk)
			if !long && size <= maxLine {
				keep = append(keep, chunk...)
			} else {
				long = true
			}
			if err != bufio.ErrBufferFull {
				break
			}
		}
		if err != nil && err != io.EOF {
			return err
		}
		if err == io.EOF && size == 0 && !newline {
			return nil
		}
		rc := rec{file: file, line: line, size: size, noNewline: !newline}
		h.Sum(rc.hash[:0])
		if long {
			rc.bad = "it is longer than 1 MiB"
		} else if p, perr := parseLine(keep); perr != nil {
			rc.bad = perr.Error()
		} else {
			rc.ok, rc.seq, rc.prev, rc.kind, rc.time = true, p.seq, p.prev, p.Kind, p.Time
			rc.sig, rc.keyID = checkSig(keep, p, v.pub), p.Key
			rc.tornBytes, rc.tornHash, rc.lost, rc.reason = p.TornBytes, p.TornSHA256, p.Lost, p.Reason
		}
		v.recs = append(v.recs, rc)
		if err == io.EOF {
			return nil
		}
	}
}

// run walks the chain; see the package documentation for the rules.
func (v *verifier) run() (Report, error) {
	v.rep.Files = v.names
	v.rep.Lines = len(v.recs)
	v.rep.SignaturesChecked = v.pub != nil
	if p := v.walk(); p != nil {
		// A line found bad after it was taken into the chain (altered, so the next
		// line's link breaks) takes the chain back to the line before it; a bad line
		// after the chain's last (an old seq) leaves the chain as it is.
		if p.Seq > 0 && p.Seq <= v.rep.LastSeq && v.probAt <= v.accepted {
			v.rep.LastSeq = p.Seq - 1
		}
		v.rep.Problem = p
		return v.rep, p
	}
	return v.rep, nil
}

func (v *verifier) walk() *Problem {
	recs, n := v.recs, len(v.recs)
	if n == 0 {
		return nil
	}
	i := 0
	for i < n && !recs[i].ok && recs[i].file == 0 {
		i++
	}
	switch {
	case i == n && n == 1 && recs[0].noNewline:
		v.note(0, "torn: the only line is incomplete (the writing process stopped in the middle of it)")
		return nil
	case i == n:
		return v.problem(0, "not an audit line", recs[0].bad)
	case i > 0:
		if recs[i].kind != kindStart || recs[i].prev != recs[i-1].hash || recs[i].file != 0 {
			return v.problem(0, "not an audit line", recs[0].bad)
		}
		v.rep.Unchained = i
		v.note(i, fmt.Sprintf("a chain starts here; the %d line(s) before it are not chained and cannot be verified", i))
	case recs[0].kind == kindStart && recs[0].seq == 1 && recs[0].prev == zeroHash:
	case recs[0].kind == kindReopen:
		v.rep.ContinuesFrom = recs[0].seq - 1
		v.note(0, fmt.Sprintf("continues seq %d of an earlier file that was not given", recs[0].seq-1))
	default:
		return v.problem(0, "missing", "the trail does not begin with a start or reopen line: the lines before it are missing")
	}
	v.rep.FirstSeq = recs[i].seq
	if p := v.accept(i); p != nil {
		return p
	}
	last := i
	for j := i + 1; j < n; j++ {
		if v.follows(last, j) {
			if p := v.accept(j); p != nil {
				return p
			}
			last = j
			continue
		}
		if v.tornMarked(j) {
			v.note(j, fmt.Sprintf("torn: incomplete line (%d bytes) left by a process that stopped while writing it; %s describes it", recs[j].size, v.where(j+1, j)))
			continue
		}
		if !recs[j].ok {
			if j == n-1 && recs[j].noNewline {
				v.note(j, "torn: the last line is incomplete (the writing process stopped in the middle of it, or is writing it now)")
				return nil
			}
			return v.classifyBad(last, j)
		}
		return v.classify(last, j)
	}
	return nil
}

// accept takes line j into the verified chain.
func (v *verifier) accept(j int) *Problem {
	r := &v.recs[j]
	v.rep.LastSeq, v.accepted = r.seq, j
	v.rep.Unsigned++
	switch r.kind {
	case kindCheckpoint:
		switch r.sig {
		case sigInvalid:
			return v.problem(j, "bad signature", "the checkpoint signature does not verify with the given public key: "+
				"this line or the lines before it were rewritten, or the checkpoint was forged")
		case sigOtherKey:
			return v.problem(j, "other key", fmt.Sprintf("the checkpoint names signing key %s, not the given public key (%s): "+
				"pass -key with the public key of the server that wrote this log; otherwise the log was rewritten", r.keyID, keyID(v.pub)))
		}
		v.rep.Checkpoints++
		v.rep.LastSigned, v.rep.LastSignedAt = v.pos(j), r.time
		v.rep.Unsigned = 0
	case kindRestart:
		v.rep.Restarts++
	case kindReopen:
		v.rep.Reopens++
		if j > 0 {
			v.note(j, "reopened: "+r.reason)
		}
	case kindGap:
		v.rep.Gaps++
		v.note(j, fmt.Sprintf("gap: %d event(s) refused: %s", r.lost, r.reason))
	}
	return nil
}

// classifyBad names the problem at line j, which is not a chained line and
// does not follow line a.
func (v *verifier) classifyBad(a, j int) *Problem {
	r, A := &v.recs[j], v.recs[a].seq
	switch {
	case v.follows(a, j+1):
		return v.problem(j, "inserted", fmt.Sprintf("not an audit line (%s); %s continues the chain from %s",
			r.bad, v.where(j+1, j), v.where(a, j)))
	case j+1 < len(v.recs) && v.recs[j+1].ok && v.recs[j+1].seq == A+2:
		return v.problem(j, "altered", fmt.Sprintf("not an audit line any more (%s); seq %d belongs here (%s has seq %d)",
			r.bad, A+1, v.at(j+1, j), A+2))
	default:
		return v.problem(j, "altered or inserted", fmt.Sprintf("not an audit line (%s)", r.bad))
	}
}

// classify names the problem at chained line j, which does not follow line a.
func (v *verifier) classify(a, j int) *Problem {
	recs, n := v.recs, len(v.recs)
	A, s := recs[a].seq, recs[j].seq
	boundary := recs[j].file != recs[a].file
	switch {
	case s == A+1:
		switch {
		case boundary:
			return v.problem(j, "not linked", fmt.Sprintf("its prev is not the hash of the last line of %s (%s): "+
				"the files are not consecutive files of one log, or that line was altered", v.names[recs[a].file], v.where(a, j)))
		case v.follows(a, j+1):
			return v.problem(j, "inserted", fmt.Sprintf("it does not link to %s, and %s continues the chain from there", v.where(a, j), v.where(j+1, j)))
		case v.confirmed(j) && recs[a].sig != sigValid:
			return v.problem(a, "altered", fmt.Sprintf("its hash does not match the prev of %s", v.where(j, a)))
		}
		return v.problem(j, "altered", fmt.Sprintf("its prev does not match the hash of %s, and the next line does not link to it", v.where(a, j)))
	case s > A+1:
		if k := v.find(a, j+1); k >= 0 {
			switch {
			case k == j+1 && v.linksTo(j+2, j):
				return v.problem(j, "out of order", fmt.Sprintf("swapped with %s", v.where(k, j)))
			case !v.linkedFrom(j):
				return v.problem(j, "inserted", fmt.Sprintf("seq %d does not belong here and no line links to it; %s continues the chain from %s",
					s, v.where(k, j), v.where(a, j)))
			}
			return v.problem(j, "out of order", fmt.Sprintf("seq %d comes before seq %d, which is on %s: lines were moved", s, A+1, v.at(k, j)))
		}
		if !v.confirmed(j) && j+1 < n && recs[j+1].ok && recs[j+1].seq == A+2 {
			return v.problem(j, "altered", fmt.Sprintf("seq %d where seq %d belongs (%s has seq %d)", s, A+1, v.at(j+1, j), A+2))
		}
		missing := s - A - 1
		plural := "s"
		if missing == 1 {
			plural = ""
		}
		return v.problem(j, "missing", fmt.Sprintf("seq %d follows seq %d on %s: %d line%s missing", s, A, v.at(a, j), missing, plural))
	case s == 1 && recs[j].kind == kindStart:
		return v.problem(j, "not linked", fmt.Sprintf("a new chain starts here after seq %d (%s): the log was started again without its "+
			"previous content, or the files are not one log", A, v.where(a, j)))
	case s == A && recs[j].prev == recs[a].prev:
		switch {
		case v.linksTo(j+1, a):
			return v.problem(j, "inserted", fmt.Sprintf("seq %d is used twice; %s links to the other one, %s", s, v.where(j+1, j), v.where(a, j)))
		case v.confirmed(j) && recs[a].sig != sigValid:
			return v.problem(a, "inserted", fmt.Sprintf("seq %d is used again by %s, which the line after it links to", s, v.where(j, a)))
		}
		return v.problem(j, "inserted", fmt.Sprintf("seq %d is used twice (also by %s)", s, v.where(a, j)))
	default:
		if v.follows(a, j+1) {
			return v.problem(j, "inserted", fmt.Sprintf("seq %d after seq %d (a copy of an earlier line?); %s continues the chain",
				s, A, v.where(j+1, j)))
		}
		return v.problem(j, "out of order", fmt.Sprintf("seq %d follows seq %d on %s", s, A, v.at(a, j)))
	}
}

// follows reports whether line k continues the chain from line a.
func (v *verifier) follows(a, k int) bool {
	return k < len(v.recs) && v.recs[k].ok && v.recs[k].seq == v.recs[a].seq+1 && v.recs[k].prev == v.recs[a].hash
}

// linksTo reports whether line k's prev is line j's hash.
func (v *verifier) linksTo(k, j int) bool {
	return k < len(v.recs) && v.recs[k].ok && v.recs[k].prev == v.recs[j].hash
}

// confirmed reports whether line j is as written: the next line links to it,
// or it is a checkpoint whose signature verifies.
func (v *verifier) confirmed(j int) bool {
	return v.linksTo(j+1, j) || v.recs[j].sig == sigValid
}

// find returns the first line from k on that continues the chain from a.
func (v *verifier) find(a, k int) int {
	for ; k < len(v.recs); k++ {
		if v.follows(a, k) {
			return k
		}
	}
	return -1
}

// linkedFrom reports whether any line links to line j.
func (v *verifier) linkedFrom(j int) bool {
	for k := range v.recs {
		if k != j && v.linksTo(k, j) {
			return true
		}
	}
	return false
}

// tornMarked reports whether the line after j describes j as torn.
func (v *verifier) tornMarked(j int) bool {
	if j+1 >= len(v.recs) {
		return false
	}
	r, m := &v.recs[j], &v.recs[j+1]
	return m.ok && m.file == r.file && m.tornBytes > 0 && m.tornBytes == r.size && m.tornHash == hex.EncodeToString(r.hash[:])
}

func (v *verifier) pos(j int) Position {
	r := &v.recs[j]
	p := Position{File: v.names[r.file], Line: r.line}
	if r.ok {
		p.Seq = r.seq
	}
	return p
}

// where names line k and its seq as seen from line j.
func (v *verifier) where(k, j int) string {
	s := v.at(k, j)
	if r := &v.recs[k]; r.ok {
		s += fmt.Sprintf(" (seq %d)", r.seq)
	}
	return s
}

// at names line k as seen from line j: with its file when that differs.
func (v *verifier) at(k, j int) string {
	r := &v.recs[k]
	s := fmt.Sprintf("line %d", r.line)
	if r.file != v.recs[j].file {
		s = v.names[r.file] + " " + s
	}
	return s
}

func (v *verifier) problem(j int, kind, detail string) *Problem {
	v.probAt = j
	return &Problem{Position: v.pos(j), Kind: kind, Detail: detail}
}

func (v *verifier) note(j int, text string) {
	v.rep.Notes = append(v.rep.Notes, v.pos(j).String()+": "+text)
}
