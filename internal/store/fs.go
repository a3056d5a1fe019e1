package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// FS stores objects as files under a root directory. Writes go to a
// temporary file that is fsynced and renamed into place, so an object is
// either whole or absent; the SHA-256 is kept in a sidecar file.
type FS struct {
	name string
	root string
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

func (s *FS) path(key string) (string, error) {
	if err := CheckKey(key); err != nil {
		return "", err
	}
	if strings.HasSuffix(key, fsSumSuffix) || strings.Contains(key, "/"+fsTempPrefix) || strings.HasPrefix(key, fsTempPrefix) {
		return "", fmt.Errorf("object key %q uses a name the filesystem store keeps for itself", key)
	}
	return filepath.Join(s.root, filepath.FromSlash(key)), nil
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
	if err := WriteFileSync(p+fsSumSuffix, []byte(got+"\n"), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		return err
	}
	return SyncDir(filepath.Dir(p))
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
	in := Info{Key: key, Size: st.Size(), Modified: st.ModTime()}
	if b, err := os.ReadFile(p + fsSumSuffix); err == nil {
		in.SHA256 = strings.TrimSpace(string(b))
	}
	return in, nil
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
