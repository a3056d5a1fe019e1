package retention

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"fieldvideo/internal/audit"
	"fieldvideo/internal/auth"
	"fieldvideo/internal/recorder"
	"fieldvideo/internal/store"
	"fieldvideo/internal/testkit"

	"github.com/golang-jwt/jwt/v5"
)

// t0 is the capture time the test segments start from.
var t0 = time.Date(2026, 11, 23, 4, 0, 0, 0, time.UTC)

const testIncident = "inc1"

// clock is a settable clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

// flaky is a store that fails every call while it is down.
type flaky struct {
	store.Store
	down atomic.Bool
}

func (f *flaky) fail() error {
	if f.down.Load() {
		return fmt.Errorf("store %s: %w (test outage)", f.Name(), store.ErrUnreachable)
	}
	return nil
}

func (f *flaky) Put(ctx context.Context, key string, r io.Reader, size int64, sum string) error {
	if err := f.fail(); err != nil {
		return err
	}
	return f.Store.Put(ctx, key, r, size, sum)
}

func (f *flaky) Get(ctx context.Context, key string) (io.ReadCloser, store.Info, error) {
	if err := f.fail(); err != nil {
		return nil, store.Info{}, err
	}
	return f.Store.Get(ctx, key)
}

func (f *flaky) Stat(ctx context.Context, key string) (store.Info, error) {
	if err := f.fail(); err != nil {
		return store.Info{}, err
	}
	return f.Store.Stat(ctx, key)
}

func (f *flaky) List(ctx context.Context, prefix string, fn func(store.Info) error) error {
	if err := f.fail(); err != nil {
		return err
	}
	return f.Store.List(ctx, prefix, fn)
}

func (f *flaky) Delete(ctx context.Context, key string) error {
	if err := f.fail(); err != nil {
		return err
	}
	return f.Store.Delete(ctx, key)
}

// backend makes a fresh pair of stores (primary, off-site) per call.
type backend struct {
	name string
	new  func(t *testing.T) [2]store.Store
}

// backends returns the filesystem store and S3 servers: MinIO as the
// primary site and versitygw as the off-site one, started once for the
// calling test; each pair gets its own key prefix.
func backends(t *testing.T) []backend {
	fs := backend{name: "fs", new: fsPair}
	if testing.Short() {
		return []backend{fs}
	}
	srvs := [2]*testkit.S3Server{testkit.StartMinIO(t, testkit.S3ServerParams{}), testkit.StartVersityGW(t, testkit.S3ServerParams{})}
	var n atomic.Int64
	s3 := backend{name: "minio-versitygw", new: func(t *testing.T) [2]store.Store {
		prefix := fmt.Sprintf("t%d", n.Add(1))
		var out [2]store.Store
		for i, name := range []string{"primary", "offsite"} {
			srv := srvs[i]
			s, err := store.NewS3(store.S3Params{Name: name, Endpoint: srv.Endpoint, Bucket: srv.Bucket, Region: srv.Region,
				AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, Prefix: prefix, Timeout: 10 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Check(context.Background()); err != nil {
				t.Fatal(err)
			}
			out[i] = s
		}
		return out
	}}
	return []backend{fs, s3}
}

// fsPair returns two filesystem stores in fresh directories.
func fsPair(t *testing.T) [2]store.Store {
	var out [2]store.Store
	for i, name := range []string{"primary", "offsite"} {
		s, err := store.NewFS(name, filepath.Join(t.TempDir(), name))
		if err != nil {
			t.Fatal(err)
		}
		out[i] = s
	}
	return out
}

// env is a Retention over a pair of stores, with a real audit log.
type env struct {
	t       *testing.T
	stores  [2]*flaky
	clock   *clock
	auditF  string
	secret  []byte
	ver     *auth.Verifier
	r       *Retention
	nextSeq atomic.Uint64
}

func newEnv(t *testing.T, pair [2]store.Store, primaryRet, offsiteRet time.Duration) *env {
	t.Helper()
	e := &env{t: t, clock: &clock{now: t0}, auditF: filepath.Join(t.TempDir(), "audit.log")}
	e.stores = [2]*flaky{{Store: pair[0]}, {Store: pair[1]}}
	log, err := audit.Open(audit.Params{File: e.auditF, Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = log.Close() })
	e.secret = bytes.Repeat([]byte("k"), 32)
	if e.ver, err = auth.NewVerifier(e.secret, nil); err != nil {
		t.Fatal(err)
	}
	e.r, err = New(Params{
		Primary:  StoreParams{Store: e.stores[0], Retention: primaryRet},
		Offsite:  StoreParams{Store: e.stores[1], Retention: offsiteRet},
		Incident: testIncident,
		Audit:    log.Write,
		Verifier: e.ver,
		Log:      slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:      e.clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// testWriter sends log lines to the test's log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

// seg is a test segment.
type seg struct {
	incident, source string
	start            time.Time
	dur              time.Duration
}

func (s seg) key(seq uint64) string {
	inc := s.incident
	if inc == "" {
		inc = testIncident
	}
	return recorder.SegmentKey(inc, s.source, s.start, s.dur, "0badcafe", seq)
}

// put stores a segment and its manifest at the given sites (the same
// content at each) and returns the segment's key.
func (e *env) put(s seg, at ...Site) string {
	e.t.Helper()
	key := s.key(e.nextSeq.Add(1))
	body := randomBytes(e.t, 1000)
	man := []byte(fmt.Sprintf(`{"version":1,"key":%q,"sha256":%q}`, key, hexSum(body)))
	for _, site := range at {
		e.putObject(site, key, body)
		e.putObject(site, recorder.ManifestKey(key), man)
	}
	return key
}

func (e *env) putObject(site Site, key string, b []byte) {
	e.t.Helper()
	if err := e.stores[site].Store.Put(context.Background(), key, bytes.NewReader(b), int64(len(b)), hexSum(b)); err != nil {
		e.t.Fatalf("put %s at %s: %v", key, site, err)
	}
}

// keys lists the recording objects at a site.
func (e *env) keys(site Site) []string {
	e.t.Helper()
	var out []string
	if err := e.stores[site].Store.List(context.Background(), "rec/", func(in store.Info) error {
		out = append(out, in.Key)
		return nil
	}); err != nil {
		e.t.Fatalf("list %s: %v", site, err)
	}
	return out
}

// objects returns the segment and manifest keys of the given segments,
// sorted.
func objects(segs ...string) []string {
	var out []string
	for _, k := range segs {
		out = append(out, k, recorder.ManifestKey(k))
	}
	slices.Sort(out)
	return out
}

func (e *env) wantKeys(site Site, segs ...string) {
	e.t.Helper()
	got, want := e.keys(site), objects(segs...)
	if !slices.Equal(got, want) {
		e.t.Fatalf("%s holds\n  %v\nwant\n  %v", site, got, want)
	}
}

func (e *env) pass() error {
	return e.r.Pass(context.Background())
}

func (e *env) mustPass() {
	e.t.Helper()
	if err := e.pass(); err != nil {
		e.t.Fatalf("pass: %v", err)
	}
}

// auditLine is an event line of the audit log.
type auditLine struct {
	audit.Event
	Kind string `json:"kind"`
}

// events reads the audit log back: its event lines, in order.
func (e *env) events() []auditLine {
	e.t.Helper()
	f, err := os.Open(e.auditF)
	if err != nil {
		e.t.Fatal(err)
	}
	defer f.Close()
	var out []auditLine
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l auditLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			e.t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		if l.Kind == "" {
			out = append(out, l)
		}
	}
	if err := sc.Err(); err != nil {
		e.t.Fatal(err)
	}
	return out
}

// deletes returns the keys of the audited deletions, in order.
func (e *env) deletes() []string {
	var out []string
	for _, l := range e.events() {
		if l.Action == "delete" && l.Result == "ok" {
			out = append(out, l.Source)
		}
	}
	return out
}

func (e *env) token(role auth.Role, who string) string {
	e.t.Helper()
	tok, err := auth.Mint(e.secret, auth.Claims{Role: role, RegisteredClaims: jwt.RegisteredClaims{Subject: who}}, time.Hour, time.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

func (e *env) hold(req HoldRequest, who string) HoldView {
	e.t.Helper()
	v, err := e.r.CreateHold(context.Background(), req, Actor{Name: who, Role: "operator"})
	if err != nil {
		e.t.Fatalf("create hold: %v", err)
	}
	return v
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

// exists reports whether key is stored at site.
func (e *env) exists(site Site, key string) bool {
	e.t.Helper()
	_, err := e.stores[site].Store.Stat(context.Background(), key)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		e.t.Fatalf("stat %s at %s: %v", key, site, err)
	}
	return err == nil
}
