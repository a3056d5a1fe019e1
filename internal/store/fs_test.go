package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
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
