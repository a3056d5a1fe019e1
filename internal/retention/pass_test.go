package retention

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"fieldvideo/internal/audit"
	"fieldvideo/internal/metrics"
	"fieldvideo/internal/recorder"
	"fieldvideo/internal/store"
	"fieldvideo/internal/testkit"
)

var both = []Site{Primary, Offsite}

func TestRetention(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			for _, c := range []struct {
				name string
				run  func(*testing.T, [2]store.Store)
			}{
				{"verified copy", testVerifiedCopy},
				{"off-site keeps forever", testOtherKeepsForever},
				{"hold over a time range", testHoldRange},
				{"hold stored at the other site only", testHoldOtherSiteOnly},
				{"hold written to one site, other failing", testHoldOneSiteFailing},
				{"two processes", testTwoProcesses},
			} {
				t.Run(c.name, func(t *testing.T) { c.run(t, b.new(t)) })
			}
		})
	}
}

// testVerifiedCopy: the primary (1h) deletes what the off-site (24h) holds
// a verified copy of, keeps the rest until both retentions have passed.
func testVerifiedCopy(t *testing.T, pair [2]store.Store) {
	e := newEnv(t, pair, time.Hour, 24*time.Hour)
	old := seg{source: "cam-1", start: t0, dur: 10 * time.Minute}
	copied := e.put(old, both...)
	primaryOnly := e.put(old, Primary)
	// Different segment content at the two sites, the same manifest.
	differs := e.put(old, Primary)
	e.putObject(Offsite, differs, randomBytes(t, 1000))
	man := readAll(t, e, Primary, recorder.ManifestKey(differs))
	e.putObject(Offsite, recorder.ManifestKey(differs), man)
	young := e.put(seg{source: "cam-1", start: t0.Add(150 * time.Minute), dur: 10 * time.Minute}, both...)

	e.clock.Set(t0.Add(3 * time.Hour))
	e.mustPass()
	e.wantKeys(Primary, primaryOnly, differs, young)
	e.wantKeys(Offsite, copied, differs, young)
	if got, want := e.deletes(), []string{recorder.ManifestKey(copied), copied}; !slices.Equal(got, want) {
		t.Fatalf("audited deletions %v, want %v (the manifest first)", got, want)
	}
	for _, l := range e.events() {
		if l.Action == "delete" && (l.Actor != "retention" || l.Reason != "older than 1h at primary; off-site holds a verified copy") {
			t.Fatalf("delete line %+v", l.Event)
		}
	}
	st := e.r.Stats().Sites[Primary]
	if st.Deleted != 2 || st.DeletedBytes < 1000 || st.Unverified != 4 || st.Held != 0 || st.LastError != "" {
		t.Fatalf("primary stats %+v; want 2 deleted, 4 unverified", st)
	}

	// Nothing more to do: a second pass deletes and audits nothing.
	e.mustPass()
	if n := len(e.deletes()); n != 2 {
		t.Fatalf("%d deletions audited after a second pass, want 2", n)
	}

	// The off-site retention has passed for the old segments, not for the
	// young one: it goes at the primary only (verified off-site).
	e.clock.Set(t0.Add(25 * time.Hour))
	e.mustPass()
	e.wantKeys(Primary)
	e.wantKeys(Offsite, young)

	e.clock.Set(t0.Add(27 * time.Hour))
	e.mustPass()
	e.wantKeys(Offsite)
	perKey := map[string]int{}
	for _, k := range e.deletes() {
		perKey[k]++
	}
	want := map[string]int{}
	for _, k := range objects(copied, differs, young) {
		want[k] = 2 // once per site
	}
	for _, k := range objects(primaryOnly) {
		want[k] = 1
	}
	if !mapsEqual(perKey, want) {
		t.Fatalf("audited deletions per key %v, want %v", perKey, want)
	}
}

// testOtherKeepsForever: with an off-site retention of 0 the primary
// deletes only what the off-site holds a verified copy of, however old.
func testOtherKeepsForever(t *testing.T, pair [2]store.Store) {
	e := newEnv(t, pair, time.Hour, 0)
	old := seg{source: "cam-1", start: t0, dur: 4 * time.Second}
	copied := e.put(old, both...)
	primaryOnly := e.put(old, Primary)
	e.clock.Set(t0.Add(1000 * time.Hour))
	e.mustPass()
	e.wantKeys(Primary, primaryOnly)
	e.wantKeys(Offsite, copied)
}

// testHoldRange: a hold keeps exactly the segments it covers at both sites;
// releasing it lets the next pass delete them.
func testHoldRange(t *testing.T, pair [2]store.Store) {
	e := newEnv(t, pair, time.Hour, 24*time.Hour)
	var segs []string
	for i := range 6 {
		segs = append(segs, e.put(seg{source: "cam-1", start: t0.Add(time.Duration(i) * 10 * time.Minute), dur: 10 * time.Minute}, both...))
	}
	otherSource := e.put(seg{source: "door-2", start: t0.Add(10 * time.Minute), dur: 10 * time.Minute}, both...)
	otherIncident := e.put(seg{incident: "inc2", source: "cam-1", start: t0.Add(10 * time.Minute), dur: 10 * time.Minute}, both...)
	// [t0+10m, t0+20m) covers the segment [10m, 20m) and neither neighbour
	// ([0, 10m) ends at its start, [20m, 30m) starts at its end).
	h := e.hold(HoldRequest{Source: "cam-*", From: t0.Add(10 * time.Minute), To: t0.Add(20 * time.Minute), Reason: "case 2026-118"}, "alice")
	// Open-ended from within the last segment.
	open := e.hold(HoldRequest{Source: "cam-1", From: t0.Add(55 * time.Minute), Reason: "ongoing"}, "alice")
	if len(h.Pending) != 0 || !slices.Equal(h.Sites, []string{"primary", "offsite"}) {
		t.Fatalf("hold %+v: want it stored at both sites", h)
	}
	for _, s := range both {
		if !e.exists(s, HoldKey(h.ID)) {
			t.Fatalf("hold %s not stored at %s", h.ID, s)
		}
	}

	e.clock.Set(t0.Add(30 * time.Hour))
	e.mustPass()
	e.wantKeys(Primary, segs[1], segs[5])
	e.wantKeys(Offsite, segs[1], segs[5])
	if st := e.r.Stats(); st.Sites[Primary].Held != 4 || st.Sites[Offsite].Held != 4 || st.Holds != 2 {
		t.Fatalf("stats %+v: want 4 held objects per site and 2 holds", st)
	}

	if _, err := e.r.ReleaseHold(context.Background(), h.ID, Actor{Name: "cmdr", Role: "commander", Remote: "10.0.0.7:5000"}); err != nil {
		t.Fatal(err)
	}
	for _, s := range both {
		if e.exists(s, HoldKey(h.ID)) {
			t.Fatalf("released hold %s still stored at %s", h.ID, s)
		}
	}
	e.mustPass()
	e.wantKeys(Primary, segs[5])
	e.wantKeys(Offsite, segs[5])

	// One delete line per deleted object and site; the hold and release
	// lines with their actors.
	perKey := map[string]int{}
	for _, k := range e.deletes() {
		perKey[k]++
	}
	want := map[string]int{}
	for _, k := range objects(append(slices.Clone(segs[:5]), otherSource, otherIncident)...) {
		want[k] = 2
	}
	if !mapsEqual(perKey, want) {
		t.Fatalf("audited deletions per key %v, want %v", perKey, want)
	}
	var holds, releases int
	for _, l := range e.events() {
		switch l.Action {
		case "hold":
			holds++
			if l.Actor != "alice" || (l.Session != h.ID && l.Session != open.ID) || !strings.Contains(l.Reason, "inc1/cam-") {
				t.Fatalf("hold line %+v", l.Event)
			}
		case "release":
			releases++
			if l.Actor != "cmdr" || l.Role != "commander" || l.Session != h.ID || l.Remote != "10.0.0.7:5000" || !strings.Contains(l.Reason, "case 2026-118") {
				t.Fatalf("release line %+v", l.Event)
			}
		}
	}
	if holds != 2 || releases != 1 {
		t.Fatalf("%d hold and %d release lines, want 2 and 1", holds, releases)
	}
}

// testHoldOtherSiteOnly: a hold found at one site protects at both.
func testHoldOtherSiteOnly(t *testing.T, pair [2]store.Store) {
	e := newEnv(t, pair, time.Hour, time.Hour)
	kept := e.put(seg{source: "cam-1", start: t0, dur: time.Minute}, both...)
	gone := e.put(seg{source: "cam-1", start: t0.Add(time.Hour), dur: time.Minute}, both...)
	h := Hold{Version: holdVersion, ID: "written-elsewhere", Incident: testIncident, Source: "*", From: t0, To: t0.Add(time.Minute),
		Reason: "written by another process", CreatedBy: "bob", CreatedAt: t0}
	b, err := encodeHold(h)
	if err != nil {
		t.Fatal(err)
	}
	e.putObject(Offsite, HoldKey(h.ID), b)
	e.clock.Set(t0.Add(3 * time.Hour))
	e.mustPass()
	e.wantKeys(Primary, kept)
	e.wantKeys(Offsite, kept)
	list, err := e.r.Holds(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Holds) != 1 || !slices.Equal(list.Holds[0].Sites, []string{"offsite"}) || !slices.Equal(list.Holds[0].Pending, []string{"primary"}) {
		t.Fatalf("holds %+v: want the hold at offsite, pending at primary", list)
	}
	if !e.r.Retained(Primary, kept) || e.r.Retained(Primary, gone) || !e.r.Retained(Primary, "holds/x.json") {
		t.Fatal("Retained disagrees with the holds")
	}
}

// testHoldOneSiteFailing: a hold written to one site while the other
// fails; while the other's holds cannot be read, no pass deletes anything;
// once it is back the hold is written there and the pass deletes the rest.
func testHoldOneSiteFailing(t *testing.T, pair [2]store.Store) {
	e := newEnv(t, pair, time.Hour, 24*time.Hour)
	var segs []string
	for i := range 3 {
		segs = append(segs, e.put(seg{source: "cam-1", start: t0.Add(time.Duration(i) * time.Minute), dur: time.Minute}, both...))
	}
	e.stores[Offsite].down.Store(true)
	v := e.hold(HoldRequest{Source: "cam-1", From: t0.Add(time.Minute), To: t0.Add(2 * time.Minute), Reason: "one site down"}, "alice")
	if !slices.Equal(v.Sites, []string{"primary"}) || !slices.Equal(v.Pending, []string{"offsite"}) {
		t.Fatalf("hold %+v: want it stored at primary, pending off-site", v)
	}
	list, err := e.r.Holds(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Holds) != 1 || !slices.Equal(list.Holds[0].Pending, []string{"offsite"}) || list.Unreadable["offsite"] == "" {
		t.Fatalf("holds %+v: want the hold pending off-site and the off-site unreadable", list)
	}

	e.clock.Set(t0.Add(30 * time.Hour))
	err = e.pass()
	if err == nil || !strings.Contains(err.Error(), "holds at the off-site store cannot be read") {
		t.Fatalf("pass: %v; want it to stop on the off-site holds", err)
	}
	e.stores[Offsite].down.Store(false)
	e.wantKeys(Primary, segs...)
	e.wantKeys(Offsite, segs...)
	if d := e.deletes(); len(d) != 0 {
		t.Fatalf("deletions audited while a site's holds were unreadable: %v", d)
	}
	if st := e.r.Stats(); st.PendingHolds != 1 || st.Sites[Primary].LastError == "" || st.Sites[Primary].Failures != 1 {
		t.Fatalf("stats %+v: want 1 pending hold and a failed pass", st)
	}

	e.mustPass()
	if !e.exists(Offsite, HoldKey(v.ID)) || e.r.Stats().PendingHolds != 0 {
		t.Fatal("the hold was not written off-site once the store was back")
	}
	e.wantKeys(Primary, segs[1])
	e.wantKeys(Offsite, segs[1])
}

// testTwoProcesses: passes of two processes over the same stores, at once
// and one after the other, delete everything once and audit each object
// at most once per process.
func testTwoProcesses(t *testing.T, pair [2]store.Store) {
	e := newEnv(t, pair, time.Hour, time.Hour)
	var segs []string
	for i := range 20 {
		segs = append(segs, e.put(seg{source: "cam-1", start: t0.Add(time.Duration(i) * time.Minute), dur: time.Minute}, both...))
	}
	e2 := newEnv(t, [2]store.Store{e.stores[0].Store, e.stores[1].Store}, time.Hour, time.Hour)
	e.clock.Set(t0.Add(3 * time.Hour))
	e2.clock.Set(t0.Add(3 * time.Hour))
	// At once: a store may fail a Stat racing the other process's
	// deletion (versitygw answers 500); such objects are left for the next
	// pass, which must then finish the work.
	var wg sync.WaitGroup
	for _, x := range []*env{e, e2} {
		wg.Go(func() {
			if err := x.pass(); err != nil {
				t.Logf("concurrent pass: %v", err)
			}
		})
	}
	wg.Wait()
	e.mustPass()
	e.wantKeys(Primary)
	e.wantKeys(Offsite)
	n := len(e.deletes()) + len(e2.deletes())
	if n < 2*len(objects(segs...)) || n > 4*len(objects(segs...)) {
		t.Fatalf("%d deletions audited for %d objects at two sites", n, len(objects(segs...)))
	}
	e.mustPass()
	e2.mustPass()
	if m := len(e.deletes()) + len(e2.deletes()); m != n {
		t.Fatalf("passes over empty stores audited %d more deletions", m-n)
	}
}

func TestRunRetriesPendingHolds(t *testing.T) {
	e := newEnv(t, fsPair(t), 0, 0)
	e.r.p.RetryInterval = 10 * time.Millisecond
	e.stores[Offsite].down.Store(true)
	v := e.hold(HoldRequest{Source: "*", From: t0, Reason: "retry"}, "alice")
	if !slices.Equal(v.Pending, []string{"offsite"}) {
		t.Fatalf("hold %+v: want it pending off-site", v)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = e.r.Run(ctx)
	}()
	defer func() {
		cancel()
		<-done
	}()
	e.stores[Offsite].down.Store(false)
	testkit.WaitFor(t, 10*time.Second, "the hold written off-site", func() bool { return e.r.Stats().PendingHolds == 0 })
	if !e.exists(Offsite, HoldKey(v.ID)) {
		t.Fatal("hold not stored off-site")
	}

	e.stores[Primary].down.Store(true)
	rv, err := e.r.ReleaseHold(context.Background(), v.ID, Actor{Name: "op", Role: "operator"})
	if err != nil {
		t.Fatal(err)
	}
	if !rv.Releasing || !slices.Equal(rv.Pending, []string{"primary"}) {
		t.Fatalf("release %+v: want the primary pending", rv)
	}
	e.stores[Primary].down.Store(false)
	testkit.WaitFor(t, 10*time.Second, "the released hold removed at the primary", func() bool { return e.r.Stats().PendingHolds == 0 })
	for _, s := range both {
		if e.exists(s, HoldKey(v.ID)) {
			t.Fatalf("released hold still at %s", s)
		}
	}
}

func TestHoldCovers(t *testing.T) {
	h := Hold{Incident: "inc1", Source: "cam-*", From: t0.Add(10 * time.Second), To: t0.Add(20 * time.Second)}
	open := h
	open.To = time.Time{}
	for _, c := range []struct {
		name             string
		h                Hold
		incident, source string
		start, dur       time.Duration
		want             bool
	}{
		{"inside", h, "inc1", "cam-1", 12 * time.Second, 4 * time.Second, true},
		{"ends at from", h, "inc1", "cam-1", 6 * time.Second, 4 * time.Second, false},
		{"ends just after from", h, "inc1", "cam-1", 7 * time.Second, 4 * time.Second, true},
		{"starts at to", h, "inc1", "cam-1", 20 * time.Second, 4 * time.Second, false},
		{"starts just before to", h, "inc1", "cam-1", 19*time.Second + 999*time.Millisecond, 4 * time.Second, true},
		{"spans", h, "inc1", "cam-1", 0, time.Minute, true},
		{"no duration, inside", h, "inc1", "cam-1", 10 * time.Second, 0, true},
		{"other source", h, "inc1", "door-1", 12 * time.Second, 4 * time.Second, false},
		{"other incident", h, "inc2", "cam-1", 12 * time.Second, 4 * time.Second, false},
		{"open-ended", open, "inc1", "cam-9", 1000 * time.Hour, 4 * time.Second, true},
		{"open-ended, before", open, "inc1", "cam-9", 0, 4 * time.Second, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			k := recorder.KeyInfo{Incident: c.incident, Source: c.source, Start: t0.Add(c.start), Duration: c.dur}
			if got := c.h.Covers(k); got != c.want {
				t.Fatalf("Covers = %v, want %v", got, c.want)
			}
		})
	}
}

func TestNewRefuses(t *testing.T) {
	for _, c := range []struct {
		name string
		mod  func(*Params)
		want string
	}{
		{"no audit", func(p *Params) { p.Audit = nil }, "audit"},
		{"no store", func(p *Params) { p.Offsite.Store = nil }, "both stores"},
		{"negative", func(p *Params) { p.Primary.Retention = -time.Hour }, "at least"},
		{"too short", func(p *Params) { p.Offsite.Retention = time.Minute }, "typo"},
		{"incident", func(p *Params) { p.Incident = "a b" }, "incident"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, fsPair(t), 0, 0)
			p := e.r.p
			c.mod(&p)
			if _, err := New(p); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("New: %v, want an error mentioning %q", err, c.want)
			}
		})
	}
}

func readAll(t *testing.T, e *env, site Site, key string) []byte {
	t.Helper()
	rc, _, err := e.stores[site].Store.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestFailClosed: a stored hold that cannot be read, or an audit log that
// cannot be written, stops deletions.
func TestFailClosed(t *testing.T) {
	for _, c := range []struct {
		name  string
		setup func(*env)
		want  string
	}{
		{"unreadable hold", func(e *env) { e.putObject(Offsite, HoldKey("broken"), []byte("{not json")) }, "holds/broken.json is not a hold"},
		{"hold of a newer version", func(e *env) {
			e.putObject(Primary, HoldKey("v2"), []byte(`{"version":2,"id":"v2"}`))
		}, "hold version 2"},
		{"hold under another id", func(e *env) {
			h, _ := encodeHold(Hold{Version: holdVersion, ID: "other", Incident: testIncident, Source: "*", From: t0, Reason: "x"})
			e.putObject(Primary, HoldKey("mine"), h)
		}, "does not match its key"},
		{"audit log failing", func(e *env) {
			e.r.audit = func(audit.Event) error { return errors.New("disk full") }
		}, "the audit log cannot be written"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, fsPair(t), time.Hour, time.Hour)
			key := e.put(seg{source: "cam-1", start: t0, dur: time.Minute}, both...)
			c.setup(e)
			e.clock.Set(t0.Add(10 * time.Hour))
			if err := e.pass(); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("pass: %v, want an error mentioning %q", err, c.want)
			}
			e.wantKeys(Primary, key)
			e.wantKeys(Offsite, key)
			if st := e.r.Stats(); st.Sites[Primary].LastError == "" || st.Sites[Offsite].LastError == "" {
				t.Fatalf("stats %+v: want the error recorded at both sites", st)
			}
		})
	}
}

func TestWriteMetrics(t *testing.T) {
	e := newEnv(t, fsPair(t), time.Hour, 0)
	e.put(seg{source: "cam-1", start: t0, dur: time.Minute}, both...)
	e.hold(HoldRequest{Source: "door-*", From: t0, Reason: "metrics"}, "alice")
	e.clock.Set(t0.Add(2 * time.Hour))
	e.mustPass()
	var b bytes.Buffer
	m := metrics.NewWriter(&b)
	e.r.WriteMetrics(m)
	if err := m.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`fv_retention_seconds{role="primary",store="primary"} 3600`,
		`fv_retention_seconds{role="offsite",store="offsite"} 0`,
		`fv_retention_deleted_objects_total{role="primary",store="primary"} 2`,
		`fv_retention_up{role="primary",store="primary"} 1`,
		`fv_retention_up{role="offsite",store="offsite"} 0`,
		`fv_retention_holds 1`,
		`fv_retention_holds_pending 0`,
		"# TYPE fv_retention_deleted_bytes_total counter",
		"# TYPE fv_retention_held_objects gauge",
		"# TYPE fv_retention_unverified_objects gauge",
		"# TYPE fv_retention_last_pass_timestamp_seconds gauge",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("metrics lack %q:\n%s", want, b.String())
		}
	}
}

// pausing is a store whose first listing of recordings waits until
// proceed is closed, having closed listing.
type pausing struct {
	store.Store
	once             sync.Once
	listing, proceed chan struct{}
}

func (p *pausing) List(ctx context.Context, prefix string, fn func(store.Info) error) error {
	if prefix == recPrefix {
		p.once.Do(func() {
			close(p.listing)
			<-p.proceed
		})
	}
	return p.Store.List(ctx, prefix, fn)
}

// TestHoldDuringPass: a hold created here while a pass runs, after the pass
// read the holds, protects from that pass.
func TestHoldDuringPass(t *testing.T) {
	pair := fsPair(t)
	ps := &pausing{Store: pair[Primary], listing: make(chan struct{}), proceed: make(chan struct{})}
	e := newEnv(t, [2]store.Store{ps, pair[Offsite]}, time.Hour, 24*time.Hour)
	e.put(seg{source: "cam-1", start: t0, dur: time.Minute}, both...)
	kept := e.put(seg{source: "cam-1", start: t0.Add(time.Minute), dur: time.Minute}, both...)
	e.clock.Set(t0.Add(3 * time.Hour))
	done := make(chan error, 1)
	go func() { done <- e.pass() }()
	<-ps.listing
	e.hold(HoldRequest{Source: "cam-1", From: t0.Add(time.Minute), To: t0.Add(2 * time.Minute), Reason: "late"}, "alice")
	close(ps.proceed)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	e.wantKeys(Primary, kept)
}
