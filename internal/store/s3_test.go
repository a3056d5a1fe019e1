package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"fieldvideo/internal/testkit"

	"github.com/minio/minio-go/v7"
)

// s3Servers are the S3 implementations the store is tested against: MinIO
// stands for the primary site, versitygw for the off-site copy.
var s3Servers = []struct {
	name  string
	start func(testing.TB, testkit.S3ServerParams) *testkit.S3Server
}{
	{testkit.KindMinIO, testkit.StartMinIO},
	{testkit.KindVersityGW, testkit.StartVersityGW},
}

func forEachS3Server(t *testing.T, p testkit.S3ServerParams, fn func(t *testing.T, srv *testkit.S3Server)) {
	for _, k := range s3Servers {
		t.Run(k.name, func(t *testing.T) {
			fn(t, k.start(t, p))
		})
	}
}

func s3Params(srv *testkit.S3Server) S3Params {
	return S3Params{
		Name:      "primary",
		Endpoint:  srv.Endpoint,
		Bucket:    srv.Bucket,
		Region:    srv.Region,
		AccessKey: srv.AccessKey,
		SecretKey: srv.SecretKey,
		TLS:       srv.TLS,
		CAFile:    srv.CAFile,
		Timeout:   5 * time.Second,
	}
}

func newS3(t testing.TB, p S3Params) *S3 {
	t.Helper()
	s, err := NewS3(p)
	if err != nil {
		t.Fatalf("NewS3: %v", err)
	}
	if err := s.Check(context.Background()); err != nil {
		t.Fatalf("Check: %v", err)
	}
	return s
}

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func getAll(t testing.TB, s Store, key string) ([]byte, Info) {
	t.Helper()
	rc, in, err := s.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return b, in
}

func listKeys(t testing.TB, s Store, prefix string) []Info {
	t.Helper()
	var out []Info
	if err := s.List(context.Background(), prefix, func(in Info) error {
		out = append(out, in)
		return nil
	}); err != nil {
		t.Fatalf("list %q: %v", prefix, err)
	}
	return out
}

// onlyReader hides every method but Read.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

func TestS3PutGetStatListDelete(t *testing.T) {
	forEachS3Server(t, testkit.S3ServerParams{}, func(t *testing.T, srv *testkit.S3Server) {
		s := newS3(t, s3Params(srv))
		ctx := context.Background()
		if s.Name() != "primary" {
			t.Fatalf("Name() = %q", s.Name())
		}

		// A segment of a few MB, as the recorder writes them, and one over
		// minio-go's 16 MiB multipart threshold: both go in one PUT.
		seg := randomBytes(t, 3<<20+17)
		big := randomBytes(t, 20<<20)
		small := []byte("manifest")
		empty := []byte{}
		objects := map[string][]byte{
			"rec/i1/cam1/2026/11/23/04/1000-2000.mp4": seg,
			"rec/i1/cam1/2026/11/23/04/3000-2000.mp4": small,
			"rec/i1/cam2/2026/11/23/04/1000-2000.mp4": big,
			"rec/i1/empty": empty,
		}
		before := time.Now().Add(-time.Minute)
		for k, b := range objects {
			if err := s.Put(ctx, k, bytes.NewReader(b), int64(len(b)), hexSum(b)); err != nil {
				t.Fatalf("put %s: %v", k, err)
			}
		}
		for k, b := range objects {
			got, in := getAll(t, s, k)
			if !bytes.Equal(got, b) {
				t.Fatalf("get %s: %d bytes differ from the %d put", k, len(got), len(b))
			}
			want := Info{Key: k, Size: int64(len(b)), SHA256: hexSum(b)}
			if in.Key != want.Key || in.Size != want.Size || in.SHA256 != want.SHA256 || in.Modified.Before(before) {
				t.Fatalf("get %s: info %+v, want %+v modified after %v", k, in, want, before)
			}
			st, err := s.Stat(ctx, k)
			if err != nil {
				t.Fatalf("stat %s: %v", k, err)
			}
			if st.Key != want.Key || st.Size != want.Size || st.SHA256 != want.SHA256 {
				t.Fatalf("stat %s: %+v, want %+v", k, st, want)
			}
		}

		// One PUT each: a multipart upload's ETag ends in -<parts>.
		for oi := range srv.Client().ListObjectsIter(ctx, srv.Bucket, minio.ListObjectsOptions{Recursive: true}) {
			if oi.Err != nil {
				t.Fatal(oi.Err)
			}
			if strings.Contains(oi.ETag, "-") {
				t.Fatalf("%s was uploaded in parts (ETag %s)", oi.Key, oi.ETag)
			}
		}

		got := listKeys(t, s, "rec/i1/cam1/")
		if len(got) != 2 || got[0].Key != "rec/i1/cam1/2026/11/23/04/1000-2000.mp4" || got[1].Key != "rec/i1/cam1/2026/11/23/04/3000-2000.mp4" {
			t.Fatalf("list cam1: %+v", got)
		}
		if got[0].SHA256 != hexSum(seg) || got[0].Size != int64(len(seg)) || got[1].SHA256 != hexSum(small) {
			t.Fatalf("list cam1 infos: %+v", got)
		}
		if n := len(listKeys(t, s, "")); n != 4 {
			t.Fatalf("list all: %d objects, want 4", n)
		}
		if n := len(listKeys(t, s, "rec/i1/cam")); n != 3 {
			t.Fatalf("list by a partial segment: %d objects, want 3", n)
		}
		if n := len(listKeys(t, s, "rec/i2/")); n != 0 {
			t.Fatalf("list of an empty prefix: %d objects", n)
		}
		stop := errors.New("enough")
		calls := 0
		err := s.List(ctx, "", func(Info) error { calls++; return stop })
		if !errors.Is(err, stop) || calls != 1 {
			t.Fatalf("list stopped by fn: err %v after %d calls", err, calls)
		}

		// An object is never replaced.
		k := "rec/i1/cam1/2026/11/23/04/3000-2000.mp4"
		if err := s.Put(ctx, k, strings.NewReader("v2"), 2, hexSum([]byte("v2"))); !errors.Is(err, ErrExists) {
			t.Fatalf("put of other content over an object: %v, want ErrExists", err)
		}
		if b, in := getAll(t, s, k); string(b) != string(small) || in.SHA256 != hexSum(small) {
			t.Fatalf("after a refused replace: %q %+v", b, in)
		}

		// Without a given SHA-256 the store hashes the content itself,
		// from a seekable reader (read twice, from where it stands) or
		// from one that is not.
		r := strings.NewReader("skip:seekable content")
		if _, err := r.Seek(5, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		if err := s.Put(ctx, "nosum/seekable", r, int64(r.Len()), ""); err != nil {
			t.Fatal(err)
		}
		if b, in := getAll(t, s, "nosum/seekable"); string(b) != "seekable content" || in.SHA256 != hexSum(b) {
			t.Fatalf("seekable without sum: %q %+v", b, in)
		}
		if err := s.Put(ctx, "nosum/stream", onlyReader{strings.NewReader("streamed")}, 8, ""); err != nil {
			t.Fatal(err)
		}
		if b, in := getAll(t, s, "nosum/stream"); string(b) != "streamed" || in.SHA256 != hexSum(b) {
			t.Fatalf("stream without sum: %q %+v", b, in)
		}
		// A SHA-256 in upper case is the same SHA-256.
		if err := s.Put(ctx, "upper", strings.NewReader("x"), 1, strings.ToUpper(hexSum([]byte("x")))); err != nil {
			t.Fatal(err)
		}

		for k := range objects {
			if err := s.Delete(ctx, k); err != nil {
				t.Fatalf("delete %s: %v", k, err)
			}
			if _, err := s.Stat(ctx, k); !errors.Is(err, ErrNotFound) {
				t.Fatalf("stat after delete %s: %v", k, err)
			}
		}
		if err := s.Delete(ctx, "rec/never/was.mp4"); err != nil {
			t.Fatalf("delete of a missing object: %v", err)
		}
		if n := len(listKeys(t, s, "rec/")); n != 0 {
			t.Fatalf("list after delete: %d objects", n)
		}
	})
}

func TestS3NotFound(t *testing.T) {
	forEachS3Server(t, testkit.S3ServerParams{}, func(t *testing.T, srv *testkit.S3Server) {
		s := newS3(t, s3Params(srv))
		ctx := context.Background()
		if _, err := s.Stat(ctx, "no/such.mp4"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("stat: %v, want ErrNotFound", err)
		}
		if rc, _, err := s.Get(ctx, "no/such.mp4"); !errors.Is(err, ErrNotFound) {
			if rc != nil {
				rc.Close()
			}
			t.Fatalf("get: %v, want ErrNotFound", err)
		}
		// Keys a filesystem would treat differently are refused before
		// any request.
		for _, k := range []string{"", "/abs", "a//b", "a/../b", "dir/"} {
			if _, err := s.Stat(ctx, k); err == nil || errors.Is(err, ErrNotFound) {
				t.Fatalf("stat %q: %v, want a key error", k, err)
			}
			if err := s.Put(ctx, k, strings.NewReader("x"), 1, ""); err == nil {
				t.Fatalf("put %q accepted", k)
			}
		}
	})
}

func TestS3ChecksumRefused(t *testing.T) {
	forEachS3Server(t, testkit.S3ServerParams{}, func(t *testing.T, srv *testkit.S3Server) {
		s := newS3(t, s3Params(srv))
		ctx := context.Background()
		good := randomBytes(t, 1<<20)
		bad := bytes.Clone(good)
		bad[len(bad)/2] ^= 1 // one flipped bit

		// A new object whose content does not match: refused, nothing left.
		err := s.Put(ctx, "rec/new.mp4", bytes.NewReader(bad), int64(len(bad)), hexSum(good))
		if !errors.Is(err, ErrChecksum) {
			t.Fatalf("put of damaged content: %v", err)
		}
		t.Logf("%s refuses: %v", srv.Kind, err)
		if _, err := s.Stat(ctx, "rec/new.mp4"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("a refused put left an object: %v", err)
		}

		// Damaged content offered for an object stored under the same
		// SHA-256 leaves the object as it is: Put may find the object and
		// succeed without reading the content, or refuse the content.
		if err := s.Put(ctx, "rec/old.mp4", bytes.NewReader(good), int64(len(good)), hexSum(good)); err != nil {
			t.Fatal(err)
		}
		if err := s.Put(ctx, "rec/old.mp4", bytes.NewReader(bad), int64(len(bad)), hexSum(good)); err != nil && !errors.Is(err, ErrChecksum) {
			t.Fatalf("put of damaged content over an object of its SHA-256: %v", err)
		}
		if b, in := getAll(t, s, "rec/old.mp4"); !bytes.Equal(b, good) || in.SHA256 != hexSum(good) {
			t.Fatalf("the old object changed: %d bytes, %+v", len(b), in)
		}

		// Content shorter or longer than the size given is refused too.
		err = s.Put(ctx, "rec/short.mp4", bytes.NewReader(good[:10]), 20, hexSum(good[:10]))
		if err == nil || strings.Contains(err.Error(), "cannot reach") {
			t.Fatalf("put of fewer bytes than size: %v", err)
		}
		t.Logf("short: %v", err)
		if _, err := s.Stat(ctx, "rec/short.mp4"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("a short put left an object: %v", err)
		}

		// A malformed SHA-256 is refused before any request.
		if err := s.Put(ctx, "rec/x.mp4", strings.NewReader("x"), 1, "abc"); err == nil || !strings.Contains(err.Error(), "64 hex digits") {
			t.Fatalf("put with a malformed SHA-256: %v", err)
		}
	})
}

// TestS3ServerChecksums pins down what each server checks and returns, which
// the store relies on: the additional checksum (x-amz-checksum-sha256) and
// the signed payload hash (x-amz-content-sha256) are each verified on their
// own, and the checksum is returned on HEAD and GET in checksum mode.
func TestS3ServerChecksums(t *testing.T) {
	forEachS3Server(t, testkit.S3ServerParams{}, func(t *testing.T, srv *testkit.S3Server) {
		ctx := context.Background()
		core := minio.Core{Client: srv.Client()}
		body := []byte("segment")
		sum := sha256.Sum256(body)
		other := sha256.Sum256([]byte("other"))
		put := func(key string, payload, checksum []byte) error {
			opts := minio.PutObjectOptions{DisableContentSha256: true}
			if checksum != nil {
				opts.UserMetadata = map[string]string{"x-amz-checksum-sha256": base64.StdEncoding.EncodeToString(checksum)}
			}
			payloadHex := ""
			if payload != nil {
				payloadHex = hex.EncodeToString(payload)
			}
			_, err := core.PutObject(ctx, srv.Bucket, key, bytes.NewReader(body), int64(len(body)), "", payloadHex, opts)
			return err
		}
		cases := []struct {
			key               string
			payload, checksum []byte
			ok                bool
		}{
			{"unsigned-wrong-checksum", nil, other[:], false},
			{"signed-wrong-checksum", sum[:], other[:], false},
			{"wrong-payload-right-checksum", other[:], sum[:], false},
			{"checksum-only", nil, sum[:], true},
		}
		for _, c := range cases {
			err := put(c.key, c.payload, c.checksum)
			if (err == nil) != c.ok {
				t.Fatalf("%s: %v, want ok=%v", c.key, err, c.ok)
			}
			if err != nil {
				t.Logf("%s: %s (%s)", c.key, minio.ToErrorResponse(err).Code, err)
			}
		}
		// No user metadata: the store takes the SHA-256 from the checksum.
		s := newS3(t, s3Params(srv))
		in, err := s.Stat(ctx, "checksum-only")
		if err != nil || in.SHA256 != hex.EncodeToString(sum[:]) {
			t.Fatalf("stat of an object with only a checksum: %+v, %v", in, err)
		}
		if _, in := getAll(t, s, "checksum-only"); in.SHA256 != hex.EncodeToString(sum[:]) {
			t.Fatalf("get of an object with only a checksum: %+v", in)
		}
		if l := listKeys(t, s, "checksum-only"); len(l) != 1 || l[0].SHA256 != hex.EncodeToString(sum[:]) {
			t.Fatalf("list of an object with only a checksum: %+v", l)
		}
		// No checksum at all: the SHA-256 is not known.
		if _, err := core.PutObject(ctx, srv.Bucket, "plain", bytes.NewReader(body), int64(len(body)), "", "", minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
		if in, err := s.Stat(ctx, "plain"); err != nil || in.SHA256 != "" || in.Size != int64(len(body)) {
			t.Fatalf("stat of an object without checksum: %+v, %v", in, err)
		}
	})
}

func TestS3ListOrderAndPaging(t *testing.T) {
	forEachS3Server(t, testkit.S3ServerParams{}, func(t *testing.T, srv *testkit.S3Server) {
		p := s3Params(srv)
		p.ListPageSize = 100
		s := newS3(t, p)
		ctx := context.Background()

		// Keys whose byte order differs from a naive or numeric order:
		// '-' < '.' < '/' < '0' and "9" > "10".
		var keys []string
		for i := range 1090 {
			keys = append(keys, fmt.Sprintf("rec/i1/cam/%d.mp4", i))
		}
		keys = append(keys, "rec/i1/cam-b/x", "rec/i1/cam.b/x", "rec/i1/cam/", "rec/i1/cam0/x",
			"rec/i1/cama", "rec/i1/cam/a/b", "rec/i1/cam/a-b", "rec/i1/cam/a.b", "rec/i1/cam/~", "rec/i1/cam/Z")
		keys = slices.DeleteFunc(keys, func(k string) bool { return CheckKey(k) != nil })
		start := time.Now()
		putMany(t, s, keys)
		t.Logf("%s: put %d objects in %v", srv.Kind, len(keys), time.Since(start))

		want := slices.Clone(keys)
		slices.Sort(want)
		start = time.Now()
		got := listKeys(t, s, "rec/i1/")
		t.Logf("%s: listed %d keys in pages of 100 in %v", srv.Kind, len(got), time.Since(start))
		if len(got) != len(want) {
			t.Fatalf("listed %d keys, want %d", len(got), len(want))
		}
		for i, in := range got {
			if in.Key != want[i] {
				t.Fatalf("key %d is %q, want %q", i, in.Key, want[i])
			}
			if in.SHA256 != hexSum([]byte(in.Key)) {
				t.Fatalf("%s: SHA-256 %q", in.Key, in.SHA256)
			}
		}
		// A listing ends with the context.
		cctx, cancel := context.WithCancel(ctx)
		n := 0
		err := s.List(cctx, "rec/", func(Info) error {
			if n++; n == 150 {
				cancel()
			}
			return nil
		})
		if !errors.Is(err, context.Canceled) || n >= len(keys) {
			t.Fatalf("cancelled listing: %v after %d keys", err, n)
		}
	})
}

// putMany stores each key with the key itself as content, a few at a time.
func putMany(t *testing.T, s Store, keys []string) {
	t.Helper()
	ctx := context.Background()
	ch := make(chan string)
	errs := make(chan error, len(keys))
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for k := range ch {
				errs <- s.Put(ctx, k, strings.NewReader(k), int64(len(k)), hexSum([]byte(k)))
			}
		})
	}
	for _, k := range keys {
		ch <- k
	}
	close(ch)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestS3Prefix(t *testing.T) {
	forEachS3Server(t, testkit.S3ServerParams{}, func(t *testing.T, srv *testkit.S3Server) {
		ctx := context.Background()
		p := s3Params(srv)
		p.Prefix = "/site-a/"
		a := newS3(t, p)
		p.Prefix = "site-ab"
		ab := newS3(t, p)
		p.Prefix = ""
		root := newS3(t, p)
		if err := a.Put(ctx, "rec/1.mp4", strings.NewReader("a"), 1, ""); err != nil {
			t.Fatal(err)
		}
		if err := ab.Put(ctx, "rec/1.mp4", strings.NewReader("b"), 1, ""); err != nil {
			t.Fatal(err)
		}
		if l := listKeys(t, a, ""); len(l) != 1 || l[0].Key != "rec/1.mp4" || l[0].SHA256 != hexSum([]byte("a")) {
			t.Fatalf("list under prefix: %+v", l)
		}
		if b, in := getAll(t, a, "rec/1.mp4"); string(b) != "a" || in.Key != "rec/1.mp4" {
			t.Fatalf("get under prefix: %q %+v", b, in)
		}
		l := listKeys(t, root, "")
		if len(l) != 2 || l[0].Key != "site-a/rec/1.mp4" || l[1].Key != "site-ab/rec/1.mp4" {
			t.Fatalf("list of the whole bucket: %+v", l)
		}
		if err := a.Delete(ctx, "rec/1.mp4"); err != nil {
			t.Fatal(err)
		}
		if _, err := ab.Stat(ctx, "rec/1.mp4"); err != nil {
			t.Fatalf("delete under one prefix touched another: %v", err)
		}
		p.Prefix = "a/../b"
		if _, err := NewS3(p); err == nil {
			t.Fatal("a prefix with .. was accepted")
		}
	})
}

// TestS3StopRestart stops the server (connections refused), expects clear
// errors quickly, and works again once the server is back on the same port
// and data.
func TestS3StopRestart(t *testing.T) {
	forEachS3Server(t, testkit.S3ServerParams{}, func(t *testing.T, srv *testkit.S3Server) {
		s := newS3(t, s3Params(srv))
		ctx := context.Background()
		if err := s.Put(ctx, "rec/before.mp4", strings.NewReader("before"), 6, ""); err != nil {
			t.Fatal(err)
		}

		for _, down := range []struct {
			name string
			stop func()
		}{{"stop", srv.Stop}, {"kill", srv.Kill}} {
			down.stop()
			if !srv.Refused() {
				t.Fatalf("%s: the port still accepts connections", down.name)
			}
			start := time.Now()
			errs := map[string]error{
				"check": s.Check(ctx),
				"put":   s.Put(ctx, "rec/during.mp4", strings.NewReader("during"), 6, ""),
				"list":  s.List(ctx, "", func(Info) error { return nil }),
			}
			_, errs["stat"] = s.Stat(ctx, "rec/before.mp4")
			_, _, errs["get"] = s.Get(ctx, "rec/before.mp4")
			errs["delete"] = s.Delete(ctx, "rec/before.mp4")
			for op, err := range errs {
				if err == nil || errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "cannot reach "+srv.Endpoint) || !errors.Is(err, ErrUnreachable) {
					t.Fatalf("%s with the server down (%s): %v", op, down.name, err)
				}
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Fatalf("six calls to a stopped server took %v: they should fail fast", d)
			}
			t.Logf("%s: %v", down.name, errs["put"])

			srv.Start()
			if err := s.Check(ctx); err != nil {
				t.Fatalf("check after restart: %v", err)
			}
			if b, _ := getAll(t, s, "rec/before.mp4"); string(b) != "before" {
				t.Fatalf("after restart: %q", b)
			}
			if err := s.Put(ctx, "rec/after-"+down.name+".mp4", strings.NewReader("after"), 5, ""); err != nil {
				t.Fatalf("put after restart: %v", err)
			}
		}
		if n := len(listKeys(t, s, "rec/")); n != 3 {
			t.Fatalf("%d objects after restarts, want 3", n)
		}
	})
}

func TestS3BadConfig(t *testing.T) {
	forEachS3Server(t, testkit.S3ServerParams{}, func(t *testing.T, srv *testkit.S3Server) {
		ctx := context.Background()
		check := func(name string, mod func(*S3Params), want ...string) {
			t.Helper()
			p := s3Params(srv)
			mod(&p)
			s, err := NewS3(p)
			if err != nil {
				t.Fatalf("%s: NewS3: %v", name, err)
			}
			err = s.Check(ctx)
			if err == nil {
				t.Fatalf("%s: Check passed", name)
			}
			for _, w := range want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("%s: %q does not say %q", name, err, w)
				}
			}
			if errors.Is(err, ErrUnreachable) != (name == "unreachable") {
				t.Fatalf("%s: %v: wraps ErrUnreachable: %v", name, err, errors.Is(err, ErrUnreachable))
			}
			if strings.Contains(err.Error(), srv.SecretKey) || strings.Contains(err.Error(), p.SecretKey) {
				t.Fatalf("%s: the error shows the secret key: %v", name, err)
			}
			// The same error from the calls that follow.
			if err := s.Put(ctx, "k", strings.NewReader("x"), 1, ""); err == nil || !strings.Contains(err.Error(), want[0]) {
				t.Fatalf("%s: put: %v", name, err)
			}
			t.Logf("%s: %v", name, err)
		}
		check("wrong secret", func(p *S3Params) { p.SecretKey = "wrong-secret-key" },
			"access denied", "check s3.access_key/secret_key")
		check("unknown access key", func(p *S3Params) { p.AccessKey = "nobody" },
			"access denied", "check s3.access_key/secret_key")
		check("missing bucket", func(p *S3Params) { p.Bucket = "no-such-bucket" },
			`bucket "no-such-bucket" does not exist on `+srv.Endpoint, "create it")
		closed := closedPort(t)
		check("unreachable", func(p *S3Params) { p.Endpoint = closed },
			"cannot reach "+closed, "connection refused")
		check("wrong region", func(p *S3Params) { p.Region = "eu-west-3" },
			`rejects region "eu-west-3"`, "set s3.region")
		check("tls to a plain server", func(p *S3Params) { p.TLS = true },
			"does not speak TLS", "s3.tls: false")

		for _, c := range []struct {
			name string
			mod  func(*S3Params)
			want string
		}{
			{"scheme", func(p *S3Params) { p.Endpoint = "http://" + p.Endpoint }, "without a scheme"},
			{"no port", func(p *S3Params) { p.Endpoint = "127.0.0.1" }, "host:port"},
			{"no bucket", func(p *S3Params) { p.Bucket = "" }, "s3.bucket is empty"},
			{"bad bucket", func(p *S3Params) { p.Bucket = "Recordings_1" }, "not a valid S3 bucket name"},
			{"no secret", func(p *S3Params) { p.SecretKey = "" }, "s3.secret_key"},
			{"ca without tls", func(p *S3Params) { p.CAFile = "/x.pem" }, "need s3.tls: true"},
			{"missing ca file", func(p *S3Params) { p.TLS = true; p.CAFile = filepath.Join(t.TempDir(), "none.pem") }, "read s3.ca_file"},
		} {
			p := s3Params(srv)
			c.mod(&p)
			if _, err := NewS3(p); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("%s: NewS3: %v, want %q", c.name, err, c.want)
			}
		}
	})
}

// closedPort returns a loopback address where nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(testkit.FreePort(t)))
}

func TestS3TLS(t *testing.T) {
	forEachS3Server(t, testkit.S3ServerParams{TLS: true}, func(t *testing.T, srv *testkit.S3Server) {
		ctx := context.Background()
		s := newS3(t, s3Params(srv))
		b := randomBytes(t, 2<<20)
		if err := s.Put(ctx, "rec/tls.mp4", bytes.NewReader(b), int64(len(b)), hexSum(b)); err != nil {
			t.Fatal(err)
		}
		if got, in := getAll(t, s, "rec/tls.mp4"); !bytes.Equal(got, b) || in.SHA256 != hexSum(b) {
			t.Fatalf("get over TLS: %d bytes, %+v", len(got), in)
		}
		bad := bytes.Clone(b)
		bad[0] ^= 1
		if err := s.Put(ctx, "rec/bad.mp4", bytes.NewReader(bad), int64(len(bad)), hexSum(b)); err == nil {
			t.Fatal("damaged content accepted over TLS")
		}

		p := s3Params(srv)
		p.CAFile = ""
		if err := mustNewS3(t, p).Check(ctx); err == nil || !strings.Contains(err.Error(), "not trusted") || !strings.Contains(err.Error(), "s3.ca_file") {
			t.Fatalf("untrusted certificate: %v", err)
		}
		p.InsecureSkipVerify = true
		if err := mustNewS3(t, p).Check(ctx); err != nil {
			t.Fatalf("insecure_skip_verify: %v", err)
		}
		p = s3Params(srv)
		p.TLS, p.CAFile = false, ""
		err := mustNewS3(t, p).Check(ctx)
		if err == nil || !strings.Contains(err.Error(), "s3.tls: true") {
			t.Fatalf("plain HTTP to a TLS server: %v", err)
		}
		t.Logf("plain HTTP to TLS: %v", err)
	})
}

func mustNewS3(t *testing.T, p S3Params) *S3 {
	t.Helper()
	s, err := NewS3(p)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestS3GetDetectsDamage damages an object's bytes where versitygw keeps
// them (a plain file per object) and expects Get's reader to fail.
func TestS3GetDetectsDamage(t *testing.T) {
	srv := testkit.StartVersityGW(t, testkit.S3ServerParams{})
	s := newS3(t, s3Params(srv))
	ctx := context.Background()
	b := randomBytes(t, 256<<10)
	if err := s.Put(ctx, "rec/rot.mp4", bytes.NewReader(b), int64(len(b)), hexSum(b)); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(srv.DataDir, srv.Bucket, "rec", "rot.mp4"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatalf("open the object's file: %v", err)
	}
	if _, err := f.WriteAt([]byte{b[1000] ^ 0xff}, 1000); err != nil {
		t.Fatal(err)
	}
	f.Close()
	rc, in, err := s.Get(ctx, "rec/rot.mp4")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err == nil || !strings.Contains(err.Error(), "damaged") || in.SHA256 != hexSum(b) || len(got) != len(b) {
		t.Fatalf("read of a damaged object: %d bytes, %v, %+v", len(got), err, in)
	}
}

// TestS3Timeout talks to an endpoint that accepts connections and never
// answers: each call fails after about the timeout.
func TestS3Timeout(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	s := mustNewS3(t, S3Params{Endpoint: l.Addr().String(), Bucket: "bkt", AccessKey: "a", SecretKey: "s", Timeout: 300 * time.Millisecond})
	ctx := context.Background()
	for name, call := range map[string]func() error{
		"check": func() error { return s.Check(ctx) },
		"stat":  func() error { _, err := s.Stat(ctx, "k"); return err },
		"put":   func() error { return s.Put(ctx, "k", strings.NewReader("x"), 1, "") },
	} {
		start := time.Now()
		err := call()
		if err == nil || !strings.Contains(err.Error(), "cannot reach "+l.Addr().String()) || !errors.Is(err, ErrUnreachable) {
			t.Fatalf("%s: %v", name, err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("%s took %v with a timeout of 300ms", name, d)
		}
		t.Logf("%s: %v", name, err)
	}
}
