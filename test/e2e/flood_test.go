package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"fieldvideo/internal/audit"
	"fieldvideo/internal/auth"
	"fieldvideo/internal/node"
)

// TestConnectionFloodLeavesRoomForTokens fills the SFU's HTTP port with
// connections that never send a request: newcomers still get in, each in the
// place of the oldest of them, while connections that showed a valid token (an
// API client's keep-alive connection and a joined call socket) keep theirs.
func TestConnectionFloodLeavesRoomForTokens(t *testing.T) {
	const max = 12
	env := append(commonEnv(t, "FV_SFU"), "FV_SFU_HTTP_ADDRESS=127.0.0.1:0", "FV_SFU_WEBRTC_UDP_ADDRESS=127.0.0.1:0",
		"FV_SFU_HTTP_MAX_CONNECTIONS=12", "FV_SFU_HTTP_MAX_CONNECTIONS_PER_ADDRESS=12")
	p := start(t, "sfu", env, "-config", "../../configs/sfu.yml")
	addr := p.listen["http"]
	base := "http://" + addr
	op := token(t, auth.RoleOperator, nil, []string{"*"})

	// an API client on one keep-alive connection
	api := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1}}
	defer api.CloseIdleConnections()
	get := func(reused *bool) int {
		t.Helper()
		req, _ := http.NewRequest("GET", base+"/v1/sources", nil)
		req.Header.Set("Authorization", "Bearer "+op)
		req = req.WithContext(httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
			GotConn: func(i httptrace.GotConnInfo) { *reused = i.Reused },
		}))
		resp, err := api.Do(req)
		if err != nil {
			t.Fatalf("GET /v1/sources: %v", err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	var reused bool
	if code := get(&reused); code != 200 {
		t.Fatalf("GET /v1/sources: %d", code)
	}

	// a call participant, joined
	c := auth.Claims{Role: auth.RoleOperator, View: []string{"*"}, Room: "*"}
	c.Subject = "e2e-caller"
	callTok, err := auth.Mint([]byte(secret), c, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ws, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/v1/rooms/flood/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if err := ws.WriteJSON(map[string]any{"type": "join", "id": 1, "token": callTok}); err != nil {
		t.Fatal(err)
	}
	var joined map[string]any
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	if err := ws.ReadJSON(&joined); err != nil || joined["type"] != "joined" {
		t.Fatalf("join: %v %v", joined, err)
	}

	// the flood: twice as many silent connections as the port holds, from
	// as many addresses
	var silent []net.Conn
	defer func() {
		for _, s := range silent {
			s.Close()
		}
	}()
	for i := range 2 * max {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 1, byte(1+i))}}
		s, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		silent = append(silent, s)
	}
	// each silent connection is accepted in turn; the first max-2 fill the
	// port and every later one closes the oldest of them
	closed := func(s net.Conn) bool {
		_ = s.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		_, err := s.Read(make([]byte, 1))
		return err != nil && !isTimeout(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !closed(silent[0]) {
		if time.Now().After(deadline) {
			t.Fatal("the oldest silent connection was never closed to make room")
		}
	}
	if closed(silent[len(silent)-1]) {
		t.Fatalf("the newest silent connection was closed, not the oldest\n%s", p.Output())
	}

	// a newcomer without a token is served
	fresh := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := fresh.Get(base + "/healthz")
	if err != nil {
		t.Fatalf("a newcomer on a full port: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("a newcomer on a full port: %d", resp.StatusCode)
	}
	// the API client's connection is still its own
	if code := get(&reused); code != 200 || !reused {
		t.Fatalf("the API client after the flood: status %d, same connection %v", code, reused)
	}
	// and the call socket still answers
	if err := ws.WriteJSON(map[string]any{"type": "mute", "id": 2, "track": "nothing", "muted": true}); err != nil {
		t.Fatal(err)
	}
	var answer map[string]any
	if err := ws.ReadJSON(&answer); err != nil {
		t.Fatalf("the call socket after the flood: %v", err)
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// TestFieldTokenFloodIsBounded floods the SFU's API with a responder's
// token, as a lost phone could: past its burst the requests are refused with
// 429, the audit trail grows by a summary instead of a line each, and an
// operator is served throughout.
func TestFieldTokenFloodIsBounded(t *testing.T) {
	trail := filepath.Join(t.TempDir(), "audit.log")
	env := append(commonEnv(t, "FV_SFU"), "FV_SFU_HTTP_ADDRESS=127.0.0.1:0", "FV_SFU_WEBRTC_UDP_ADDRESS=127.0.0.1:0",
		"FV_SFU_AUDIT_FILE="+trail)
	p := start(t, "sfu", env, "-config", "../../configs/sfu.yml")
	base := "http://" + p.listen["http"]
	phone := token(t, auth.RoleResponder, []string{"report-*"}, nil)
	op := token(t, auth.RoleOperator, nil, []string{"*"})
	get := func(tok string) int {
		req, _ := http.NewRequest("GET", base+"/v1/sources", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	const flood = 1500
	codes := map[int]int{}
	start := time.Now()
	for i := range flood {
		codes[get(phone)]++
		if i%100 == 0 {
			if code := get(op); code != 200 {
				t.Fatalf("the operator during the flood: %d", code)
			}
		}
	}
	elapsed := time.Since(start)
	limit := node.FieldLimits[string(auth.RoleResponder)]
	if most := limit.Burst + int(limit.Rate*elapsed.Seconds()) + 1; codes[200] > most || codes[429] == 0 || codes[200]+codes[429] != flood {
		t.Fatalf("the phone's %d requests in %s: %v; want at most %d served and the rest 429", flood, elapsed, codes, most)
	}
	_ = p.Signal(syscall.SIGTERM)
	<-p.Done()
	b, err := os.ReadFile(trail)
	if err != nil {
		t.Fatal(err)
	}
	lines, summarised := 0, 0
	for _, line := range strings.Split(string(b), "\n") {
		var ev map[string]any
		if json.Unmarshal([]byte(line), &ev) != nil || ev["actor"] != "e2e-responder" {
			continue
		}
		if ev["action"] == audit.ActionRateLimited {
			n, _ := ev["count"].(float64)
			summarised += int(n)
			continue
		}
		lines++
	}
	if lines != codes[200] || summarised != codes[429] {
		t.Fatalf("the trail has %d lines of the phone and summaries of %d refusals; want %d and %d", lines, summarised, codes[200], codes[429])
	}
}
