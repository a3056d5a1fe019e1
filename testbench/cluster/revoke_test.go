package cluster

import (
	"context"
	"net/http"
	"testing"
	"time"

	"fieldvideo/internal/auth"
	"fieldvideo/internal/testkit"
)

// A token revoked on one node — a sign-out, an operator's revocation of a
// lost phone — is refused by every node of the cluster, though each keeps
// its own revocation list (as on separate hosts): by the others within
// seconds, and by a node that joins afterwards.
func TestRevocationsHoldOnEveryNode(t *testing.T) {
	b := newBench(t)
	one, two := b.startSFU("sfu-1"), b.startSFU("sfu-2")
	mint := func(subject string) string {
		c := auth.Claims{Role: auth.RoleWall, View: []string{"*"}}
		c.Subject = subject
		tok, err := auth.Mint([]byte(secret), c, time.Hour, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	status := func(s *sfuNode, method, path, tok string) int {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, method, s.url+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		res.Body.Close()
		return res.StatusCode
	}
	refused := func(s *sfuNode, tok, what string) {
		t.Helper()
		testkit.WaitFor(t, 10*time.Second, s.name+" refusing "+what, func() bool {
			return status(s, http.MethodGet, "/v1/sources", tok) == http.StatusUnauthorized
		})
	}
	tab, phone, other := mint("eoc-wall-3"), mint("phone-7"), mint("eoc-wall-4")
	for _, s := range []*sfuNode{one, two} {
		for _, tok := range []string{tab, phone, other} {
			if code := status(s, http.MethodGet, "/v1/sources", tok); code != http.StatusOK {
				t.Fatalf("%s before any revocation: %d", s.name, code)
			}
		}
	}

	if code := status(one, http.MethodPost, "/v1/signout", tab); code != http.StatusOK {
		t.Fatalf("sign out on %s: %d", one.name, code)
	}
	start := time.Now()
	refused(two, tab, "the token signed out on "+one.name)
	t.Logf("a sign-out on %s held on %s after %s", one.name, two.name, time.Since(start).Round(time.Millisecond))

	if code := b.api(http.MethodPost, two.url+"/v1/revocations", map[string]string{"subject": "phone-7", "reason": "phone lost"}, nil); code != http.StatusCreated {
		t.Fatalf("revoke phone-7 on %s: %d", two.name, code)
	}
	refused(one, phone, "phone-7, revoked on "+two.name)

	three := b.startSFU("sfu-3")
	refused(three, tab, "the token signed out before it joined")
	refused(three, phone, "phone-7, revoked before it joined")
	for _, s := range []*sfuNode{one, two, three} {
		if code := status(s, http.MethodGet, "/v1/sources", other); code != http.StatusOK {
			t.Errorf("%s refuses a token no one revoked: %d", s.name, code)
		}
	}
}
