// Package e2e runs the real binaries — sfu, ingest and the demo cameras —
// on loopback and checks the whole live path with real peers: ffmpeg, a
// pion WHEP client and headless Chromium.
package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"fieldvideo/internal/auth"
	"fieldvideo/internal/testkit"
	"fieldvideo/internal/whip"
)

// bin holds the binaries built once for the package's tests.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = dir
	for _, pkg := range []string{"./cmd/sfu", "./cmd/ingest", "./testbench/democam"} {
		cmd := exec.Command("go", "build", "-o", dir+"/", pkg)
		cmd.Dir = "../.."
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "go build %s: %v\n%s", pkg, err, out)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const secret = "e2e-secret-e2e-secret-e2e-secret-e2e"

func token(t testing.TB, role auth.Role, pub, view []string) string {
	t.Helper()
	c := auth.Claims{Role: role, Publish: pub, View: view}
	c.Subject = "e2e-" + string(role)
	tok, err := auth.Mint([]byte(secret), c, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// proc is one of the system's processes.
type proc struct {
	*testkit.Process
	listen map[string]string // the "listening" log line's fields
}

// start runs a binary with env settings and waits for its "listening" log
// line (JSON logs), whose fields give the addresses it bound.
func start(t *testing.T, name string, env []string, args ...string) *proc {
	t.Helper()
	cmd := filepath.Join(bin, name)
	p := &proc{Process: testkit.StartEnv(t, context.Background(), env, cmd, args...)}
	testkit.WaitFor(t, 15*time.Second, name+" to listen", func() bool {
		for _, line := range strings.Split(p.Output(), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "listening" {
				p.listen = map[string]string{}
				for k, v := range m {
					p.listen[k] = fmt.Sprint(v)
				}
				return true
			}
		}
		if p.Exited() {
			t.Fatalf("%s exited: %v\n%s", name, p.Err(), p.Output())
		}
		return false
	})
	return p
}

// kill stops a process at once, as a crash or power loss would.
func (p *proc) kill() {
	_ = p.Signal(syscall.SIGKILL)
	<-p.Done()
}

// stores are the recording sites the processes of one test share.
type stores struct{ primary, offsite string }

var testStores = map[*testing.T]stores{}

func storesOf(t *testing.T) stores {
	if s, ok := testStores[t]; ok {
		return s
	}
	dir := t.TempDir()
	s := stores{primary: filepath.Join(dir, "primary"), offsite: filepath.Join(dir, "offsite")}
	testStores[t] = s
	t.Cleanup(func() { delete(testStores, t) })
	return s
}

func commonEnv(t *testing.T, prefix string) []string {
	dir := t.TempDir()
	st := storesOf(t)
	return []string{
		prefix + "_AUTH_SECRET=" + secret,
		prefix + "_AUDIT_FILE=" + filepath.Join(dir, "audit.log"),
		prefix + "_AUDIT_SIGNING_KEY_FILE=" + filepath.Join(dir, "audit.key"),
		prefix + "_AUTH_REVOCATIONS_FILE=" + filepath.Join(storesOf(t).primary, "..", "revocations.json"),
		prefix + "_LOG_FORMAT=json",
		prefix + "_RECORD_SPOOL_DIR=" + filepath.Join(dir, "spool"),
		prefix + "_RECORD_EXPORT_SIGNING_KEY_FILE=" + filepath.Join(dir, "export.key"),
		prefix + "_RECORD_PRIMARY_PATH=" + st.primary,
		prefix + "_RECORD_OFFSITE_PATH=" + st.offsite,
		prefix + "_RECORD_SEGMENT_DURATION=2s",
	}
}

func startSFU(t *testing.T, httpAddr string) (*proc, string) {
	env := append(commonEnv(t, "FV_SFU"), "FV_SFU_HTTP_ADDRESS="+httpAddr, "FV_SFU_WEBRTC_UDP_ADDRESS=127.0.0.1:0")
	p := start(t, "sfu", env, "-config", "../../configs/sfu.yml")
	return p, "http://" + p.listen["http"]
}

// startIngest runs ingest publishing to the SFU at sfu, pulling cameras (a
// YAML list), with fast reconnection for the tests; extra settings (NAME=value)
// override the others.
func startIngest(t *testing.T, sfu, cameras string, extra ...string) *proc {
	env := append(commonEnv(t, "FV_INGEST"),
		"FV_INGEST_RTSP_ADDRESS=127.0.0.1:0", `FV_INGEST_RTSP_UDP_RTP_ADDRESS=""`, `FV_INGEST_RTSP_UDP_RTCP_ADDRESS=""`,
		"FV_INGEST_API_ADDRESS=127.0.0.1:0", "FV_INGEST_UPLINK_URL="+sfu, "FV_INGEST_CAMERAS="+cameras,
		"FV_INGEST_RECONNECT_MIN=200ms", "FV_INGEST_RECONNECT_MAX=1s", "FV_INGEST_RTSP_READ_TIMEOUT=3s")
	return start(t, "ingest", append(env, extra...), "-config", "../../configs/ingest.yml")
}

// sourceState returns a source's state from an API's /v1/sources.
func sourceState(t *testing.T, base, tok, name string) (state, reason string) {
	t.Helper()
	body, err := (&whip.Client{Token: tok}).Get(context.Background(), base+"/v1/sources")
	if err != nil {
		return "", err.Error()
	}
	var list struct {
		Sources []struct{ Name, State, Reason string }
	}
	if err := json.Unmarshal(body, &list); err != nil {
		t.Fatal(err)
	}
	for _, s := range list.Sources {
		if s.Name == name {
			return s.State, s.Reason
		}
	}
	return "", "not listed"
}

func waitState(t *testing.T, base, tok, name, want string, timeout time.Duration) string {
	t.Helper()
	var reason string
	testkit.WaitFor(t, timeout, fmt.Sprintf("%s to be %s at %s", name, want, base), func() bool {
		var st string
		st, reason = sourceState(t, base, tok, name)
		return st == want
	})
	return reason
}

const sigkill = syscall.SIGKILL
