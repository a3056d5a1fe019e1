package sfu

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"fieldvideo/internal/audit"
	"fieldvideo/internal/auth"
	"fieldvideo/internal/conf"
	rooms "fieldvideo/internal/session"
	"fieldvideo/internal/testkit"
	"fieldvideo/internal/whip"
	"fieldvideo/testbench/synth"
)

// mintFor mints a token for subject sub.
func (h *harness) mintFor(sub string, role auth.Role, pub, view []string, ttl time.Duration) string {
	h.t.Helper()
	c := auth.Claims{Role: role, Publish: pub, View: view}
	c.RegisteredClaims = jwt.RegisteredClaims{Subject: sub}
	tok, err := auth.Mint(testSecret, c, ttl, time.Now())
	if err != nil {
		h.t.Fatal(err)
	}
	return tok
}

// sessionsOf counts the server's sessions of kind for source.
func (h *harness) sessionsOf(kind, source string) int {
	h.srv.mu.Lock()
	defer h.srv.mu.Unlock()
	n := 0
	for _, ss := range h.srv.sessions {
		if ss.kind == kind && ss.source == source {
			n++
		}
	}
	return n
}

// request sends a request with a bearer token (none when empty) and a body
// of type ctype, and returns the answer.
func (h *harness) request(method, url, token, ctype, body string) (int, string, http.Header) {
	h.t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b), res.Header
}

func (h *harness) do(method, url, token string) (int, string, http.Header) {
	ctype := ""
	if method == http.MethodPatch {
		ctype = whip.ContentTypeTrickle
	}
	return h.request(method, url, token, ctype, "")
}

// Only a session's owner (or an operator) may PATCH or DELETE it, and the
// audit log names the real actor of every request.
func TestSessionOwnership(t *testing.T) {
	h := startSFU(t)
	h.publish("cam1", synth.Params{})
	alice := h.mintFor("alice", auth.RoleWall, nil, []string{"*"}, time.Hour)
	bob := h.mintFor("bob", auth.RoleWall, nil, []string{"*"}, time.Hour)
	op := h.mintFor("op", auth.RoleOperator, nil, []string{"*"}, time.Hour)
	v := h.view("cam1", alice, &received{})
	url := v.Resource().URL
	for _, tok := range []string{bob, ""} {
		if code, body, _ := h.do(http.MethodDelete, url, tok); code == http.StatusOK || strings.Contains(body, "alice") {
			t.Fatalf("DELETE of alice's session with another token: %d %q; want refused without naming its owner", code, body)
		}
		if code, _, _ := h.do(http.MethodPatch, url, tok); code == http.StatusNoContent {
			t.Fatal("PATCH of alice's session with another token succeeded")
		}
	}
	if got := h.sessionsOf("whep", "cam1"); got != 1 {
		t.Fatalf("%d sessions after refused DELETEs", got)
	}
	if code, body, _ := h.do(http.MethodPatch, url, alice); code != http.StatusNoContent {
		t.Fatalf("owner's PATCH: %d %q", code, body)
	}
	if code, body, _ := h.do(http.MethodDelete, url, op); code != http.StatusOK {
		t.Fatalf("operator's DELETE: %d %q", code, body)
	}
	h.waitFor("the session to end", func() bool { return h.sessionsOf("whep", "cam1") == 0 })
	h.getJSON("/v1/sources", bob, nil)

	lines := auditLines(t, h.audit)
	var deniedBob, endedByOp, sourcesBob bool
	for _, e := range lines {
		switch {
		case e["actor"] == "bob" && e["method"] == "DELETE" && e["result"] == "denied":
			deniedBob = true
		case e["actor"] == "op" && e["method"] == "DELETE" && e["result"] == "ok":
			endedByOp = true
		case e["actor"] == "bob" && e["path"] == "/v1/sources" && e["method"] == "GET":
			sourcesBob = true
		}
	}
	if !deniedBob || !endedByOp || !sourcesBob {
		t.Fatalf("audit: bob's refused DELETE %v, operator's DELETE %v, bob's GET /v1/sources %v", deniedBob, endedByOp, sourcesBob)
	}
}

// A session ends when its token expires, and at once when its subject is
// revoked; a PATCH with a newer token of the owner keeps it.
func TestSessionsLiveByTheirToken(t *testing.T) {
	h := startSFU(t)
	rl, err := auth.OpenRevocations("", nil)
	if err != nil {
		t.Fatal(err)
	}
	h.srv.p.Verifier.UseRevocations(rl)
	h.publish("cam1", synth.Params{})

	short := h.mintFor("kiosk", auth.RoleWall, nil, []string{"cam1"}, 2*time.Second)
	h.view("cam1", short, &received{})
	start := time.Now()
	testkit.WaitFor(t, 2*time.Second+auth.BindGrace+5*time.Second, "the viewer's session to end with its token", func() bool {
		return h.sessionsOf("whep", "cam1") == 0
	})
	t.Logf("session ended %s after a 2 s token was minted", time.Since(start).Round(100*time.Millisecond))

	phone := h.mintFor("phone-7", auth.RoleWall, nil, []string{"cam1"}, time.Hour)
	h.view("cam1", phone, &received{})
	if h.sessionsOf("whep", "cam1") != 1 {
		t.Fatal("no session")
	}
	body := `{"subject":"phone-7","reason":"phone lost"}`
	if code, _, _ := h.postJSON("/v1/revocations", phone, body); code != http.StatusForbidden {
		t.Fatalf("a wall token revoking: %d", code)
	}
	start = time.Now()
	op := h.mintFor("op", auth.RoleOperator, nil, nil, time.Hour)
	if code, resp, _ := h.postJSON("/v1/revocations", op, body); code != http.StatusCreated || !strings.Contains(resp, "phone lost") {
		t.Fatalf("revoke: %d %q", code, resp)
	}
	testkit.WaitFor(t, time.Second, "the revoked subject's session to end", func() bool { return h.sessionsOf("whep", "cam1") == 0 })
	t.Logf("revoked session ended after %s", time.Since(start).Round(time.Millisecond))
	if code, _, _ := h.post("/cam1/whep", phone, validOffer(t, h)); code != http.StatusUnauthorized {
		t.Fatalf("a revoked token opening a session: %d", code)
	}
	if len(rl.List()) != 1 {
		t.Fatalf("revocation list %+v", rl.List())
	}

	// An operator acting on someone's session (a PATCH with a token that
	// lives longer) does not keep it alive: revoking its owner still ends it.
	lost := h.mintFor("phone-8", auth.RoleWall, nil, []string{"cam1"}, 10*time.Minute)
	v8 := h.view("cam1", lost, &received{})
	if code, body, _ := h.do(http.MethodPatch, v8.Resource().URL, op); code != http.StatusNoContent {
		t.Fatalf("operator's PATCH: %d %q", code, body)
	}
	if code, resp, _ := h.postJSON("/v1/revocations", op, `{"subject":"phone-8","reason":"phone lost"}`); code != http.StatusCreated {
		t.Fatalf("revoke phone-8: %d %q", code, resp)
	}
	testkit.WaitFor(t, 2*time.Second, "the session an operator PATCHed to end with its owner's revocation", func() bool { return h.sessionsOf("whep", "cam1") == 0 })

	// Signing out ends that token's session at once; the same subject's other token
	// (another tab) keeps its session.
	tab, other := h.mintFor("eoc-4", auth.RoleWall, nil, []string{"cam1"}, time.Hour), h.mintFor("eoc-4", auth.RoleWall, nil, []string{"cam1"}, time.Hour)
	h.view("cam1", tab, &received{})
	h.view("cam1", other, &received{})
	if n := h.sessionsOf("whep", "cam1"); n != 2 {
		t.Fatalf("%d sessions, want 2", n)
	}
	if code, resp, _ := h.postJSON("/v1/signout", tab, ""); code != http.StatusOK || !strings.Contains(resp, "signed out") {
		t.Fatalf("sign out: %d %q", code, resp)
	}
	testkit.WaitFor(t, time.Second, "the signed-out tab's session to end", func() bool { return h.sessionsOf("whep", "cam1") == 1 })
	if code, _, _ := h.post("/cam1/whep", tab, validOffer(t, h)); code != http.StatusUnauthorized {
		t.Fatalf("a signed-out token opening a session: %d", code)
	}
	h.view("cam1", other, &received{})
	if n := h.sessionsOf("whep", "cam1"); n != 2 {
		t.Fatalf("the other tab's token: %d sessions, want 2", n)
	}

	// Refreshed by a PATCH with a newer token of the same owner.
	first := h.mintFor("wall-2", auth.RoleWall, nil, []string{"cam1"}, 2*time.Second)
	v := h.view("cam1", first, &received{})
	newer := h.mintFor("wall-2", auth.RoleWall, nil, []string{"cam1"}, time.Hour)
	if code, body, _ := h.do(http.MethodPatch, v.Resource().URL, newer); code != http.StatusNoContent {
		t.Fatalf("refresh PATCH: %d %q", code, body)
	}
	ended := make(chan struct{})
	go func() {
		testkit.WaitFor(t, 2*time.Second+auth.BindGrace+time.Second, "never", func() bool { return h.sessionsOf("whep", "cam1") == 0 })
		close(ended)
	}()
	select {
	case <-ended:
		t.Fatal("a session refreshed with a newer token ended with the old one")
	case <-time.After(2*time.Second + auth.BindGrace + 500*time.Millisecond):
	}
}

// One person's token cannot grow the source list without end: past
// maxOfflinePerPerson offline sources of a responder, the oldest leave the
// list; a camera token's sources all stay.
func TestOfflineSourcesOfAPersonAreBounded(t *testing.T) {
	h := startSFU(t)
	offer := validPublishOffer(t, h)
	flood := func(tok, prefix string, n int) {
		for i := range n {
			code, body, hdr := h.post(fmt.Sprintf("/%s-%02d/whip", prefix, i), tok, offer)
			if code != http.StatusCreated {
				t.Fatalf("publish %s-%02d: %d %q", prefix, i, code, body)
			}
			if code, body, _ := h.do(http.MethodDelete, h.base+hdr.Get("Location"), tok); code != http.StatusOK && code != http.StatusNoContent {
				t.Fatalf("end %s-%02d: %d %q", prefix, i, code, body)
			}
		}
	}
	count := func(prefix string) (n int, oldest string) {
		for _, s := range h.srv.Sources() {
			if strings.HasPrefix(s.Name, prefix+"-") {
				if n++; oldest == "" || s.Name < oldest {
					oldest = s.Name
				}
			}
		}
		return n, oldest
	}
	const extra = 8
	flood(h.mintFor("resp-1", auth.RoleResponder, []string{"report-*"}, nil, time.Hour), "report", maxOfflinePerPerson+extra)
	testkit.WaitFor(t, 5*time.Second, "the responder's sources to be pruned", func() bool { n, _ := count("report"); return n == maxOfflinePerPerson })
	if _, oldest := count("report"); oldest != fmt.Sprintf("report-%02d", extra) {
		t.Errorf("the oldest listed report is %s; the %d oldest should have left", oldest, extra)
	}
	flood(h.mintFor("ingest", auth.RoleCamera, []string{"cam*"}, nil, time.Hour), "cam", maxOfflinePerPerson+extra)
	if n, _ := count("cam"); n != maxOfflinePerPerson+extra {
		t.Errorf("%d of %d offline camera sources listed; cameras are kept", n, maxOfflinePerPerson+extra)
	}
}

// A publisher that comes back (ingest restarted without ending its session)
// replaces its own stale session at once; another publisher is refused.
func TestRepublishReplacesStaleSession(t *testing.T) {
	h := startSFU(t)
	offer := validPublishOffer(t, h)
	ingest1 := h.mintFor("ingest", auth.RoleCamera, []string{"cam1"}, nil, time.Hour)
	code, body, _ := h.post("/cam1/whip", ingest1, offer)
	if code != http.StatusCreated {
		t.Fatalf("first publish: %d %q", code, body)
	}
	// The publisher crashed: no DELETE. It restarts with a new token.
	ingest2 := h.mintFor("ingest", auth.RoleCamera, []string{"cam1"}, nil, time.Hour)
	start := time.Now()
	if code, body, _ := h.post("/cam1/whip", ingest2, validPublishOffer(t, h)); code != http.StatusCreated {
		t.Fatalf("re-publish by the same publisher: %d %q", code, body)
	}
	t.Logf("re-publish accepted after %s", time.Since(start).Round(time.Millisecond))
	if n := h.sessionsOf("whip", "cam1"); n != 1 {
		t.Fatalf("%d WHIP sessions of cam1 after the re-publish; the stale one should be gone", n)
	}
	other := h.mintFor("someone-else", auth.RoleCamera, []string{"cam1"}, nil, time.Hour)
	if code, body, _ := h.post("/cam1/whip", other, validPublishOffer(t, h)); code != http.StatusConflict || !strings.Contains(body, "ingest") {
		t.Fatalf("another publisher: %d %q", code, body)
	}
}

// Sessions that never connect are bounded per address and closed after
// the connect timeout.
func TestHalfOpenSessionsAreBounded(t *testing.T) {
	h := startSFUWith(t, func(c *conf.SFU) {
		c.WebRTC.MaxPendingPerAddress = 5
		c.WebRTC.MaxPendingSessions = 8
		c.WebRTC.MaxPendingPerSubject = 8
		c.WebRTC.ConnectTimeout = 2 * time.Second
	})
	h.publish("cam1", synth.Params{})
	tok := h.token(auth.RoleWall, nil, []string{"*"})
	offer := validOffer(t, h)
	created, refused := 0, 0
	var retry string
	for range 12 {
		code, _, hdr := h.post("/cam1/whep", tok, offer)
		switch code {
		case http.StatusCreated:
			created++
		case http.StatusServiceUnavailable:
			refused++
			retry = hdr.Get("Retry-After")
		default:
			t.Fatalf("half-open WHEP: %d", code)
		}
	}
	if created != 5 || refused != 7 || retry == "" {
		t.Fatalf("12 half-open sessions from one address: %d created, %d refused (Retry-After %q); want 5 and 7", created, refused, retry)
	}
	testkit.WaitFor(t, 10*time.Second, "the half-open sessions to time out", func() bool { return h.sessionsOf("whep", "cam1") == 0 })
	h.view("cam1", tok, &received{})
}

// One token's holder cannot take every place among the sessions waiting to
// connect, from however many addresses: past max_pending_per_subject its
// offers are refused, and another holder's are not.
func TestHalfOpenSessionsPerSubject(t *testing.T) {
	h := startSFUWith(t, func(c *conf.SFU) {
		c.WebRTC.MaxPendingPerAddress = 8
		c.WebRTC.MaxPendingSessions = 8
		c.WebRTC.MaxPendingPerSubject = 3
	})
	h.publish("cam1", synth.Params{})
	offer := validOffer(t, h)
	wall := h.mintFor("wall-7", auth.RoleWall, nil, []string{"*"}, time.Hour)
	for i := range 5 {
		code, body, _ := h.post("/cam1/whep", wall, offer)
		if want := map[bool]int{true: http.StatusCreated, false: http.StatusServiceUnavailable}[i < 3]; code != want {
			t.Fatalf("half-open WHEP %d of one holder: %d %q; want %d", i+1, code, body, want)
		}
		if i >= 3 && !strings.Contains(body, "max_pending_per_subject") {
			t.Fatalf("the refusal: %q", body)
		}
	}
	other := h.mintFor("wall-8", auth.RoleWall, nil, []string{"*"}, time.Hour)
	if code, body, _ := h.post("/cam1/whep", other, offer); code != http.StatusCreated {
		t.Fatalf("another holder's WHEP: %d %q", code, body)
	}
}

func (h *harness) postJSON(path, token, body string) (int, string, http.Header) {
	return h.request(http.MethodPost, h.base+path, token, "application/json", body)
}

func (h *harness) post(path, token, body string) (int, string, http.Header) {
	return h.request(http.MethodPost, h.base+path, token, whip.ContentTypeSDP, body)
}

// validPublishOffer returns a WHIP offer (H.264 video) from a pion peer,
// without candidates: the session it opens never connects.
func validPublishOffer(t *testing.T, h *harness) string {
	t.Helper()
	pc, err := h.api.NewPeerConnection(webrtcConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if _, err := pc.AddTransceiverFromKind(kindOf("video"), sendonly()); err != nil {
		t.Fatal(err)
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	return offer.SDP
}

func auditLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err == nil {
			out = append(out, m)
		}
	}
	return out
}

// When the audit log cannot be written, access is refused with the reason
// and nothing is left open; it resumes when the disk has room.
func TestFullAuditDiskRefusesAccess(t *testing.T) {
	disk := testkit.SmallDisk(t, 256<<10)
	h := startSFUWith(t, func(c *conf.SFU) { c.Audit.File = filepath.Join(disk, "audit.log") })
	h.publish("cam1", synth.Params{})
	tok := h.mintFor("alice", auth.RoleWall, nil, []string{"*"}, time.Hour)
	filler := testkit.FillDisk(t, disk)
	for i := 0; h.srv.p.Audit.Write(audit.Event{Actor: "filling the last page"}) == nil; i++ {
		if i > 1000 {
			t.Fatal("the audit log still takes events on a full disk")
		}
	}
	code, body, _ := h.post("/cam1/whep", tok, validOffer(t, h))
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "no space left on device") || strings.Contains(body, "v=0") {
		t.Fatalf("WHEP with a full audit disk: %d %q", code, body)
	}
	if code := h.getJSON("/v1/sources", tok, nil); code != http.StatusServiceUnavailable {
		t.Fatalf("GET /v1/sources with a full audit disk: %d", code)
	}
	testkit.WaitFor(t, 5*time.Second, "the refused session closed", func() bool { return h.sessionsOf("whep", "cam1") == 0 })
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	h.view("cam1", tok, &received{})
}

// A publisher that falls silent is taken over by another publisher of the
// source once its connection is disconnected, without waiting for it to
// fail; while it is connected, another is refused.
func TestSilentPublisherIsTakenOver(t *testing.T) {
	// site A's ingest dies: nothing more on its media link, no DELETE, no new offer.
	t.Run("dead", func(t *testing.T) {
		h, link, cutHTTP := startSiteA(t)
		link.HoldUp(time.Minute)
		cutHTTP()
		cut := time.Now()
		takeOver(t, h)
		t.Logf("a dead publisher taken over %s after its link went dead", time.Since(cut).Round(100*time.Millisecond))
		var reasons []string
		for _, e := range h.auditLines() {
			if e.Action == "unpublish" && e.Actor == "ingest@site-a" {
				reasons = append(reasons, e.Reason)
			}
		}
		if len(reasons) != 1 || !strings.Contains(reasons[0], "fell silent") || !strings.Contains(reasons[0], "ingest@site-b") {
			t.Errorf("site A's session ended with %q; want one end, taken over by site B after falling silent", reasons)
		}
	})
	// site A's media cannot get through but its offers still do: it asks again and
	// again, and its sessions that never connect do not hold the source either.
	t.Run("unreachable but asking", func(t *testing.T) {
		h, link, _ := startSiteA(t)
		link.HoldUp(time.Minute)
		takeOver(t, h)
		took := len(h.auditLines())
		testkit.WaitFor(t, 30*time.Second, "site A asking again after site B took over", func() bool {
			for _, e := range h.auditLines()[took:] {
				if e.Actor == "ingest@site-a" && e.Action == "publish" {
					return true
				}
			}
			return false
		})
		if in := h.listed("cam1"); in.Publisher != "ingest@site-b" {
			t.Errorf("cam1 is published by %q after site A asked again; want site B kept it", in.Publisher)
		}
	})
}

// A person's source is theirs alone: when a responder's phone falls silent, another
// responder whose grant matches the name is still refused; the phone coming back is not.
func TestSilentPersonalSourceIsKept(t *testing.T) {
	h := startSFU(t)
	link := testkit.NewShim(t, h.srv.UDPAddr())
	const name = "report-alice-1"
	alice := h.mintFor("alice", auth.RoleResponder, []string{"report-*"}, nil, time.Hour)
	h.publishWith(name, synth.Params{}, func(p *whip.PublisherParams) {
		p.Client = &whip.Client{Token: alice}
		p.LocalSDP, p.RemoteSDP = link.ClientSDP, rooms.RewriteCandidates(h.srv.UDPAddr(), link.Addr())
	})
	link.HoldUp(time.Minute)
	testkit.WaitFor(t, 20*time.Second, "alice's publisher to fall silent", func() bool {
		h.srv.mu.Lock()
		defer h.srv.mu.Unlock()
		src := h.srv.sources[name]
		return src != nil && src.live() && src.pub.Load().silent()
	})
	mallory := h.mintFor("mallory", auth.RoleResponder, []string{"report-*"}, nil, time.Hour)
	if code, body, _ := h.post("/"+name+"/whip", mallory, validPublishOffer(t, h)); code != http.StatusConflict || !strings.Contains(body, "alice") {
		t.Fatalf("another responder offering for alice's silent report: %d %q; want 409 naming alice", code, body)
	}
	ingest := h.mintFor("ingest@site-a", auth.RoleCamera, []string{"*"}, nil, time.Hour)
	if code, body, _ := h.post("/"+name+"/whip", ingest, validPublishOffer(t, h)); code != http.StatusConflict {
		t.Fatalf("an ingest offering for alice's silent report: %d %q; want 409", code, body)
	}
	again := h.mintFor("alice", auth.RoleResponder, []string{"report-*"}, nil, time.Hour)
	if code, body, _ := h.post("/"+name+"/whip", again, validPublishOffer(t, h)); code != http.StatusCreated {
		t.Fatalf("alice coming back: %d %q; want 201", code, body)
	}
}

// startSiteA has site A's ingest publish cam1 through a shim (its media
// link) and an HTTP client cutHTTP ends, and checks that another publisher
// is refused meanwhile.
func startSiteA(t *testing.T) (*harness, *testkit.Shim, func()) {
	h := startSFU(t)
	link := testkit.NewShim(t, h.srv.UDPAddr())
	var dead atomic.Bool
	hc := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if dead.Load() {
			return nil, errors.New("site A is gone")
		}
		return http.DefaultTransport.RoundTrip(r)
	})}
	a := h.mintFor("ingest@site-a", auth.RoleCamera, []string{"cam1"}, nil, time.Hour)
	h.publishWith("cam1", synth.Params{}, func(p *whip.PublisherParams) {
		p.Client = &whip.Client{Token: a, HTTP: hc}
		p.LocalSDP, p.RemoteSDP = link.ClientSDP, rooms.RewriteCandidates(h.srv.UDPAddr(), link.Addr())
	})
	if code, body, _ := h.post("/cam1/whip", siteB(h), validPublishOffer(t, h)); code != http.StatusConflict {
		t.Fatalf("another publisher while the first is connected: %d %q; want 409", code, body)
	}
	return h, link, func() { dead.Store(true) }
}

func siteB(h *harness) string {
	return h.mintFor("ingest@site-b", auth.RoleCamera, []string{"cam1"}, nil, time.Hour)
}

// takeOver starts site B's ingest publishing cam1 (retrying while
// refused) and waits until it is cam1's publisher.
func takeOver(t *testing.T, h *harness) {
	t.Helper()
	b := siteB(h)
	h.publishWith("cam1", synth.Params{}, func(p *whip.PublisherParams) { p.Client = &whip.Client{Token: b} })
	testkit.WaitFor(t, 30*time.Second, "site B taking cam1 over", func() bool { return h.listed("cam1").Publisher == "ingest@site-b" })
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
