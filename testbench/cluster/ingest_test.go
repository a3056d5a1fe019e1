// Package cluster runs the real binaries as a cluster on loopback, with a
// real NATS server, and kills and cuts its nodes.
package cluster

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"fieldvideo/internal/auth"
	"fieldvideo/internal/testkit"
)

const secret = "cluster-secret-cluster-secret-cluster-secret"

// leaseTTL is the cluster's lease TTL in these tests: the time another
// ingest takes to take over a camera whose ingest died.
const leaseTTL = 2 * time.Second

// The binaries, built once for all the tests of the package.
var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// binaries builds cmd/ingest and cmd/sfu (once) and returns their directory.
func binaries(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if binDir, buildErr = os.MkdirTemp("", "fieldvideo-cluster-bin-"); buildErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", binDir+"/", "./cmd/ingest", "./cmd/sfu")
		cmd.Dir = testkit.RepoRoot(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

type bench struct {
	t    *testing.T
	root string
	bin  string
	nats *testkit.NATS
	// tok is an operator's token, wallTok a wall display's.
	tok, wallTok string
	// replicas is the cluster.replicas of the nodes started; 0 leaves the default.
	replicas int
}

func newBench(t *testing.T) *bench { return newBenchOn(t, false) }

// newBenchOn builds the binaries; with sites, the test starts its own NATS
// servers (testkit.StartNATSSites) instead of one.
func newBenchOn(t *testing.T, sites bool) *bench {
	t.Helper()
	b := &bench{t: t, root: testkit.RepoRoot(t), bin: binaries(t)}
	if !sites {
		b.nats = testkit.StartNATS(t)
	}
	c := auth.Claims{Role: auth.RoleOperator}
	c.Subject = "cluster-test"
	tok, err := auth.Mint([]byte(secret), c, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	b.tok = tok
	w := auth.Claims{Role: auth.RoleWall, View: []string{"*"}}
	w.Subject = "cluster-wall"
	if b.wallTok, err = auth.Mint([]byte(secret), w, time.Hour, time.Now()); err != nil {
		t.Fatal(err)
	}
	return b
}

// ingest is one ingest process of the cluster.
type ingest struct {
	*testkit.Process
	name string
	api  string
}

// startIngest runs an ingest named name pulling cameras (a YAML list),
// joined to the cluster, publishing to the cluster's SFUs, without recording.
func (b *bench) startIngest(name, cameras string) *ingest {
	b.t.Helper()
	return b.startIngestVia(name, cameras, b.nats.URL)
}

// startIngestVia is startIngest reaching NATS at natsURL.
func (b *bench) startIngestVia(name, cameras, natsURL string) *ingest {
	b.t.Helper()
	dir := b.t.TempDir()
	api := fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(b.t))
	p := b.startNode("ingest", name, natsURL, api,
		"FV_INGEST_RECONNECT_MIN=100ms",
		"FV_INGEST_RECONNECT_MAX=1s",
		"FV_INGEST_RTSP_ADDRESS=127.0.0.1:0",
		`FV_INGEST_RTSP_UDP_RTP_ADDRESS=""`,
		`FV_INGEST_RTSP_UDP_RTCP_ADDRESS=""`,
		"FV_INGEST_API_ADDRESS="+api,
		`FV_INGEST_UPLINK_URL=""`,
		"FV_INGEST_CAMERAS="+cameras,
		"FV_INGEST_CAMERAS_FILE="+filepath.Join(dir, "cameras.json"),
	)
	return &ingest{Process: p, name: name, api: "http://" + api}
}

// startNode runs bin/<binary> (ingest or sfu) named name in the cluster at
// natsURL, its HTTP API at addr, with the settings every node of these
// tests has (shared secret, own audit files, no recording, JSON logs, fast
// heartbeats) and own, and waits until it listens.
func (b *bench) startNode(binary, name, natsURL, addr string, own ...string) *testkit.Process {
	b.t.Helper()
	dir := b.t.TempDir()
	pre := "FV_" + strings.ToUpper(binary) + "_"
	env := []string{
		pre + "AUTH_SECRET=" + secret,
		pre + "AUTH_REVOCATIONS_FILE=" + filepath.Join(dir, "revocations.json"),
		pre + "AUDIT_FILE=" + filepath.Join(dir, "audit.log"),
		pre + "AUDIT_SIGNING_KEY_FILE=" + filepath.Join(dir, "audit.key"),
		pre + "LOG_FORMAT=json",
		pre + "RECORD_ENABLED=false",
		pre + "CLUSTER_NATS=[" + natsURL + "]",
		pre + "CLUSTER_NODE=" + name,
		pre + "CLUSTER_ADVERTISE=http://" + addr,
		pre + "CLUSTER_HEARTBEAT=250ms",
		pre + "CLUSTER_LEASE_TTL=" + leaseTTL.String(),
	}
	if b.replicas != 0 {
		env = append(env, fmt.Sprintf("%sCLUSTER_REPLICAS=%d", pre, b.replicas))
	}
	env = append(env, own...)
	p := testkit.StartEnv(b.t, context.Background(), env, filepath.Join(b.bin, binary), "-config", filepath.Join(b.root, "configs", binary+".yml"))
	testkit.WaitFor(b.t, 20*time.Second, name+" to listen", func() bool {
		if p.Exited() {
			b.t.Fatalf("%s exited: %v\n%s", name, p.Err(), p.Output())
		}
		return strings.Contains(p.Output(), `"msg":"listening"`)
	})
	return p
}

type sourceState struct {
	Name   string `json:"name"`
	State  string `json:"state"`
	Reason string `json:"reason"`
}

// states returns the ingest's sources by name, or nil when it does not answer.
func (b *bench) states(in *ingest) map[string]sourceState {
	req, _ := http.NewRequest(http.MethodGet, in.api+"/v1/sources", nil)
	req.Header.Set("Authorization", "Bearer "+b.tok)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	res, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		return nil
	}
	defer res.Body.Close()
	var body struct {
		Sources []sourceState `json:"sources"`
	}
	if res.StatusCode != http.StatusOK || json.NewDecoder(res.Body).Decode(&body) != nil {
		return nil
	}
	out := map[string]sourceState{}
	for _, s := range body.Sources {
		out[s.Name] = s
	}
	return out
}

// TestIngestPairSharesCameras runs two ingests with the same cameras: each
// camera is pulled by exactly one of them, the other stands by naming it;
// killing the one pulling brings its cameras back through the other.
func TestIngestPairSharesCameras(t *testing.T) {
	b := newBench(t)
	cams := []*testkit.RTSPCamera{testkit.StartRTSPCamera(t, testkit.RTSPCameraParams{}), testkit.StartRTSPCamera(t, testkit.RTSPCameraParams{})}
	list := "["
	for i, c := range cams {
		list += fmt.Sprintf("{name: cam%d, url: %q, transport: tcp},", i+1, c.URL(fmt.Sprintf("cam%d", i+1)))
	}
	list += "]"
	a := b.startIngest("ingest-a", list)
	// a takes both cameras before b starts: b must stand by for each.
	testkit.WaitFor(t, 20*time.Second, "ingest-a pulling both cameras", func() bool {
		s := b.states(a)
		return s["cam1"].State == "live" && s["cam2"].State == "live"
	})
	bb := b.startIngest("ingest-b", list)
	testkit.WaitFor(t, 20*time.Second, "ingest-b standing by for both cameras", func() bool {
		s := b.states(bb)
		return s["cam1"].State == "standby" && s["cam2"].State == "standby"
	})
	if r := b.states(bb)["cam1"].Reason; !strings.Contains(r, "ingest-a") {
		t.Errorf("ingest-b's cam1 stands by with reason %q; want it to name ingest-a", r)
	}

	// Kill ingest-a, as a crash or power loss does: no release, the lease lapses.
	_ = a.Signal(syscall.SIGKILL)
	<-a.Done()
	killed := time.Now()
	testkit.WaitFor(t, 15*time.Second, "ingest-b pulling both cameras", func() bool {
		s := b.states(bb)
		return s["cam1"].State == "live" && s["cam2"].State == "live"
	})
	t.Logf("ingest killed → its cameras live through the other ingest: %s (lease TTL %s)", time.Since(killed).Round(time.Millisecond), leaseTTL)
	for i, c := range cams {
		if m := c.MostPlaying(); m != 1 {
			t.Errorf("cam%d was pulled by %d ingests at once; want 1", i+1, m)
		}
		if c.Playing() != 1 {
			t.Errorf("cam%d has %d sessions playing; want 1 (ingest-b's)", i+1, c.Playing())
		}
	}

	// ingest-a comes back: it stands by, and ingest-b keeps the cameras.
	a = b.startIngest("ingest-a", list)
	testkit.WaitFor(t, 20*time.Second, "the restarted ingest-a standing by", func() bool {
		s := b.states(a)
		return s["cam1"].State == "standby" && s["cam2"].State == "standby"
	})
	if s := b.states(bb); s["cam1"].State != "live" || s["cam2"].State != "live" {
		t.Errorf("after ingest-a came back, ingest-b's cameras are %+v; want both kept live", s)
	}

	// A graceful stop hands the cameras over at once.
	bb.Stop()
	stopped := time.Now()
	testkit.WaitFor(t, 15*time.Second, "ingest-a pulling both cameras after ingest-b stopped", func() bool {
		s := b.states(a)
		return s["cam1"].State == "live" && s["cam2"].State == "live"
	})
	t.Logf("ingest stopped → its cameras live through the other ingest: %s", time.Since(stopped).Round(time.Millisecond))
	for i, c := range cams {
		if m := c.MostPlaying(); m != 1 {
			t.Errorf("cam%d was pulled by %d ingests at once; want 1", i+1, m)
		}
	}
}
