package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
)

// FS stores objects as files under a root directory. Put writes a
// temporary file, fsyncs it and hard-links it to the object's name, which
// fails when the name exists: an object is either whole or absent, and is
// never replaced. The SHA-256 is kept in a sidecar file written after the
// object, so a crash in between leaves an object without a sidecar (its
// SHA-256 unknown until a Put of the same key recomputes it), never one with
// a wrong sidecar. The directory belongs to one process: the sidecar rules
// rely on locks inside it.
type FS struct {
	name string
	root string
	// keys serialises the commit phase (link, sidecar, delete) per key,
	// by a hash of the key.
	keys [64]sync.Mutex
}

const fsSumSuffix = ".sha256"
const fsTempPrefix = ".tmp-"

// NewFS returns a store rooted at dir, creating it if needed.
func NewFS(name, dir string) (*FS, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("store %s: %w", name, err)
	}
	return &FS{name: name, root: dir}, nil
}

// Name implements Store.
func (s *FS) Name() string { return s.name }

// Check verifies that the root directory exists and that a file can be
// created in it.
func (s *FS) Check(ctx context.Context) error {
	st, err := os.Stat(s.root)
	if err != nil {
		return fmt.Errorf("store %s: %w: check that the directory's disk is mounted", s.name, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("store %s: %s is not a directory: set the store's path to a directory", s.name, s.root)
	}
	f, err := os.CreateTemp(s.root, fsTempPrefix+"check-*")
	if err != nil {
		return fmt.Errorf("store %s: cannot write in %s: %w: let the service's user write there, or free space on its disk", s.name, s.root, err)
	}
	name := f.Name()
	err = f.Close()
	if rerr := os.Remove(name); err == nil {
		err = rerr
	}
	if err != nil {
		return fmt.Errorf("store %s: %s: %w", s.name, s.root, err)
	}
	return nil
}

func (s *FS) path(key string) (string, error) {
	if err := CheckKey(key); err != nil {
		return "", err
	}
	if strings.HasSuffix(key, fsSumSuffix) || strings.Contains(key, "/"+fsTempPrefix) || strings.HasPrefix(key, fsTempPrefix) {
		return "", fmt.Errorf("object key %q uses a name the filesystem store keeps for itself", key)
	}
	return filepath.Join(s.root, filepath.FromSlash(key)), nil
}

func (s *FS) lock(key string) *sync.Mutex {
	h := fnv.New32a()
	h.Write([]byte(key))
	return &s.keys[h.Sum32()%uint32(len(s.keys))]
}

// Put implements Store.
func (s *FS) Put(ctx context.Context, key string, r io.Reader, size int64, sum string) error {
	p, err := s.path(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), fsTempPrefix+"*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), &ctxReader{ctx: ctx, r: r})
	if err == nil && n != size {
		err = fmt.Errorf("put %s: got %d bytes, expected %d", key, n, size)
	}
	got := hex.EncodeToString(h.Sum(nil))
	if err == nil && sum != "" && !strings.EqualFold(sum, got) {
		err = fmt.Errorf("put %s: %w: got %s, expected %s", key, ErrChecksum, got, sum)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return s.commit(key, p, tmp.Name(), got, n)
}

// commit links the fsynced temporary file tmp to the object's path p,
// unless an object is there, and then writes the sidecar.
func (s *FS) commit(key, p, tmp, sum string, size int64) error {
	mu := s.lock(key)
	mu.Lock()
	defer mu.Unlock()
	dir := filepath.Dir(p)
	// A sidecar without its object is left by a Delete or a Put that
	// stopped half-way; it goes before the new object is linked, so that
	// it can never describe it.
	if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
		err := os.Remove(p + fsSumSuffix)
		if err == nil {
			err = SyncDir(dir)
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("store %s: put %s: remove a stale sidecar: %w", s.name, key, err)
		}
	}
	err := os.Link(tmp, p)
	if errors.Is(err, fs.ErrExist) {
		return s.compare(key, p, sum, size)
	}
	if errors.Is(err, syscall.EPERM) || errors.Is(err, errors.ErrUnsupported) {
		return fmt.Errorf("store %s: put %s: %w: the store's directory must be on a filesystem with hard links", s.name, key, err)
	}
	if err != nil {
		return fmt.Errorf("store %s: put %s: %w", s.name, key, err)
	}
	if err := SyncDir(dir); err != nil {
		return err
	}
	return s.writeSum(p, sum)
}

// compare checks the object at p against offered content; a missing
// sidecar is recomputed and written. The key's lock is held.
func (s *FS) compare(key, p, sum string, size int64) error {
	st, err := os.Stat(p)
	if err != nil {
		return fmt.Errorf("store %s: put %s: an object is already there: %w", s.name, key, err)
	}
	if st.IsDir() {
		return fmt.Errorf("store %s: put %s: the key is a directory of other keys: choose another key", s.name, key)
	}
	stored := readSum(p)
	if stored == "" {
		if _, stored, err = HashFile(p); err != nil {
			return fmt.Errorf("store %s: put %s: an object is already there, and hashing it failed: %w", s.name, key, err)
		}
		if err := s.writeSum(p, stored); err != nil {
			return err
		}
	}
	if stored == sum && st.Size() == size {
		return nil
	}
	return existsError(s.name, key, stored, st.Size(), sum, size)
}

// writeSum writes the sidecar of the object at p through a temporary file,
// so that it is either whole or absent.
func (s *FS) writeSum(p, sum string) error {
	dir := filepath.Dir(p)
	f, err := os.CreateTemp(dir, fsTempPrefix+"*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	_, err = f.WriteString(sum + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), p+fsSumSuffix)
	}
	if err == nil {
		err = SyncDir(dir)
	}
	if err != nil {
		return fmt.Errorf("store %s: write the SHA-256 of %s: %w", s.name, p, err)
	}
	return nil
}

// readSum returns the SHA-256 in the sidecar of the object at p, or "" when
// there is no sidecar or it does not hold one.
func readSum(p string) string {
	b, err := os.ReadFile(p + fsSumSuffix)
	if err != nil {
		return ""
	}
	sum := strings.ToLower(strings.TrimSpace(string(b)))
	if raw, err := hex.DecodeString(sum); err != nil || len(raw) != sha256.Size {
		return ""
	}
	return sum
}

// Get implements Store.
func (s *FS) Get(ctx context.Context, key string) (io.ReadCloser, Info, error) {
	p, err := s.path(key)
	if err != nil {
		return nil, Info{}, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, Info{}, ErrNotFound
	}
	if err != nil {
		return nil, Info{}, err
	}
	in, err := s.info(key, p)
	if err != nil {
		f.Close()
		return nil, Info{}, err
	}
	return f, in, nil
}

// Stat implements Store.
func (s *FS) Stat(ctx context.Context, key string) (Info, error) {
	p, err := s.path(key)
	if err != nil {
		return Info{}, err
	}
	return s.info(key, p)
}

func (s *FS) info(key, p string) (Info, error) {
	st, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return Info{}, ErrNotFound
	}
	if err != nil {
		return Info{}, err
	}
	return Info{Key: key, Size: st.Size(), Modified: st.ModTime(), SHA256: readSum(p)}, nil
}

// List implements Store.
func (s *FS) List(ctx context.Context, prefix string, fn func(Info) error) error {
	// Walk only the directory the prefix names, then filter by prefix.
	dir := s.root
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		dir = filepath.Join(s.root, filepath.FromSlash(prefix[:i]))
	}
	var keys []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		name := d.Name()
		if d.IsDir() || strings.HasSuffix(name, fsSumSuffix) || strings.HasPrefix(name, fsTempPrefix) {
			return nil
		}
		rel, err := filepath.Rel(s.root, p)
		if err != nil {
			return err
		}
		if key := filepath.ToSlash(rel); strings.HasPrefix(key, prefix) {
			keys = append(keys, key)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(keys)
	for _, k := range keys {
		in, err := s.info(k, filepath.Join(s.root, filepath.FromSlash(k)))
		if errors.Is(err, ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return err
		}
		if err := fn(in); err != nil {
			return err
		}
	}
	return nil
}

// Delete implements Store.
func (s *FS) Delete(ctx context.Context, key string) error {
	p, err := s.path(key)
	if err != nil {
		return err
	}
	mu := s.lock(key)
	mu.Lock()
	defer mu.Unlock()
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := os.Remove(p + fsSumSuffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
