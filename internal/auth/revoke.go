package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"fieldvideo/internal/store"
)

// ErrRevoked is returned by Verify for a token an operator revoked.
var ErrRevoked = errors.New("token revoked")

// Revocation withdraws access: every token of Subject issued at or before At,
// or the one token whose id (jti) is TokenID.
type Revocation struct {
	Subject string    `json:"subject,omitempty"`
	TokenID string    `json:"token_id,omitempty"`
	At      time.Time `json:"at"`
	By      string    `json:"by"`
	Reason  string    `json:"reason,omitempty"`
	// Expires, when set, is when the revoked token expires: once it is well
	// past, no one can use the token and the entry is dropped.
	Expires time.Time `json:"expires,omitzero"`
}

// Moot tells whether the entry is no longer needed at now: it revokes one
// token, which expired well before now (no clock skew lets it in again).
func (rv Revocation) Moot(now time.Time) bool {
	return !rv.Expires.IsZero() && !now.Before(rv.Expires.Add(expiredEntryGrace))
}

func (rv Revocation) String() string {
	what := "subject " + rv.Subject
	if rv.TokenID != "" {
		what = "token id " + rv.TokenID
	}
	s := fmt.Sprintf("%s revoked at %s by %s", what, rv.At.UTC().Format(time.RFC3339), rv.By)
	if rv.Reason != "" {
		s += " (" + rv.Reason + ")"
	}
	return s
}

// Revocations is the list of revoked subjects and tokens. It is kept in a
// JSON file that several processes on one host may share (ingest and the
// SFU): additions take the file's lock and rewrite it atomically, and Run
// reloads it when another process changed it.
type Revocations struct {
	path string
	log  *slog.Logger
	now  func() time.Time

	mu       sync.RWMutex
	list     []Revocation
	subjects map[string]time.Time // the latest revocation of each subject
	ids      map[string]Revocation
	stamp    fileStamp
	notify   []func()
	added    []func(Revocation)
}

type fileStamp struct {
	ino   uint64
	size  int64
	mtime time.Time
}

type revocationFile struct {
	Revocations []Revocation `json:"revocations"`
}

// OpenRevocations loads the revocation list at path; a missing file is an
// empty list. An empty path keeps the list in memory only.
func OpenRevocations(path string, log *slog.Logger) (*Revocations, error) {
	if log == nil {
		log = slog.Default()
	}
	r := &Revocations{path: path, log: log.With("component", "auth"), now: time.Now}
	r.set(nil)
	if path == "" {
		return r, nil
	}
	if _, err := r.reload(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Revocations) set(list []Revocation) {
	r.list = list
	r.subjects = map[string]time.Time{}
	r.ids = map[string]Revocation{}
	for _, rv := range list {
		if rv.TokenID != "" {
			r.ids[rv.TokenID] = rv
		} else if rv.Subject != "" && rv.At.After(r.subjects[rv.Subject]) {
			r.subjects[rv.Subject] = rv.At
		}
	}
}

func stampOf(fi fs.FileInfo) fileStamp {
	st := fileStamp{size: fi.Size(), mtime: fi.ModTime()}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.ino = sys.Ino
	}
	return st
}

// reload reads the file when it changed since the last read, and reports
// whether it did.
func (r *Revocations) reload() (bool, error) {
	fi, err := os.Stat(r.path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("revocation list %s: %w", r.path, err)
	}
	r.mu.RLock()
	same := stampOf(fi) == r.stamp
	r.mu.RUnlock()
	if same {
		return false, nil
	}
	list, st, err := readRevocations(r.path)
	if err != nil {
		return false, err
	}
	r.mu.Lock()
	r.set(list)
	r.stamp = st
	r.mu.Unlock()
	return true, nil
}

func readRevocations(path string) ([]Revocation, fileStamp, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fileStamp{}, nil
	}
	if err != nil {
		return nil, fileStamp{}, fmt.Errorf("revocation list %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fileStamp{}, fmt.Errorf("revocation list %s: %w", path, err)
	}
	var rf revocationFile
	if fi.Size() > 0 {
		if err := json.NewDecoder(f).Decode(&rf); err != nil {
			return nil, fileStamp{}, fmt.Errorf("revocation list %s is not valid JSON (%v): fix or remove it; until then no token is accepted", path, err)
		}
	}
	return rf.Revocations, stampOf(fi), nil
}

// Add revokes a subject or a token id and persists the list before it
// returns; bound sessions it covers are ended, and the functions given to
// OnAdd are told (a cluster shares it with the other nodes).
func (r *Revocations) Add(rv Revocation) (Revocation, error) {
	if (rv.Subject == "") == (rv.TokenID == "") {
		return rv, errors.New("revoke either a subject or a token id")
	}
	if rv.At.IsZero() {
		rv.At = r.now().UTC()
	}
	rv, _, err := r.add(rv)
	if err != nil {
		return rv, err
	}
	r.mu.RLock()
	fns := slices.Clone(r.added)
	r.mu.RUnlock()
	for _, fn := range fns {
		fn(rv)
	}
	return rv, nil
}

// OnAdd makes Add call fn with each revocation it made.
func (r *Revocations) OnAdd(fn func(Revocation)) {
	r.mu.Lock()
	r.added = append(r.added, fn)
	r.mu.Unlock()
}

// Merge takes a revocation made elsewhere (another node of a cluster), as
// Add does but without telling OnAdd's functions. It reports whether the
// revocation was new here: one already in the list, covered by a later
// revocation of its subject, or of a token expired long ago, is not added.
func (r *Revocations) Merge(rv Revocation) (bool, error) {
	if (rv.Subject == "") == (rv.TokenID == "") || rv.At.IsZero() {
		return false, fmt.Errorf("a revocation names a subject or a token id, and when: %+v", rv)
	}
	if rv.Moot(r.now()) {
		return false, nil
	}
	_, added, err := r.add(rv)
	return added, err
}

// covers reports whether list already holds rv (or a later revocation of
// its subject).
func covers(list []Revocation, rv Revocation) bool {
	for _, have := range list {
		if rv.TokenID != "" && have.TokenID == rv.TokenID {
			return true
		}
		if rv.Subject != "" && have.Subject == rv.Subject && !have.At.Before(rv.At) {
			return true
		}
	}
	return false
}

// add adds rv to the list, unless it is there already (added false), and
// persists it.
func (r *Revocations) add(rv Revocation) (_ Revocation, added bool, _ error) {
	if r.path == "" {
		r.mu.Lock()
		if covers(r.list, rv) {
			r.mu.Unlock()
			return rv, false, nil
		}
		r.set(append(r.unexpired(r.list, rv.At), rv))
		r.mu.Unlock()
		r.changed()
		return rv, true, nil
	}
	unlock, err := lockFile(r.path + ".lock")
	if err != nil {
		return rv, false, err
	}
	defer unlock()
	list, _, err := readRevocations(r.path)
	if err != nil {
		return rv, false, err
	}
	if covers(list, rv) {
		return rv, false, nil
	}
	list = append(r.unexpired(list, rv.At), rv)
	b, err := json.MarshalIndent(revocationFile{Revocations: list}, "", "  ")
	if err != nil {
		return rv, false, err
	}
	if err := store.WriteFileAtomic(r.path, append(b, '\n'), 0o600); err != nil {
		return rv, false, fmt.Errorf("save revocation list %s: %w", r.path, err)
	}
	fi, err := os.Stat(r.path)
	if err != nil {
		return rv, false, fmt.Errorf("revocation list %s: %w", r.path, err)
	}
	r.mu.Lock()
	r.set(list)
	r.stamp = stampOf(fi)
	r.mu.Unlock()
	r.changed()
	return rv, true, nil
}

// unexpired returns the entries of list still needed at now: those of tokens
// that expired well before it are left out.
func (r *Revocations) unexpired(list []Revocation, now time.Time) []Revocation {
	out := make([]Revocation, 0, len(list)+1)
	for _, rv := range list {
		if !rv.Moot(now) {
			out = append(out, rv)
		}
	}
	return out
}

// List returns every revocation, oldest first.
func (r *Revocations) List() []Revocation {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return slices.Clone(r.list)
}

// Revoked reports the revocation that covers c, if any. A token without an
// issue time is covered by any revocation of its subject.
func (r *Revocations) Revoked(c *Claims) (Revocation, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if c.ID != "" {
		if rv, ok := r.ids[c.ID]; ok {
			return rv, true
		}
	}
	at, ok := r.subjects[c.Subject]
	if !ok || c.Subject == "" {
		return Revocation{}, false
	}
	if c.IssuedAt != nil && c.IssuedAt.After(at) {
		return Revocation{}, false
	}
	for i := len(r.list) - 1; i >= 0; i-- {
		if rv := r.list[i]; rv.TokenID == "" && rv.Subject == c.Subject && rv.At.Equal(at) {
			return rv, true
		}
	}
	return Revocation{Subject: c.Subject, At: at}, true
}

// onChange registers fn to be called after the list changed.
func (r *Revocations) onChange(fn func()) {
	r.mu.Lock()
	r.notify = append(r.notify, fn)
	r.mu.Unlock()
}

func (r *Revocations) changed() {
	r.mu.RLock()
	fns := slices.Clone(r.notify)
	r.mu.RUnlock()
	for _, fn := range fns {
		fn()
	}
}

// Run reloads the file every interval (default 500ms) until ctx ends, so that
// a revocation made through another process sharing the file takes effect
// here within about that time.
func (r *Revocations) Run(ctx context.Context, interval time.Duration) {
	if r.path == "" {
		return
	}
	if interval <= 0 {
		interval = 500 * time.Millisecond
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	var lastErr string
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		changed, err := r.reload()
		if err != nil {
			if err.Error() != lastErr {
				r.log.Error("ALARM: cannot read the revocation list; the last one read stays in force", "error", err)
			}
			lastErr = err.Error()
			continue
		}
		lastErr = ""
		if changed {
			r.changed()
		}
	}
}

func lockFile(path string) (func(), error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("revocation list lock: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("revocation list lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("revocation list lock: %w", err)
	}
	return func() { f.Close() }, nil
}
