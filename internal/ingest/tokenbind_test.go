package ingest

import (
	"bufio"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/conn"
	"github.com/bluenviron/gortsplib/v5/pkg/headers"

	"fieldvideo/internal/audit"
	"fieldvideo/internal/auth"
	"fieldvideo/internal/testkit"
)

// mintFor signs a token of subject that expires at exp (JWT expiries are
// whole seconds, so it is rounded down).
func mintFor(t *testing.T, subject string, c auth.Claims, exp time.Time) (string, *auth.Claims) {
	t.Helper()
	c.Subject = subject
	if c.Role == "" {
		c.Role = auth.RoleCamera
	}
	issued := exp.Add(-time.Hour)
	tok, err := auth.Mint(testSecret, c, time.Hour, issued)
	if err != nil {
		t.Fatal(err)
	}
	v, err := auth.NewVerifier(testSecret, func() time.Time { return issued })
	if err != nil {
		t.Fatal(err)
	}
	claims, err := v.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	return tok, claims
}

// waitAuditWhere waits for an RTSP audit event that match accepts.
func (e *testEnv) waitAuditWhere(t *testing.T, what string, match func(audit.Event) bool) audit.Event {
	t.Helper()
	var got audit.Event
	testkit.WaitFor(t, waitTimeout, "audit event: "+what, func() bool {
		for _, ev := range e.auditEvents(t) {
			if ev.Via == "rtsp" && match(ev) {
				got = ev
				return true
			}
		}
		return false
	})
	return got
}

// endedWithin waits for a session end on ended and fails unless it comes
// within [earliest, latest].
func endedWithin(t *testing.T, what string, ended <-chan struct{}, earliest, latest time.Time) time.Time {
	t.Helper()
	select {
	case <-ended:
	case <-time.After(time.Until(latest) + waitTimeout):
		t.Fatalf("%s: still connected %s after it should have been disconnected", what, waitTimeout)
	}
	at := time.Now()
	if at.Before(earliest) || at.After(latest) {
		t.Fatalf("%s was disconnected at %s, want between %s and %s",
			what, at.Format("15:04:05.000"), earliest.Format("15:04:05.000"), latest.Format("15:04:05.000"))
	}
	return at
}

func processEnded(p *testkit.Process) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		<-p.Done()
		close(ch)
	}()
	return ch
}

func playerEnded(p *player) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		<-p.ended
		close(ch)
	}()
	return ch
}

// TestTokenExpiryEndsSessions: a pushing ffmpeg and a playing client whose
// 3 s tokens expire are disconnected by the server BindGrace after the
// expiry, and the ends are audited with the reason.
func TestTokenExpiryEndsSessions(t *testing.T) {
	testkit.RequireBinary(t, testkit.FFmpegPath)
	env := newTestServer(t, nil)
	exp := time.Now().Add(3 * time.Second)
	pubTok, pubClaims := mintFor(t, "phone", auth.Claims{Publish: []string{"truck"}}, exp)
	viewTok, viewClaims := mintFor(t, "wall", auth.Claims{Role: auth.RoleWall, View: []string{"truck"}}, exp)
	// A player of a token that stays valid, for contrast.
	longTok := mint(t, testSecret, auth.Claims{Role: auth.RoleWall, View: []string{"truck"}})

	ff := testkit.StartPush(t, t.Context(), testkit.PushParams{URL: env.url(pubTok, "truck"), Audio: testkit.AudioOpus})
	env.waitState(t, "truck", StateLive)
	p, err := play(t, env.basicURL(viewTok, "truck"))
	if err != nil {
		t.Fatal(err)
	}
	long, err := play(t, env.basicURL(longTok, "truck"))
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, waitTimeout, "video on both players", func() bool { return p.count("H264") > 0 && long.count("H264") > 0 })

	pubEnd := pubClaims.ExpiresAt.Add(auth.BindGrace)
	pubAt := endedWithin(t, "the publisher", processEnded(ff), pubEnd.Add(-100*time.Millisecond), pubEnd.Add(time.Second))
	viewEnd := viewClaims.ExpiresAt.Add(auth.BindGrace)
	viewAt := endedWithin(t, "the player", playerEnded(p), viewEnd.Add(-100*time.Millisecond), viewEnd.Add(time.Second))
	t.Logf("publisher disconnected %s and player %s after their tokens expired (BindGrace %s)",
		pubAt.Sub(pubClaims.ExpiresAt.Time).Round(time.Millisecond), viewAt.Sub(viewClaims.ExpiresAt.Time).Round(time.Millisecond), auth.BindGrace)

	env.waitAuditWhere(t, "unpublish by phone, token expired", func(ev audit.Event) bool {
		return ev.Action == actionUnpublish && ev.Actor == "phone" && strings.Contains(ev.Reason, "expired")
	})
	env.waitAuditWhere(t, "stop by wall, token expired", func(ev audit.Event) bool {
		return ev.Action == actionStop && ev.Actor == "wall" && strings.Contains(ev.Reason, "expired")
	})
	env.waitState(t, "truck", StateOffline)
	select {
	case err := <-long.ended:
		t.Fatalf("the player with a valid token was disconnected too: %v", err)
	default:
	}
}

// TestRevocationEndsSessions: revoking a subject ends its publish and play
// sessions within a second; another subject's player stays.
func TestRevocationEndsSessions(t *testing.T) {
	testkit.RequireBinary(t, testkit.FFmpegPath)
	rev, err := auth.OpenRevocations(filepath.Join(t.TempDir(), "revoked.json"), nil)
	if err != nil {
		t.Fatal(err)
	}
	env := newTestServer(t, func(p *Params) { p.Verifier.UseRevocations(rev) })
	far := time.Now().Add(time.Hour)
	lost, _ := mintFor(t, "lost-phone", auth.Claims{Publish: []string{"unit7"}, View: []string{"unit7"}}, far)
	wallTok, _ := mintFor(t, "wall", auth.Claims{Role: auth.RoleWall, View: []string{"unit7"}}, far)

	ff := testkit.StartPush(t, t.Context(), testkit.PushParams{URL: env.url(lost, "unit7"), Audio: testkit.AudioOpus})
	env.waitState(t, "unit7", StateLive)
	p, err := play(t, env.url(lost, "unit7"))
	if err != nil {
		t.Fatal(err)
	}
	wall, err := play(t, env.basicURL(wallTok, "unit7"))
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, waitTimeout, "video on both players", func() bool { return p.count("H264") > 0 && wall.count("H264") > 0 })

	at := time.Now()
	if _, err := rev.Add(auth.Revocation{Subject: "lost-phone", By: "duty-officer", Reason: "phone lost"}); err != nil {
		t.Fatal(err)
	}
	pubAt := endedWithin(t, "the revoked publisher", processEnded(ff), at, at.Add(time.Second))
	playAt := endedWithin(t, "the revoked player", playerEnded(p), at, at.Add(time.Second))
	t.Logf("revoked publisher disconnected after %s, player after %s", pubAt.Sub(at).Round(time.Millisecond), playAt.Sub(at).Round(time.Millisecond))
	for _, action := range []string{actionUnpublish, actionStop} {
		env.waitAuditWhere(t, action+" of lost-phone, revoked", func(ev audit.Event) bool {
			return ev.Action == action && ev.Actor == "lost-phone" && strings.Contains(ev.Reason, "revoked") && strings.Contains(ev.Reason, "duty-officer")
		})
	}
	select {
	case err := <-wall.ended:
		t.Fatalf("another subject's player was disconnected: %v", err)
	default:
	}
	if _, err := play(t, env.url(lost, "unit7")); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("play with the revoked token: %v, want 401", err)
	}
}

// rawPlayer plays a source over RTSP/TCP request by request, so that a test
// can send keepalives with the token it chooses.
type rawPlayer struct {
	t       *testing.T
	host    string
	nc      net.Conn
	c       *conn.Conn
	cseq    int
	session string
	base    string // Content-Base of the DESCRIBE answer

	// Once PLAY is answered, a goroutine reads: it counts the media frames
	// and passes answers on res.
	reading bool
	frames  atomic.Int64
	res     chan *base.Response
	ended   chan struct{}
	once    sync.Once
}

func dialRawPlayer(t *testing.T, host string) *rawPlayer {
	t.Helper()
	nc, err := net.DialTimeout("tcp", host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawPlayer{t: t, host: host, nc: nc, c: conn.NewConn(bufio.NewReader(nc), nc),
		res: make(chan *base.Response, 4), ended: make(chan struct{})}
}

// do sends a request and returns the answer; after PLAY, answers come
// through the reading goroutine.
func (r *rawPlayer) do(method base.Method, rawURL string, hdr base.Header) *base.Response {
	r.t.Helper()
	u, err := base.ParseURL(rawURL)
	if err != nil {
		r.t.Fatal(err)
	}
	r.cseq++
	if hdr == nil {
		hdr = base.Header{}
	}
	hdr["CSeq"] = base.HeaderValue{strconv.Itoa(r.cseq)}
	if r.session != "" {
		hdr["Session"] = base.HeaderValue{r.session}
	}
	if err := r.c.WriteRequest(&base.Request{Method: method, URL: u, Header: hdr}); err != nil {
		r.t.Fatalf("%s: %v", method, err)
	}
	if r.reading {
		select {
		case res := <-r.res:
			return res
		case <-r.ended:
			r.t.Fatalf("%s: the server closed the connection", method)
		case <-time.After(waitTimeout):
			r.t.Fatalf("%s: no answer", method)
		}
	}
	res, err := r.c.ReadResponse()
	if err != nil {
		r.t.Fatalf("%s: %v", method, err)
	}
	return res
}

// play sends DESCRIBE (with the token query), SETUP of the first track and
// PLAY, then reads media in the background.
func (r *rawPlayer) play(source, token string) {
	r.t.Helper()
	res := r.do(base.Describe, "rtsp://"+r.host+"/"+source+"?token="+token, nil)
	if res.StatusCode != base.StatusOK {
		r.t.Fatalf("DESCRIBE: %d %s", res.StatusCode, res.StatusMessage)
	}
	r.base = res.Header["Content-Base"][0]
	res = r.do(base.Setup, r.base+"trackID=0", base.Header{"Transport": headers.Transport{
		Protocol: headers.TransportProtocolTCP, Delivery: new(headers.TransportDeliveryUnicast),
		Mode: new(headers.TransportModePlay), InterleavedIDs: &[2]int{0, 1},
	}.Marshal()})
	if res.StatusCode != base.StatusOK {
		r.t.Fatalf("SETUP: %d %s", res.StatusCode, res.StatusMessage)
	}
	var sx headers.Session
	if err := sx.Unmarshal(res.Header["Session"]); err != nil {
		r.t.Fatal(err)
	}
	r.session = sx.Session
	res = r.do(base.Play, r.base, nil)
	if res.StatusCode != base.StatusOK {
		r.t.Fatalf("PLAY: %d %s", res.StatusCode, res.StatusMessage)
	}
	r.reading = true
	go func() {
		defer r.once.Do(func() { close(r.ended) })
		for {
			what, err := r.c.Read()
			if err != nil {
				return
			}
			switch what := what.(type) {
			case *base.InterleavedFrame:
				r.frames.Add(1)
			case *base.Response:
				r.res <- what
			}
		}
	}()
}

// TestKeepaliveRenewsToken: a keepalive that carries a newer token of the
// same subject, granting the same access, moves the session to it; one of
// another subject or grant changes nothing, and the session ends with its
// first token.
func TestKeepaliveRenewsToken(t *testing.T) {
	testkit.RequireBinary(t, testkit.FFmpegPath)
	env := newTestServer(t, nil)
	pub := mint(t, testSecret, auth.Claims{Publish: []string{"cam"}})
	testkit.StartPush(t, t.Context(), testkit.PushParams{URL: env.url(pub, "cam")})
	env.waitState(t, "cam", StateLive)
	far := time.Now().Add(time.Hour)
	cases := []struct {
		name    string
		subject string
		claims  auth.Claims
		basic   bool // the new token as the Basic password, else ?token=
		renewed bool
	}{
		{"newer token in the query", "medic", auth.Claims{View: []string{"cam"}}, false, true},
		{"newer token as password", "medic", auth.Claims{View: []string{"*"}}, true, true},
		{"another subject", "intruder", auth.Claims{View: []string{"cam"}}, false, false},
		{"no view grant", "medic", auth.Claims{Publish: []string{"cam"}}, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Past its expiry but within the verifier's leeway: bound, it
			// ends the session 1.5-2.5 s from now.
			oldTok, oldClaims := mintFor(t, "medic", auth.Claims{View: []string{"cam"}}, time.Now().Add(-2500*time.Millisecond))
			newTok, _ := mintFor(t, tc.subject, tc.claims, far)
			r := dialRawPlayer(t, env.host)
			r.play("cam", oldTok)
			if strings.Contains(r.base, "?") || strings.Contains(r.base, "token") {
				t.Fatalf("Content-Base %q carries a query", r.base)
			}
			testkit.WaitFor(t, waitTimeout, "media frames", func() bool { return r.frames.Load() > 10 })

			url, hdr := r.base+"?token="+newTok, base.Header(nil)
			if tc.basic {
				url = r.base
				hdr = base.Header{"Authorization": headers.Authorization{Method: headers.AuthMethodBasic, Username: "u", BasicPass: newTok}.Marshal()}
			}
			if res := r.do(base.GetParameter, url, hdr); res.StatusCode != base.StatusOK {
				t.Fatalf("GET_PARAMETER: %d %s", res.StatusCode, res.StatusMessage)
			}
			end := oldClaims.ExpiresAt.Add(auth.BindGrace)
			if !tc.renewed {
				endedWithin(t, "the session", r.ended, end.Add(-100*time.Millisecond), end.Add(time.Second))
				env.waitAuditWhere(t, "renewal refused", func(ev audit.Event) bool {
					return ev.Action == actionRenew && ev.Result == "denied" && ev.Actor == "medic" && ev.Method == string(base.GetParameter)
				})
				return
			}
			env.waitAuditWhere(t, "renewal", func(ev audit.Event) bool {
				return ev.Action == actionRenew && ev.Result == "ok" && ev.Actor == "medic"
			})
			select {
			case <-r.ended:
				t.Fatal("the session ended although its token was renewed")
			case <-time.After(time.Until(end.Add(time.Second))):
			}
			n := r.frames.Load()
			testkit.WaitFor(t, waitTimeout, "media past the first token's end", func() bool { return r.frames.Load() > n+10 })
		})
	}
}
