package store

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeS3 is the least of an S3 server that the store's calls need, for
// behaviours neither MinIO nor versitygw has: it ignores If-None-Match on
// PUT, or, with rejectIfNoneMatch, refuses it with 501 NotImplemented as
// AWS does for values it does not take. It checks no signature.
type fakeS3 struct {
	bucket            string
	rejectIfNoneMatch bool

	mu      sync.Mutex
	objects map[string]fakeObject
	puts    int
}

type fakeObject struct {
	body     []byte
	meta     http.Header
	modified time.Time
}

func startFakeS3(t *testing.T, rejectIfNoneMatch bool) (*fakeS3, S3Params) {
	t.Helper()
	f := &fakeS3{bucket: "bkt", rejectIfNoneMatch: rejectIfNoneMatch, objects: map[string]fakeObject{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, S3Params{
		Name: "offsite", Endpoint: strings.TrimPrefix(srv.URL, "http://"), Bucket: f.bucket,
		AccessKey: "a", SecretKey: "s", Timeout: 5 * time.Second,
	}
}

func (f *fakeS3) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, "/")
	bucket, key, _ := strings.Cut(path, "/")
	if bucket != f.bucket {
		f.fail(w, http.StatusNotFound, "NoSuchBucket")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	o, ok := f.objects[key]
	switch {
	case key == "" && r.Method == http.MethodGet:
		f.list(w, r.URL.Query().Get("prefix"))
	case r.Method == http.MethodPut:
		if r.Header.Get("If-None-Match") != "" && f.rejectIfNoneMatch {
			f.fail(w, http.StatusNotImplemented, "NotImplemented")
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		meta := http.Header{}
		for k, v := range r.Header {
			if strings.HasPrefix(strings.ToLower(k), "x-amz-meta-") || strings.EqualFold(k, "x-amz-checksum-sha256") {
				meta[k] = v
			}
		}
		f.objects[key] = fakeObject{body: body, meta: meta, modified: time.Now()}
		f.puts++
		w.Header().Set("ETag", etag(body))
	case !ok && (r.Method == http.MethodHead || r.Method == http.MethodGet):
		f.fail(w, http.StatusNotFound, "NoSuchKey")
	case r.Method == http.MethodHead || r.Method == http.MethodGet:
		for k, v := range o.meta {
			w.Header()[k] = v
		}
		w.Header().Set("ETag", etag(o.body))
		w.Header().Set("Last-Modified", o.modified.UTC().Format(http.TimeFormat))
		w.Header().Set("Content-Length", fmt.Sprint(len(o.body)))
		w.Header().Set("Content-Type", "application/octet-stream")
		if r.Method == http.MethodGet {
			w.Write(o.body)
		}
	case r.Method == http.MethodDelete:
		delete(f.objects, key)
		w.WriteHeader(http.StatusNoContent)
	default:
		f.fail(w, http.StatusNotImplemented, "NotImplemented")
	}
}

func (f *fakeS3) list(w http.ResponseWriter, prefix string) {
	type content struct {
		Key          string
		LastModified string
		ETag         string
		Size         int
	}
	res := struct {
		XMLName     xml.Name `xml:"ListBucketResult"`
		Name        string
		Prefix      string
		KeyCount    int
		MaxKeys     int
		IsTruncated bool
		Contents    []content
	}{Name: f.bucket, Prefix: prefix, MaxKeys: 1000}
	for k, o := range f.objects {
		if strings.HasPrefix(k, prefix) {
			res.Contents = append(res.Contents, content{k, o.modified.UTC().Format(time.RFC3339), etag(o.body), len(o.body)})
		}
	}
	sort.Slice(res.Contents, func(i, j int) bool { return res.Contents[i].Key < res.Contents[j].Key })
	res.KeyCount = len(res.Contents)
	w.Header().Set("Content-Type", "application/xml")
	xml.NewEncoder(w).Encode(res)
}

func (f *fakeS3) fail(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, "<Error><Code>%s</Code><Message>%s</Message></Error>", code, code)
}

func etag(b []byte) string {
	s := md5.Sum(b)
	return `"` + hex.EncodeToString(s[:]) + `"`
}

func (f *fakeS3) putCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.puts
}

func (f *fakeS3) keys() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var keys []string
	for k := range f.objects {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// TestS3ServerWithoutConditionalWrites: against a server that ignores
// If-None-Match or refuses it, Check learns so, and Put still never
// replaces an object, looking for it first.
func TestS3ServerWithoutConditionalWrites(t *testing.T) {
	for _, c := range []struct {
		name   string
		reject bool
		want   condWrites
	}{
		{"ignores", false, condIgnored},
		{"rejects", true, condRejected},
	} {
		t.Run(c.name, func(t *testing.T) {
			f, p := startFakeS3(t, c.reject)
			ctx := context.Background()
			s := mustNewS3(t, p)

			// Before Check: HEAD first, and the header, which a server
			// that rejects it refuses once.
			err := s.Put(ctx, "rec/early.mp4", strings.NewReader("early"), 5, "")
			if c.reject {
				if err == nil || !strings.Contains(err.Error(), "does not take If-None-Match") || s.writes.Load() != condRejected {
					t.Fatalf("first put to a server that rejects If-None-Match: %v (learnt %d)", err, s.writes.Load())
				}
				t.Logf("%v", err)
				err = s.Put(ctx, "rec/early.mp4", strings.NewReader("early"), 5, "")
			}
			if err != nil {
				t.Fatalf("put before Check: %v", err)
			}

			if err := s.Check(ctx); err != nil {
				t.Fatal(err)
			}
			if got := s.writes.Load(); got != c.want {
				t.Fatalf("learnt %d, want %d", got, c.want)
			}
			if keys := f.keys(); len(keys) != 1 || keys[0] != "rec/early.mp4" {
				t.Fatalf("objects after Check: %v, want the probe deleted", keys)
			}

			first, other := []byte("first content"), []byte("other content")
			if err := s.Put(ctx, "rec/a.mp4", bytes.NewReader(first), int64(len(first)), hexSum(first)); err != nil {
				t.Fatal(err)
			}
			if err := s.Put(ctx, "rec/a.mp4", bytes.NewReader(first), int64(len(first)), hexSum(first)); err != nil {
				t.Fatalf("same content again: %v", err)
			}
			puts := f.putCount()
			if err := s.Put(ctx, "rec/a.mp4", bytes.NewReader(other), int64(len(other)), hexSum(other)); !errors.Is(err, ErrExists) {
				t.Fatalf("other content: %v, want ErrExists", err)
			}
			if f.putCount() != puts {
				t.Fatal("other content was sent to the server")
			}
			if b, _ := getAll(t, s, "rec/a.mp4"); !bytes.Equal(b, first) {
				t.Fatalf("the object changed: %q", b)
			}
		})
	}
}
