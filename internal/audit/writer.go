package audit

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// sink is the file end of the log and the chain head. It is used by one
// goroutine at a time (Open, then run).
//
// Crash and failure behaviour: a group of lines is written with one write
// and one fsync; when either fails the file is truncated back to its size
// before the group and the chain head is not advanced, so a failed group
// leaves no trace but the gap line written with the next group. A crash can
// leave a torn last line; the next Open ends it with a newline and writes a
// restart line that describes it.
type sink struct {
	path string
	out  io.Writer // standard error when path is "-"
	f    *os.File
	fi   os.FileInfo // of f when opened, to tell whether path still names it
	size int64       // bytes in f as far as this process knows

	seq      uint64   // seq of the last durable line (0: none yet)
	head     [32]byte // its hash
	unsigned int      // lines after the last checkpoint

	pending [][]byte // marker bodies to write before the next lines
	raw     []byte   // bytes to write before them: a newline that ends a torn line

	lost      int // events refused since the last durable write
	lostSince time.Time
	lostCause string

	buf []byte
}

// owed reports whether lines are waiting to be written without an event.
func (s *sink) owed() bool { return len(s.pending) > 0 || len(s.raw) > 0 || s.lost > 0 }

// open opens the file at l.p.File and sets up the chain to continue it.
func (s *sink) open(l *Log) error {
	s.path = l.p.File
	if s.path == "-" {
		s.out = os.Stderr
		s.pending = append(s.pending, l.startMarker(""))
		return nil
	}
	f, fi, err := openAt(s.path)
	if err != nil {
		return &Error{File: s.path, Op: "opened", Err: err}
	}
	s.f, s.fi, s.size = f, fi, fi.Size()
	if err := s.continueChain(l); err != nil {
		_ = f.Close()
		return &Error{File: s.path, Op: "read", Err: err}
	}
	return nil
}

// openAt opens path for appending, creating it and its directory if needed.
func openAt(path string) (*os.File, os.FileInfo, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, nil, err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, nil, err
	}
	if fi.Size() == 0 {
		syncDir(dir)
	}
	return f, fi, nil
}

// syncDir makes a new directory entry durable.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}

// continueChain reads the end of the file and decides how the chain goes on.
func (s *sink) continueChain(l *Log) error {
	l2, l1, frag, err := readTail(s.f, s.size)
	if err != nil {
		return err
	}
	p1, ok1 := l1.chained()
	p2, ok2 := l2.chained()
	pf, okf := frag.chained()
	if frag != nil {
		s.raw = []byte("\n")
	}
	switch {
	case okf && ((ok1 && pf.seq == p1.seq+1 && pf.prev == l1.hash) || (l1 == nil && pf.seq == 1 && pf.prev == zeroHash)):
		// Complete but for its newline.
		s.seq, s.head = pf.seq, frag.hash
		s.pending = append(s.pending, l.restartMarker(nil))
	case ok1:
		s.seq, s.head = p1.seq, l1.hash
		s.pending = append(s.pending, l.restartMarker(frag))
	case frag == nil && l1 != nil && ok2:
		s.seq, s.head = p2.seq, l2.hash
		s.pending = append(s.pending, l.restartMarker(l1))
	case frag == nil && l1 == nil:
		s.pending = append(s.pending, l.startMarker(""))
	default:
		last := frag
		if last == nil {
			last = l1
		}
		s.head = last.hash
		s.pending = append(s.pending, l.startMarker("the file does not end with a chained audit line "+
			"(written by an older version, or by something else); a new chain starts here, linked to the hash of the line before"))
		l.log.Warn("audit log does not end with a chained line; starting a new chain in it", "component", "audit", "file", s.path)
	}
	return nil
}

// tailLine is a line at the end of a file.
type tailLine struct {
	n    int64  // length without newline
	b    []byte // its bytes; nil when longer than maxLine
	hash [32]byte
}

func (t *tailLine) chained() (parsed, bool) {
	if t == nil || t.b == nil {
		return parsed{}, false
	}
	p, err := parseLine(t.b)
	return p, err == nil
}

// readTail returns the last two complete lines of f (l2 before l1) and the
// bytes after the last newline (frag); each is nil when absent.
func readTail(f *os.File, size int64) (l2, l1, frag *tailLine, err error) {
	nl, err := lastNewline(f, size)
	if err != nil {
		return nil, nil, nil, err
	}
	if nl+1 < size {
		if frag, err = readLine(f, nl+1, size); err != nil {
			return nil, nil, nil, err
		}
	}
	if nl < 0 {
		return nil, nil, frag, nil
	}
	nl1, err := lastNewline(f, nl)
	if err != nil {
		return nil, nil, nil, err
	}
	if l1, err = readLine(f, nl1+1, nl); err != nil || nl1 < 0 {
		return nil, l1, frag, err
	}
	nl2, err := lastNewline(f, nl1)
	if err != nil {
		return nil, nil, nil, err
	}
	l2, err = readLine(f, nl2+1, nl1)
	return l2, l1, frag, err
}

// lastNewline returns the offset of the last newline before end, or -1.
func lastNewline(f *os.File, end int64) (int64, error) {
	buf := make([]byte, 64<<10)
	for end > 0 {
		n := min(end, int64(len(buf)))
		off := end - n
		if _, err := f.ReadAt(buf[:n], off); err != nil {
			return 0, err
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			return off + int64(i), nil
		}
		end = off
	}
	return -1, nil
}

// readLine reads bytes [from, to) of f.
func readLine(f *os.File, from, to int64) (*tailLine, error) {
	t := &tailLine{n: to - from}
	if t.n <= maxLine {
		t.b = make([]byte, t.n)
		if _, err := f.ReadAt(t.b, from); err != nil {
			return nil, err
		}
		t.hash = sha256.Sum256(t.b)
		return t, nil
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, from, t.n)); err != nil {
		return nil, err
	}
	h.Sum(t.hash[:0])
	return t, nil
}

func (l *Log) startMarker(reason string) []byte {
	return markerBody(marker{Kind: kindStart, Time: l.now().UTC(), Format: formatName, Key: l.keyID, Reason: reason})
}

func (l *Log) restartMarker(torn *tailLine) []byte {
	m := marker{Kind: kindRestart, Time: l.now().UTC(), Key: l.keyID, Reason: "a new process continues this log"}
	if torn != nil {
		m.TornBytes, m.TornSHA256 = int(torn.n), hex.EncodeToString(torn.hash[:])
		m.Reason = fmt.Sprintf("a new process continues this log; the line before this one is torn "+
			"(%d bytes: the process before stopped while writing it) and is kept as it was", torn.n)
	}
	return markerBody(m)
}

// commit writes the owed markers, the events of batch and, with sign, a
// checkpoint, as one group: one write and one fsync. An error means none of
// them is in the trail.
func (l *Log) commit(batch []*request, sign bool) error {
	unlinked, err := l.commitOnce(batch, sign)
	if unlinked {
		// The file was removed while the group was written to it: write the
		// group again to the new file at the path.
		if unlinked, err = l.commitOnce(batch, sign); unlinked {
			err = l.failed(&Error{File: l.s.path, Op: "written", Err: errors.New("the file is removed as soon as it is created")}, len(batch))
		}
	}
	return err
}

func (l *Log) commitOnce(batch []*request, sign bool) (unlinked bool, err error) {
	s := &l.s
	if s.f != nil {
		if err := l.checkPath(); err != nil {
			return false, l.failed(err, len(batch))
		}
	}
	signed := sign && l.key != nil
	seq, head := s.seq, s.head
	buf := append(s.buf[:0], s.raw...)
	lines := 0
	add := func(body []byte, key ed25519.PrivateKey) {
		seq++
		lines++
		start := len(buf)
		buf = appendLine(buf, seq, head, body, key)
		head = sha256.Sum256(buf[start:])
		buf = append(buf, '\n')
	}
	for _, m := range s.pending {
		add(m, nil)
	}
	if s.lost > 0 {
		add(markerBody(marker{Kind: kindGap, Time: l.now().UTC(), Lost: s.lost, Since: s.lostSince,
			Reason: fmt.Sprintf("%d events could not be written after seq %d (%s); Write returned an error for each, so their access was refused",
				s.lost, s.seq, s.lostCause)}), nil)
	}
	for _, r := range batch {
		add(r.body, nil)
	}
	if signed {
		add(markerBody(marker{Kind: kindCheckpoint, Time: l.now().UTC(), Key: l.keyID}), l.key)
	}
	s.buf = buf
	if len(buf) == 0 {
		return false, nil
	}
	if err := s.write(buf); err != nil {
		return false, l.failed(&Error{File: s.path, Op: "written", Err: err}, len(batch))
	}
	if s.unlinked() {
		return true, nil
	}
	s.seq, s.head = seq, head
	s.pending, s.raw = s.pending[:0], nil
	s.lost, s.lostSince, s.lostCause = 0, time.Time{}, ""
	if signed {
		s.unsigned = 0
	} else {
		s.unsigned += lines
	}
	l.recovered()
	return false, nil
}

// write appends buf and makes it durable, or leaves the file as it was.
func (s *sink) write(buf []byte) error {
	if s.out != nil {
		_, err := s.out.Write(buf)
		return err
	}
	n, err := s.f.Write(buf)
	if err == nil {
		err = s.f.Sync()
	}
	if err != nil {
		if n > 0 {
			if terr := s.f.Truncate(s.size); terr != nil {
				if fi, serr := s.f.Stat(); serr == nil {
					s.size = fi.Size()
				}
				return fmt.Errorf("%w; the partly written lines could not be removed (%v)", err, terr)
			}
		}
		return err
	}
	s.size += int64(n)
	return nil
}

// unlinked reports whether the open file has no name any more.
func (s *sink) unlinked() bool {
	if s.f == nil {
		return false
	}
	fi, err := s.f.Stat()
	if err != nil {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && st.Nlink == 0
}

// checkPath makes sure the path still names the open file with the content
// this process wrote, reopening it when it does not.
func (l *Log) checkPath() error {
	s := &l.s
	fi, err := os.Stat(s.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if !s.unlinked() {
			return l.reopen(fmt.Sprintf("%s was renamed (log rotation); the renamed file holds the lines before this one, and this file continues its chain", s.path))
		}
		return l.reopen(fmt.Sprintf("%s was removed; this file continues its chain", s.path))
	case err != nil:
		return &Error{File: s.path, Op: "checked", Err: err}
	case !os.SameFile(fi, s.fi):
		why := "was renamed (log rotation) or replaced; the renamed file holds the lines before this one"
		if s.unlinked() {
			why = "was replaced by another file and the file it named deleted (edited in place?)"
		}
		return l.reopen(fmt.Sprintf("%s %s; this file continues its chain", s.path, why))
	case fi.Size() < s.size:
		reason := fmt.Sprintf("%s was truncated from %d to %d bytes (copytruncate log rotation, or tampering); this content continues the chain",
			s.path, s.size, fi.Size())
		l.log.Warn("audit log truncated", "component", "audit", "file", s.path, "from", s.size, "to", fi.Size())
		s.size = fi.Size()
		s.raw = s.newlineIfNeeded()
		s.pending = append(s.pending[:0], l.reopenMarker(reason))
	case fi.Size() > s.size:
		l.log.Error("ALARM: audit log has bytes this process did not write (another writer, or tampering); audit verify shows where",
			"component", "audit", "file", s.path, "bytes", fi.Size()-s.size)
		s.size = fi.Size()
		s.raw = s.newlineIfNeeded()
	}
	return nil
}

// reopen opens a new file at the path; its first line continues the chain.
func (l *Log) reopen(reason string) error {
	s := &l.s
	f, fi, err := openAt(s.path)
	if err != nil {
		return &Error{File: s.path, Op: "reopened", Err: err}
	}
	_ = s.f.Close()
	s.f, s.fi, s.size = f, fi, fi.Size()
	s.raw = s.newlineIfNeeded()
	// Markers owed to the old file do not belong in the new one.
	s.pending = append(s.pending[:0], l.reopenMarker(reason))
	l.log.Warn("audit log reopened", "component", "audit", "file", s.path, "reason", reason, "after_seq", s.seq)
	return nil
}

// reopenMarker starts new content at the path: a reopen line, or a start line
// when no line of the chain was written yet.
func (l *Log) reopenMarker(reason string) []byte {
	if l.s.seq == 0 {
		l.s.head = zeroHash
		return l.startMarker(reason)
	}
	return markerBody(marker{Kind: kindReopen, Time: l.now().UTC(), Key: l.keyID, Reason: reason})
}

// newlineIfNeeded returns a newline when the file does not end with one.
func (s *sink) newlineIfNeeded() []byte {
	if s.size == 0 {
		return nil
	}
	var b [1]byte
	if _, err := s.f.ReadAt(b[:], s.size-1); err != nil || b[0] == '\n' {
		return nil
	}
	return []byte("\n")
}

func (s *sink) close() error {
	if s.f == nil {
		return nil
	}
	return s.f.Close()
}
