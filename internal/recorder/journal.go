package recorder

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"fieldvideo/internal/store"
)

// The journal is an append-only file of records, each framed as
//
//	length uint32 (big endian, of the payload) | CRC-32C uint32 (of the payload) | payload (JSON)
//
// after a fixed header. Every append is fsynced before the state change it
// records is acted on, so after a crash the journal says exactly which
// segments were spooled, stored at which site, and evicted. Only the tail can
// be torn (a crash in the middle of an append); reading stops at the first
// record that is incomplete or fails its checksum, and opening truncates the
// file there.

// journalHeader starts every journal file and names its format version.
const journalHeader = "fieldvideo recorder journal v1\n"

// maxRecordSize bounds one journal record; larger lengths mean a torn or
// foreign file.
const maxRecordSize = 1 << 20

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// Journal operations.
const (
	opOpen   = "open"    // a segment file was created in the spool
	opClose  = "close"   // the segment is complete: key, size, SHA-256 known
	opStored = "stored"  // the segment and its manifest are verified at a store
	opEvict  = "evict"   // the segment left the spool (confirmed at both sites, or discarded)
	opNextID = "next_id" // ids below ID are used (kept when the journal is compacted)
)

// record is one journal entry. Fields not used by an operation stay empty.
type record struct {
	Op string `json:"op"`
	ID uint64 `json:"id"`

	// open
	Source  string `json:"source,omitempty"`
	File    string `json:"file,omitempty"` // path of the .mp4 relative to the spool
	StartNS int64  `json:"start_ns,omitempty"`
	Aligned bool   `json:"aligned,omitempty"`

	// close
	Key        string `json:"key,omitempty"`
	Size       int64  `json:"size,omitempty"`
	SHA256     string `json:"sha256,omitempty"`
	DurationNS int64  `json:"duration_ns,omitempty"`
	Manifest   int64  `json:"manifest_size,omitempty"`
	Recovered  bool   `json:"recovered,omitempty"`

	// stored
	Store string `json:"store,omitempty"`

	// evict
	Reason string `json:"reason,omitempty"`
}

func (r *record) validate() error {
	switch r.Op {
	case opOpen:
		if r.Source == "" || r.File == "" {
			return fmt.Errorf("journal: open record %d without source or file", r.ID)
		}
	case opClose:
		if r.Key == "" || r.Size <= 0 || len(r.SHA256) != 64 {
			return fmt.Errorf("journal: close record %d without key, size or SHA-256", r.ID)
		}
	case opStored:
		if r.Store == "" {
			return fmt.Errorf("journal: stored record %d without store", r.ID)
		}
	case opEvict, opNextID:
	default:
		return fmt.Errorf("journal: unknown operation %q", r.Op)
	}
	return nil
}

// appendRecord encodes r onto b.
func appendRecord(b []byte, r *record) ([]byte, error) {
	payload, err := json.Marshal(r)
	if err != nil {
		return b, err
	}
	if len(payload) > maxRecordSize {
		return b, fmt.Errorf("journal: record of %d bytes is too large", len(payload))
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(payload)))
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(payload, crcTable))
	return append(b, payload...), nil
}

// errJournalHeader is returned for a file that is not a journal.
var errJournalHeader = errors.New("not a recorder journal (bad header); move it away or point spool_dir at the right directory")

// parseJournal decodes the records of a journal file's content. It returns
// the records before the first torn or corrupt one and the length of the
// content they span (the length to truncate the file to). tail reports why
// reading stopped early, nil when the whole content was read.
func parseJournal(b []byte) (recs []record, valid int, tail error, err error) {
	if len(b) == 0 {
		return nil, 0, nil, nil
	}
	if len(b) < len(journalHeader) {
		if string(b) == journalHeader[:len(b)] {
			// A header torn while the journal was created: start afresh.
			return nil, 0, errors.New("journal header is incomplete"), nil
		}
		return nil, 0, nil, errJournalHeader
	}
	if string(b[:len(journalHeader)]) != journalHeader {
		return nil, 0, nil, errJournalHeader
	}
	off := len(journalHeader)
	for off < len(b) {
		if len(b)-off < 8 {
			return recs, off, fmt.Errorf("journal: torn record header at offset %d", off), nil
		}
		n := int(binary.BigEndian.Uint32(b[off:]))
		sum := binary.BigEndian.Uint32(b[off+4:])
		if n == 0 || n > maxRecordSize {
			return recs, off, fmt.Errorf("journal: bad record length %d at offset %d", n, off), nil
		}
		if len(b)-off-8 < n {
			return recs, off, fmt.Errorf("journal: torn record at offset %d", off), nil
		}
		payload := b[off+8 : off+8+n]
		if crc32.Checksum(payload, crcTable) != sum {
			return recs, off, fmt.Errorf("journal: checksum mismatch at offset %d", off), nil
		}
		var r record
		if err := json.Unmarshal(payload, &r); err != nil {
			return recs, off, fmt.Errorf("journal: record at offset %d: %w", off, err), nil
		}
		if err := r.validate(); err != nil {
			return recs, off, fmt.Errorf("%w (offset %d)", err, off), nil
		}
		recs = append(recs, r)
		off += 8 + n
	}
	return recs, off, nil, nil
}

// journal is the open journal file. Appends are serialized and fsynced.
type journal struct {
	path string

	// onFull is called when an append finds the disk full; it reports
	// whether it made room (by giving up the spool's reserve file).
	onFull func() bool

	mu      sync.Mutex
	f       *os.File
	size    int64
	records int
	written uint64 // bytes written, including rewrites
	buf     []byte
}

// openJournal opens (or creates) the journal at path, returns its records,
// and truncates a torn tail. tail describes what was cut, if anything.
func openJournal(path string) (*journal, []record, error, error) {
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil, fmt.Errorf("read journal %s: %w", path, err)
	}
	recs, valid, tail, err := parseJournal(b)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("journal %s: %w", path, err)
	}
	j := &journal{path: path}
	if valid == 0 {
		// New (or header-torn) journal: write the header.
		if err := j.rewrite(nil); err != nil {
			return nil, nil, nil, err
		}
		return j, nil, tail, nil
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0o640)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("open journal: %w", err)
	}
	if valid < len(b) {
		if err := f.Truncate(int64(valid)); err != nil {
			f.Close()
			return nil, nil, nil, fmt.Errorf("truncate torn journal tail: %w", err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, nil, nil, fmt.Errorf("sync journal: %w", err)
		}
	}
	if _, err := f.Seek(int64(valid), io.SeekStart); err != nil {
		f.Close()
		return nil, nil, nil, err
	}
	j.f, j.size, j.records = f, int64(valid), len(recs)
	return j, recs, tail, nil
}

// append writes records and fsyncs them; they are durable when it returns.
func (j *journal) append(rs ...*record) error { return j.appendApply(nil, rs...) }

// appendApply is append that then calls apply (when not nil) before any
// other append or rewrite, so that the in-memory state a compaction
// snapshots always matches the journal.
func (j *journal) appendApply(apply func(), rs ...*record) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return errors.New("journal is closed")
	}
	b := j.buf[:0]
	for _, r := range rs {
		var err error
		if b, err = appendRecord(b, r); err != nil {
			return err
		}
	}
	j.buf = b
	err := j.write(b)
	if errors.Is(err, syscall.ENOSPC) && j.onFull != nil && j.onFull() {
		err = j.write(b) // room was made: the records fit now
	}
	if err != nil {
		return fmt.Errorf("write journal %s: %w; check the spool disk", j.path, err)
	}
	j.records += len(rs)
	if apply != nil {
		apply()
	}
	return nil
}

// write appends b and fsyncs it. A failed write is cut off again, so that
// the journal never holds a torn record before later ones.
func (j *journal) write(b []byte) error {
	n, err := j.f.Write(b)
	if err == nil {
		err = j.f.Sync()
	}
	if err != nil {
		if n > 0 {
			if terr := j.f.Truncate(j.size); terr != nil {
				return fmt.Errorf("%w (and the torn record could not be cut off: %v)", err, terr)
			}
			if _, serr := j.f.Seek(j.size, io.SeekStart); serr != nil {
				return fmt.Errorf("%w (and %v)", err, serr)
			}
		}
		return err
	}
	j.size += int64(n)
	j.written += uint64(n)
	return nil
}

// rewrite replaces the journal with one holding exactly the records build
// returns, atomically: written to a temporary file, fsynced, renamed over the
// journal, and the directory fsynced. Appends wait meanwhile, so none is
// lost between build and the rename.
func (j *journal) rewrite(build func() []*record) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	var rs []*record
	if build != nil {
		rs = build()
	}
	b := []byte(journalHeader)
	for _, r := range rs {
		var err error
		if b, err = appendRecord(b, r); err != nil {
			return err
		}
	}
	tmp := j.path + ".tmp"
	if err := store.WriteFileSync(tmp, b, 0o640); err != nil {
		return fmt.Errorf("rewrite journal: %w", err)
	}
	if err := os.Rename(tmp, j.path); err != nil {
		return fmt.Errorf("rewrite journal: %w", err)
	}
	if err := store.SyncDir(filepath.Dir(j.path)); err != nil {
		return fmt.Errorf("rewrite journal: %w", err)
	}
	f, err := os.OpenFile(j.path, os.O_RDWR|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("reopen journal: %w", err)
	}
	if j.f != nil {
		j.f.Close()
	}
	j.f, j.size, j.records = f, int64(len(b)), len(rs)
	j.written += uint64(len(b))
	return nil
}

// stats returns the journal's size, record count and bytes written.
func (j *journal) stats() (size int64, records int, written uint64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.size, j.records, j.written
}

func (j *journal) close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return nil
	}
	err := j.f.Close()
	j.f = nil
	return err
}
