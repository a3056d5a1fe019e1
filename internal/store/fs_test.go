package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFS(t *testing.T) {
	s, err := NewFS("primary", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	body := "fmp4 bytes"
	sum := sha256.Sum256([]byte(body))
	hexsum := hex.EncodeToString(sum[:])
	for _, k := range []string{"rec/i1/cam1/2026/11/23/04/1000-2000.mp4", "rec/i1/cam1/2026/11/23/04/3000-2000.mp4", "rec/i1/cam2/2026/11/23/04/1000-2000.mp4"} {
		if err := s.Put(ctx, k, strings.NewReader(body), int64(len(body)), hexsum); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Put(ctx, "rec/x.mp4", strings.NewReader(body), int64(len(body)), strings.Repeat("0", 64)); err == nil {
		t.Fatal("checksum mismatch accepted")
	}
	if _, err := s.Stat(ctx, "rec/x.mp4"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a refused put left an object: %v", err)
	}
	var keys []string
	if err := s.List(ctx, "rec/i1/cam1/", func(in Info) error {
		keys = append(keys, in.Key)
		if in.SHA256 != hexsum || in.Size != int64(len(body)) {
			t.Errorf("info %+v", in)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys[0] > keys[1] {
		t.Fatalf("listed %v", keys)
	}
	r, in, err := s.Get(ctx, keys[0])
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r)
	r.Close()
	if string(b) != body || in.SHA256 != hexsum {
		t.Fatalf("got %q %+v", b, in)
	}
	if err := s.Delete(ctx, keys[0]); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, keys[0]); err != nil {
		t.Fatalf("deleting twice: %v", err)
	}
	if _, _, err := s.Get(ctx, keys[0]); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted object: %v", err)
	}
	for _, bad := range []string{"", "/a", "a/", "a//b", "a/../b", "a/./b", "a\\b", "a\x00b", "x.sha256", "a/.tmp-1"} {
		if err := s.Put(ctx, bad, strings.NewReader(""), 0, ""); err == nil {
			t.Errorf("key %q accepted", bad)
		}
	}
}

func TestFSNeverOverwrites(t *testing.T) {
	s, err := NewFS("primary", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	first, other := []byte("first segment"), []byte("other segment")
	key := "rec/i1/cam1/seg.mp4"
	if err := s.Put(ctx, key, bytes.NewReader(first), int64(len(first)), hexSum(first)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		content []byte
		sum     string
		want    error
	}{
		{"same content", first, hexSum(first), nil},
		{"same content, no SHA-256 given", first, "", nil},
		{"same content, upper-case SHA-256", first, strings.ToUpper(hexSum(first)), nil},
		{"other content", other, hexSum(other), ErrExists},
		{"other content, no SHA-256 given", other, "", ErrExists},
		{"longer content", append(bytes.Clone(first), 'x'), "", ErrExists},
	} {
		t.Run(c.name, func(t *testing.T) { putOver(t, s, key, first, c.content, c.sum, c.want) })
	}
	if err := s.Put(ctx, "rec/i1", strings.NewReader("x"), 1, ""); err == nil || errors.Is(err, ErrExists) {
		t.Fatalf("put at a key that is a directory of keys: %v", err)
	}
	if n := leftovers(t, s.root); n != 0 {
		t.Fatalf("%d temporary files left", n)
	}
}

func TestFSConcurrentPutsOneWinner(t *testing.T) {
	s, err := NewFS("primary", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		putConcurrently(t, s, fmt.Sprintf("rec/race-%d.mp4", i), 8)
	}
	if n := leftovers(t, s.root); n != 0 {
		t.Fatalf("%d temporary files left", n)
	}
}

// TestFSSidecarAfterCrash sets up what a crash can leave, and expects a
// SHA-256 that is right or empty, never wrong, and Put to mend it.
func TestFSSidecarAfterCrash(t *testing.T) {
	ctx := context.Background()
	content, stale := []byte("segment"), []byte("an older object")
	key := "rec/seg.mp4"
	for _, c := range []struct {
		name    string
		object  bool   // the object's file is there
		sidecar string // the sidecar's content, "" for none
		stat    string // the SHA-256 Stat reports before a Put
	}{
		{"object without sidecar", true, "", ""},
		{"truncated sidecar", true, hexSum(content)[:20], ""},
		{"sidecar without object", false, hexSum(stale) + "\n", ""},
		{"sidecar in upper case", true, strings.ToUpper(hexSum(content)) + "\n", hexSum(content)},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := NewFS("primary", t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(s.root, "rec", "seg.mp4")
			if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
				t.Fatal(err)
			}
			if c.object {
				if err := os.WriteFile(p, content, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if c.sidecar != "" {
				if err := os.WriteFile(p+fsSumSuffix, []byte(c.sidecar), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if c.object {
				if in, err := s.Stat(ctx, key); err != nil || in.SHA256 != c.stat {
					t.Fatalf("stat before put: %+v, %v; want SHA-256 %q", in, err, c.stat)
				}
			}
			if err := s.Put(ctx, key, bytes.NewReader(content), int64(len(content)), hexSum(content)); err != nil {
				t.Fatalf("put: %v", err)
			}
			if in, err := s.Stat(ctx, key); err != nil || in.SHA256 != hexSum(content) {
				t.Fatalf("stat after put: %+v, %v", in, err)
			}
			err = s.Put(ctx, key, bytes.NewReader(stale), int64(len(stale)), "")
			if !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), hexSum(content)) {
				t.Fatalf("other content: %v", err)
			}
		})
	}
}

func TestFSCheck(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name    string
		breakIt func(dir string) error
		want    string
	}{
		{"writable", func(string) error { return nil }, ""},
		{"directory gone", os.RemoveAll, "check that the directory's disk is mounted"},
		{"a file", func(dir string) error {
			if err := os.RemoveAll(dir); err != nil {
				return err
			}
			return os.WriteFile(dir, nil, 0o644)
		}, "is not a directory"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "rec")
			s, err := NewFS("primary", dir)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.breakIt(dir); err != nil {
				t.Fatal(err)
			}
			err = s.Check(ctx)
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if n := leftovers(t, dir); n != 0 {
					t.Fatalf("Check left %d files", n)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), dir) || errors.Is(err, ErrUnreachable) {
				t.Fatalf("Check: %v, want an error naming %s and saying %q", err, dir, c.want)
			}
			t.Logf("%v", err)
		})
	}
}

// leftovers counts the store's temporary files under dir.
func leftovers(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), fsTempPrefix) {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// putOver puts content at key, which holds first, and checks that the store
// answers want (nil or ErrExists, with an error naming the key, both
// SHA-256s and that recordings are never overwritten) and that the object
// still holds first.
func putOver(t *testing.T, s Store, key string, first, content []byte, sum string, want error) {
	t.Helper()
	err := s.Put(context.Background(), key, bytes.NewReader(content), int64(len(content)), sum)
	if !errors.Is(err, want) || (want == nil) != (err == nil) {
		t.Fatalf("put: %v, want %v", err, want)
	}
	if err != nil {
		for _, w := range []string{key, hexSum(first), hexSum(content), "never overwritten"} {
			if !strings.Contains(err.Error(), w) {
				t.Fatalf("%q does not say %q", err, w)
			}
		}
	}
	if b, in := getAll(t, s, key); !bytes.Equal(b, first) || in.SHA256 != hexSum(first) {
		t.Fatalf("the object changed: %d bytes, %+v", len(b), in)
	}
}
