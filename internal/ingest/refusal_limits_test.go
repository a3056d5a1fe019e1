package ingest

import (
	"bufio"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"fieldvideo/internal/audit"
	"fieldvideo/internal/auth"
	"fieldvideo/internal/testkit"
)

// describe sends one DESCRIBE of url on a new connection and returns the
// status line of the answer; the connection is closed on return.
func describe(t *testing.T, host, url string) string {
	t.Helper()
	nc, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(waitTimeout))
	if _, err := fmt.Fprintf(nc, "DESCRIBE %s RTSP/1.0\r\nCSeq: 1\r\n\r\n", url); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(nc).ReadString('\n')
	if err != nil {
		t.Fatalf("DESCRIBE %s: %v", url, err)
	}
	return strings.TrimSpace(line)
}

// TestRTSPRefusalsRateLimited: a flood of DESCRIBEs with a bogus token or
// none, one per connection, writes a bounded burst of audit events (the
// anonymous limits of audit.Log.WriteAnonymous, which allow one address
// 10 at once, then 2 a second) and one warning, and the summary written
// after it counts the others; a refusal of a valid token is still
// written.
func TestRTSPRefusalsRateLimited(t *testing.T) {
	const (
		addrBurst, addrRate = 10, 2 // audit's anonymousAddrBurst and anonymousAddrRate
		bogus, bare         = 40, 20
	)
	logs := &lockedBuffer{}
	env := newTestServer(t, func(p *Params) {
		p.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	start := time.Now()
	for i := range bogus + bare {
		token, want := "not-a-jwt", "RTSP/1.0 401 Unauthorized - "
		if i >= bogus {
			token, want = "", "RTSP/1.0 401 Unauthorized" // a challenge; the refusal is audited when the connection closes
		}
		if got := describe(t, env.host, env.url(token, "cam")); !strings.HasPrefix(got, want) {
			t.Fatalf("DESCRIBE %d: %q, want %q", i, got, want)
		}
	}
	testkit.WaitFor(t, waitTimeout, "the server to close every connection", func() bool { return env.srv.Connections().Open == 0 })
	elapsed := time.Since(start)
	bound := addrBurst + addrRate*int(elapsed/time.Second+1)
	if bound >= bogus+bare {
		t.Fatalf("the flood took %s: too slow to tell a bound of %d events from none", elapsed, bound)
	}
	publishOnly := mint(t, testSecret, auth.Claims{Publish: []string{"cam"}})
	if got := describe(t, env.host, env.url(publishOnly, "cam")); !strings.HasPrefix(got, "RTSP/1.0 403") {
		t.Fatalf("DESCRIBE with a token that does not grant it: %q", got)
	}

	var own, held int
	testkit.WaitFor(t, waitTimeout, "the anonymous-summary to count every refusal", func() bool {
		own, held = 0, 0
		for _, ev := range env.auditEvents(t) {
			switch {
			case ev.Action == audit.ActionAnonymousSummary:
				held += ev.Count
				if ev.Method != "DESCRIBE" || ev.Path != "/cam" || ev.Remote != "127.0.0.1" {
					t.Fatalf("summary %+v: want the last DESCRIBE of /cam from 127.0.0.1", ev)
				}
			case ev.Via == "rtsp" && ev.Actor == "anonymous" && ev.Status == 401:
				own++
			}
		}
		return own+held == bogus+bare
	})
	if own > bound {
		t.Fatalf("%d refusals without a valid token in %s wrote %d audit events, want at most %d", bogus+bare, elapsed, own, bound)
	}
	found := false
	for _, ev := range env.auditEvents(t) {
		found = found || (ev.Actor == "tester" && ev.Status == 403 && ev.Method == "DESCRIBE")
	}
	if !found {
		t.Fatal("the refusal of a valid token was not written")
	}

	out := logs.String()
	warned := strings.Count(out, "status=401")
	if most := 1 + int(elapsed/anonWarnEvery); warned < 1 || warned > most {
		t.Fatalf("%d warnings for %d refusals in %s, want 1 to %d; log:\n%s", warned, bogus+bare, elapsed, most, tail(out))
	}
	if !strings.Contains(out, "refusals_without_identity_since_last_warning=1\n") || !strings.Contains(out, "status=403") {
		t.Fatalf("want the first refusal's warning, counted, and the valid token's; log:\n%s", tail(out))
	}
}
