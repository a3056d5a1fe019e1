package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"fieldvideo/internal/testkit"

	"github.com/minio/minio-go/v7"
)

// s3WriteModes are the ways Put guards against overwriting: with the
// server known to honour If-None-Match, before it is known (HEAD first, and
// the header), and without the header (HEAD first only, as for a server
// that rejects it).
var s3WriteModes = []struct {
	name   string
	writes condWrites
}{
	{"honoured", condHonoured},
	{"unknown", condUnknown},
	{"no-header", condRejected},
}

// TestS3ServersHonourIfNoneMatch pins down what Check learns from each
// server: both refuse a PUT with If-None-Match: * over an object, and the
// probe object is gone afterwards.
func TestS3ServersHonourIfNoneMatch(t *testing.T) {
	forEachS3Server(t, testkit.S3ServerParams{}, func(t *testing.T, srv *testkit.S3Server) {
		s := newS3(t, s3Params(srv))
		if got := s.writes.Load(); got != condHonoured {
			t.Fatalf("%s: learnt %d, want honoured (%d)", srv.Kind, got, condHonoured)
		}
		ctx := context.Background()
		for oi := range srv.Client().ListObjectsIter(ctx, srv.Bucket, minio.ListObjectsOptions{Recursive: true}) {
			if oi.Err != nil {
				t.Fatal(oi.Err)
			}
			t.Fatalf("the bucket holds %s after Check", oi.Key)
		}
		// The raw answer to a second conditional PUT.
		opts := minio.PutObjectOptions{}
		opts.SetMatchETagExcept("*")
		cl := srv.Client()
		if _, err := cl.PutObject(ctx, srv.Bucket, "raw", strings.NewReader("a"), 1, opts); err != nil {
			t.Fatal(err)
		}
		_, err := cl.PutObject(ctx, srv.Bucket, "raw", strings.NewReader("b"), 1, opts)
		resp := minio.ToErrorResponse(err)
		t.Logf("%s: second PUT with If-None-Match: *: %d %s: %s", srv.Kind, resp.StatusCode, resp.Code, resp.Message)
		if resp.StatusCode != 412 || resp.Code != "PreconditionFailed" {
			t.Fatalf("second PUT: %v", err)
		}

		// The store's reserved names are neither written nor listed.
		if err := s.Put(ctx, s3ProbeKey, strings.NewReader("x"), 1, ""); err == nil || !strings.Contains(err.Error(), "keeps for itself") {
			t.Fatalf("put of a reserved key: %v", err)
		}
		if _, err := cl.PutObject(ctx, srv.Bucket, s3ProbeKey, strings.NewReader("x"), 1, minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
		if l := listKeys(t, s, ""); len(l) != 1 || l[0].Key != "raw" {
			t.Fatalf("list: %+v, want only raw", l)
		}
	})
}

func TestS3NeverOverwrites(t *testing.T) {
	forEachS3Server(t, testkit.S3ServerParams{}, func(t *testing.T, srv *testkit.S3Server) {
		ctx := context.Background()
		for _, m := range s3WriteModes {
			t.Run(m.name, func(t *testing.T) {
				s := newS3(t, s3Params(srv))
				s.writes.Store(m.writes)
				prefix := m.name + "/"
				first := randomBytes(t, 256<<10)
				other := randomBytes(t, 256<<10)
				// Over minio-go's multipart threshold: the server refuses
				// before it has read the body.
				big := randomBytes(t, 20<<20)
				cases := []struct {
					name    string
					content []byte
					sum     string
					want    error
				}{
					{"same content", first, hexSum(first), nil},
					{"same content, no SHA-256 given", first, "", nil},
					{"other content", other, hexSum(other), ErrExists},
					{"other content, no SHA-256 given", other, "", ErrExists},
					{"shorter content", first[:1000], hexSum(first[:1000]), ErrExists},
					{"big other content", big, hexSum(big), ErrExists},
				}
				key := prefix + "rec/seg.mp4"
				if err := s.Put(ctx, key, bytes.NewReader(first), int64(len(first)), hexSum(first)); err != nil {
					t.Fatal(err)
				}
				for _, c := range cases {
					t.Run(c.name, func(t *testing.T) { putOver(t, s, key, first, c.content, c.sum, c.want) })
				}

				// An object stored without a SHA-256 is read to compare.
				plain := prefix + "plain"
				if _, err := srv.Client().PutObject(ctx, srv.Bucket, plain, bytes.NewReader(first), int64(len(first)), minio.PutObjectOptions{}); err != nil {
					t.Fatal(err)
				}
				if err := s.Put(ctx, plain, bytes.NewReader(first), int64(len(first)), hexSum(first)); err != nil {
					t.Fatalf("same content over an object without a SHA-256: %v", err)
				}
				if err := s.Put(ctx, plain, bytes.NewReader(other), int64(len(other)), hexSum(other)); !errors.Is(err, ErrExists) {
					t.Fatalf("other content over an object without a SHA-256: %v", err)
				}
			})
		}
	})
}

func TestS3ConcurrentPutsOneWinner(t *testing.T) {
	forEachS3Server(t, testkit.S3ServerParams{}, func(t *testing.T, srv *testkit.S3Server) {
		for _, m := range s3WriteModes {
			if m.writes == condRejected {
				continue // HEAD first only: two writers at one moment may both write
			}
			t.Run(m.name, func(t *testing.T) {
				s := newS3(t, s3Params(srv))
				s.writes.Store(m.writes)
				putConcurrently(t, s, m.name+"/race.mp4", 8)
			})
		}
	})
}

// putConcurrently puts n different contents at key at once, then n copies
// of the winner's content: exactly one of the first wins, the others get
// ErrExists, and every copy succeeds.
func putConcurrently(t *testing.T, s Store, key string, n int) {
	t.Helper()
	ctx := context.Background()
	contents := make([][]byte, n)
	for i := range contents {
		contents[i] = randomBytes(t, 64<<10+i)
	}
	run := func(content func(i int) []byte) []error {
		errs := make([]error, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				<-start
				b := content(i)
				errs[i] = s.Put(ctx, key, bytes.NewReader(b), int64(len(b)), hexSum(b))
			})
		}
		close(start)
		wg.Wait()
		return errs
	}
	winner := -1
	for i, err := range run(func(i int) []byte { return contents[i] }) {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("puts %d and %d both succeeded", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, ErrExists):
			t.Fatalf("put %d: %v, want nil or ErrExists", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no put succeeded")
	}
	if b, in := getAll(t, s, key); !bytes.Equal(b, contents[winner]) || in.SHA256 != hexSum(contents[winner]) {
		t.Fatalf("stored %d bytes (%+v), not put %d's", len(b), in, winner)
	}
	for i, err := range run(func(int) []byte { return contents[winner] }) {
		if err != nil {
			t.Fatalf("copy %d of the stored content: %v", i, err)
		}
	}
	t.Logf("put %d of %d won", winner, n)
}

// TestS3PutAfterLostAnswer repeats a put whose answer was lost: the object
// is there, with the same content, and Put returns nil.
func TestS3PutAfterLostAnswer(t *testing.T) {
	forEachS3Server(t, testkit.S3ServerParams{}, func(t *testing.T, srv *testkit.S3Server) {
		s := newS3(t, s3Params(srv))
		ctx := context.Background()
		for i := range 3 {
			b := []byte(fmt.Sprintf("segment %d", i))
			for try := range 3 {
				if err := s.Put(ctx, fmt.Sprintf("rec/%d.mp4", i), bytes.NewReader(b), int64(len(b)), hexSum(b)); err != nil {
					t.Fatalf("segment %d, try %d: %v", i, try, err)
				}
			}
		}
		if n := len(listKeys(t, s, "rec/")); n != 3 {
			t.Fatalf("%d objects, want 3", n)
		}
	})
}
