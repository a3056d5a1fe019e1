package drill

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"fieldvideo/internal/auth"
	"fieldvideo/internal/recorder"
	"fieldvideo/internal/testkit"
)

// The system under drill: the real binaries, built once per run, started
// with environment settings on loopback.

const (
	secret   = "drill-secret-drill-secret-drill-secret"
	incident = "drill"
)

// system is what one drill runs.
type system struct {
	t    *testing.T
	root string // the repository
	bin  string // built binaries
	dir  string // per-run state: audit logs, keys, spools

	primary, offsite *testkit.S3Server
	camAddr          string
	cameras          []string
	segment          time.Duration

	http *http.Client
}

// build compiles the binaries the drill runs.
func (s *system) build() {
	s.t.Helper()
	cmd := exec.Command("go", "build", "-o", s.bin+"/", "./cmd/sfu", "./cmd/ingest", "./testbench/democam")
	cmd.Dir = s.root
	if out, err := cmd.CombinedOutput(); err != nil {
		s.t.Fatalf("go build: %v\n%s", err, out)
	}
}

// proc is one of the system's processes.
type proc struct {
	*testkit.Process
	name   string
	listen map[string]string // the "listening" log line's fields
}

// start runs a binary with env settings and waits for its "listening" log
// line (JSON logs), whose fields give the addresses it bound.
func (s *system) start(name string, env []string, args ...string) *proc {
	s.t.Helper()
	p := &proc{Process: testkit.StartEnv(s.t, context.Background(), env, filepath.Join(s.bin, name), args...), name: name}
	testkit.WaitFor(s.t, 20*time.Second, name+" to listen", func() bool {
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
			s.t.Fatalf("%s exited: %v\n%s", name, p.Err(), p.Output())
		}
		return false
	})
	return p
}

// kill ends a process at once, as a crash or power loss would.
func (p *proc) kill() {
	_ = p.Signal(syscall.SIGKILL)
	<-p.Done()
}

// env is the settings every process of the system shares; role names the
// process's own files ("sfu", "sfu-standby", "ingest").
func (s *system) env(prefix, role string) []string {
	dir := filepath.Join(s.dir, role)
	env := []string{
		prefix + "_AUTH_SECRET=" + secret,
		prefix + "_AUTH_REVOCATIONS_FILE=" + filepath.Join(s.dir, "revocations.json"),
		prefix + "_AUDIT_FILE=" + filepath.Join(dir, "audit.log"),
		prefix + "_AUDIT_SIGNING_KEY_FILE=" + filepath.Join(dir, "audit.key"),
		prefix + "_LOG_FORMAT=json",
		prefix + "_RECORD_INCIDENT=" + incident,
		prefix + "_RECORD_SPOOL_DIR=" + filepath.Join(dir, "spool"),
		prefix + "_RECORD_SEGMENT_DURATION=" + s.segment.String(),
		prefix + "_RECORD_EXPORT_SIGNING_KEY_FILE=" + filepath.Join(dir, "export.key"),
	}
	for _, site := range []struct {
		role string
		srv  *testkit.S3Server
	}{{"PRIMARY", s.primary}, {"OFFSITE", s.offsite}} {
		k := prefix + "_RECORD_" + site.role + "_"
		env = append(env, k+"TYPE=s3", k+"S3_ENDPOINT="+site.srv.Endpoint, k+"S3_BUCKET="+site.srv.Bucket,
			k+"S3_REGION="+site.srv.Region, k+"S3_ACCESS_KEY="+site.srv.AccessKey, k+"S3_SECRET_KEY="+site.srv.SecretKey)
	}
	return env
}

// startCameras runs the demo cameras, every frame stamped with its true
// capture time.
func (s *system) startCameras() *testkit.Process {
	s.t.Helper()
	s.camAddr = fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(s.t))
	p := testkit.Start(s.t, context.Background(), filepath.Join(s.bin, "democam"), "-listen", s.camAddr,
		"-cameras", fmt.Sprint(len(s.cameras)), "-sei")
	testkit.WaitFor(s.t, 10*time.Second, "the demo cameras to listen", func() bool {
		if p.Exited() {
			s.t.Fatalf("democam exited: %v\n%s", p.Err(), p.Output())
		}
		return strings.Contains(p.Output(), "demo cameras ready")
	})
	return p
}

// startSFU runs an SFU (the primary, or a standby with its own spool) on a
// port of its own, recording to both stores and serving playback.
func (s *system) startSFU(role string) (*proc, string) {
	s.t.Helper()
	env := append(s.env("FV_SFU", role), "FV_SFU_HTTP_ADDRESS=127.0.0.1:0", "FV_SFU_WEBRTC_UDP_ADDRESS=127.0.0.1:0")
	p := s.start("sfu", env, "-config", filepath.Join(s.root, "configs", "sfu.yml"))
	return p, "http://" + p.listen["http"]
}

// startIngest runs ingest pulling the cameras, publishing to the SFU at sfu
// and recording to both stores.
func (s *system) startIngest(sfu string) (*proc, string) {
	s.t.Helper()
	var cams []string
	for _, c := range s.cameras {
		cams = append(cams, fmt.Sprintf(`{name: %s, url: "rtsp://%s/%s"}`, c, s.camAddr, c))
	}
	env := append(s.env("FV_INGEST", "ingest"),
		"FV_INGEST_RTSP_ADDRESS=127.0.0.1:0", `FV_INGEST_RTSP_UDP_RTP_ADDRESS=""`, `FV_INGEST_RTSP_UDP_RTCP_ADDRESS=""`,
		"FV_INGEST_API_ADDRESS=127.0.0.1:0", "FV_INGEST_UPLINK_URL="+sfu, "FV_INGEST_CAMERAS=["+strings.Join(cams, ", ")+"]",
		"FV_INGEST_RECONNECT_MIN=200ms", "FV_INGEST_RECONNECT_MAX=1s", "FV_INGEST_RTSP_READ_TIMEOUT=3s")
	p := s.start("ingest", env, "-config", filepath.Join(s.root, "configs", "ingest.yml"))
	return p, "http://" + p.listen["api"]
}

// token mints a token of role; edit adds grants.
func token(t testing.TB, role auth.Role, edit func(*auth.Claims)) string {
	t.Helper()
	c := auth.Claims{Role: role}
	c.Subject = "drill-" + string(role)
	if edit != nil {
		edit(&c)
	}
	tok, err := auth.Mint([]byte(secret), c, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// answer is one HTTP answer.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// get asks url with a bearer token; an error is the request failing (no
// answer at all), not a status.
func (s *system) get(url, tok string) (answer, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return answer{}, err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := s.http.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 256<<20))
	if err != nil {
		return answer{}, err
	}
	return answer{status: res.StatusCode, header: res.Header, body: body}, nil
}

// siteState is a store as playback reports it.
type siteState struct {
	Name    string `json:"name"`
	Healthy bool   `json:"healthy"`
	Active  bool   `json:"active"`
	Error   string `json:"error"`
}

// recordings is GET /v1/recordings.
type recordings struct {
	Site  string      `json:"site"`
	Sites []siteState `json:"sites"`
}

// recordingState is GET /v1/recording: the recorder's state.
func (s *system) recordingState(base, tok string) (recorder.View, error) {
	a, err := s.get(base+"/v1/recording", tok)
	if err != nil {
		return recorder.View{}, err
	}
	var r struct {
		Enabled  bool
		Recorder recorder.View
	}
	if err := json.Unmarshal(a.body, &r); err != nil || !r.Enabled || a.status != http.StatusOK {
		return recorder.View{}, fmt.Errorf("recording state: HTTP %d %s (%v)", a.status, a.body, err)
	}
	return r.Recorder, nil
}

// sourceState returns a source's state from an API's /v1/sources.
func (s *system) sourceState(base, tok, name string) string {
	a, err := s.get(base+"/v1/sources", tok)
	if err != nil || a.status != http.StatusOK {
		return ""
	}
	var list struct {
		Sources []struct{ Name, State string }
	}
	if json.Unmarshal(a.body, &list) != nil {
		return ""
	}
	for _, src := range list.Sources {
		if src.Name == name {
			return src.State
		}
	}
	return ""
}

// waitUntil polls cond every interval until it holds or timeout passes;
// it reports whether cond held. Conditions that ask S3 servers poll slower
// than testkit.WaitFor.
func waitUntil(timeout, interval time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		<-tick.C
	}
	return true
}
