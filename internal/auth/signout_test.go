package auth

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func call(t *testing.T, method, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// Signing out revokes the one token the request carries, on disk, and
// nothing else: the same subject's other token keeps working.
func TestSignOutRevokesThatTokenOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "revocations.json")
	rl, err := OpenRevocations(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := NewVerifier(testSecret, nil)
	v.UseRevocations(rl)
	srv := httptest.NewServer(SignOutHandler(v))
	t.Cleanup(srv.Close)

	now := time.Now()
	tab, tabClaims := mintFor(t, "commander", time.Hour, now)
	phone, _ := mintFor(t, "commander", time.Hour, now)
	if code, body := call(t, http.MethodGet, srv.URL, tab); code != http.StatusMethodNotAllowed {
		t.Fatalf("GET: %d %s", code, body)
	}
	if code, body := call(t, http.MethodPost, srv.URL, ""); code != http.StatusUnauthorized {
		t.Fatalf("no token: %d %s", code, body)
	}
	code, body := call(t, http.MethodPost, srv.URL, tab)
	if code != http.StatusOK {
		t.Fatalf("sign out: %d %s", code, body)
	}
	var rv Revocation
	if err := json.Unmarshal([]byte(body), &rv); err != nil {
		t.Fatal(err)
	}
	if rv.TokenID != tabClaims.ID || rv.By != "commander" || !rv.Expires.Equal(tabClaims.ExpiresAt.UTC()) {
		t.Fatalf("revocation %+v, want token %s by commander expiring %s", rv, tabClaims.ID, tabClaims.ExpiresAt)
	}
	if _, err := v.Verify(tab); !errors.Is(err, ErrRevoked) {
		t.Fatalf("the signed-out token: %v, want ErrRevoked", err)
	}
	if _, err := v.Verify(phone); err != nil {
		t.Fatalf("the subject's other token: %v", err)
	}
	if code, body := call(t, http.MethodPost, srv.URL, tab); code != http.StatusUnauthorized || !strings.Contains(body, "revoked") {
		t.Fatalf("signing out again: %d %s", code, body)
	}
	reloaded, err := OpenRevocations(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if l := reloaded.List(); len(l) != 1 || l[0].TokenID != tabClaims.ID {
		t.Fatalf("the list on disk: %+v", l)
	}

	// A server without a revocation list says so.
	bare, _ := NewVerifier(testSecret, nil)
	srv2 := httptest.NewServer(SignOutHandler(bare))
	t.Cleanup(srv2.Close)
	if code, body := call(t, http.MethodPost, srv2.URL, phone); code != http.StatusNotImplemented || !strings.Contains(body, "revocations_file") {
		t.Fatalf("without a revocation list: %d %s", code, body)
	}
}

// The revocation of a token that expired over an hour ago is dropped at the
// next change of the list; the revocations of subjects, and of tokens still
// valid, are kept.
func TestExpiredTokenRevocationsAreDropped(t *testing.T) {
	for _, path := range []string{"", filepath.Join(t.TempDir(), "revocations.json")} {
		rl, err := OpenRevocations(path, nil)
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now().UTC()
		rl.now = func() time.Time { return now }
		for _, rv := range []Revocation{
			{TokenID: "gone", Expires: now.Add(-2 * time.Hour)},
			{TokenID: "recent", Expires: now.Add(-time.Minute)},
			{TokenID: "valid", Expires: now.Add(time.Hour)},
			{Subject: "lost-phone"},
		} {
			if _, err := rl.Add(rv); err != nil {
				t.Fatal(err)
			}
		}
		var kept []string
		for _, rv := range rl.List() {
			kept = append(kept, rv.TokenID+rv.Subject)
		}
		if strings.Join(kept, " ") != "recent valid lost-phone" {
			t.Errorf("list %q: kept %v, want recent, valid and lost-phone", path, kept)
		}
	}
}

// A revocation merged from another node applies here without being handed
// back to the cluster (OnAdd), once: again, or covered by a later revocation
// of its subject, or of a token long expired, it is not added.
func TestMergeFromAnotherNode(t *testing.T) {
	rl, err := OpenRevocations(filepath.Join(t.TempDir(), "revocations.json"), nil)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := NewVerifier(testSecret, nil)
	v.UseRevocations(rl)
	var shared []Revocation
	rl.OnAdd(func(rv Revocation) { shared = append(shared, rv) })
	now := time.Now()
	phone, _ := mintFor(t, "phone-7", time.Hour, now.Add(-time.Minute))

	later := Revocation{Subject: "phone-7", At: now.UTC(), By: "op@sfu-2"}
	for i, c := range []struct {
		rv   Revocation
		want bool
	}{
		{later, true},
		{later, false},
		{Revocation{Subject: "phone-7", At: now.Add(-time.Hour).UTC(), By: "op@sfu-3"}, false},
		{Revocation{TokenID: "t1", At: now.UTC(), Expires: now.Add(-2 * time.Hour)}, false},
		{Revocation{TokenID: "t2", At: now.UTC(), Expires: now.Add(time.Hour)}, true},
	} {
		added, err := rl.Merge(c.rv)
		if err != nil || added != c.want {
			t.Errorf("merge %d (%s): added %v, %v; want %v", i, c.rv, added, err, c.want)
		}
	}
	if _, err := rl.Merge(Revocation{Subject: "x"}); err == nil {
		t.Error("a revocation without its time was merged")
	}
	if _, err := v.Verify(phone); !errors.Is(err, ErrRevoked) {
		t.Errorf("phone-7 after the merged revocation: %v", err)
	}
	if len(shared) != 0 {
		t.Errorf("merged revocations were handed back: %+v", shared)
	}
	if _, err := rl.Add(Revocation{TokenID: "t3", By: "me"}); err != nil || len(shared) != 1 || shared[0].TokenID != "t3" {
		t.Errorf("a revocation made here: %v, shared %+v", err, shared)
	}
}
