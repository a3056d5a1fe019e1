package testkit

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3 server kinds.
const (
	KindMinIO     = "minio"
	KindVersityGW = "versitygw"
)

const s3InstallHint = "run `make test` (scripts/deps.sh test installs MinIO and versitygw into .tools/bin)"

// S3ServerParams configures a test S3 server. The zero value is a plain
// HTTP server with a bucket named "recordings".
type S3ServerParams struct {
	// Bucket is created at first start (default "recordings").
	Bucket string
	// TLS serves HTTPS with a fresh self-signed certificate for 127.0.0.1,
	// whose PEM file is S3Server.CAFile.
	TLS bool
}

// S3Server is an S3 server (MinIO or versitygw) run for one test on
// 127.0.0.1, with its own data directory, credentials and bucket. It can be
// stopped and started again on the same port and data.
type S3Server struct {
	Kind      string
	Endpoint  string // 127.0.0.1:port
	Bucket    string
	Region    string
	AccessKey string
	SecretKey string
	TLS       bool
	CAFile    string // PEM of the self-signed certificate when TLS
	DataDir   string

	t    testing.TB
	bin  string
	args []string
	env  []string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	out  *tailBuffer
}

// StartMinIO starts a MinIO server (single drive) for the test. It fails
// the test when MinIO is not installed.
func StartMinIO(t testing.TB, p S3ServerParams) *S3Server {
	t.Helper()
	s := newS3Server(t, KindMinIO, p)
	certs := filepath.Join(t.TempDir(), "certs")
	if err := os.MkdirAll(certs, 0o700); err != nil {
		t.Fatalf("testkit: %v", err)
	}
	if p.TLS {
		s.CAFile = filepath.Join(certs, "public.crt")
		writeSelfSigned(t, s.CAFile, filepath.Join(certs, "private.key"))
	}
	s.args = []string{"server", "--address", s.Endpoint, "--certs-dir", certs, "--quiet", "--anonymous", s.DataDir}
	s.env = append(s.env,
		"MINIO_ROOT_USER="+s.AccessKey,
		"MINIO_ROOT_PASSWORD="+s.SecretKey,
		"MINIO_REGION="+s.Region,
		// Nothing but loopback: no console, update check, call home or
		// license/telemetry traffic.
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
		"MINIO_CALLHOME_ENABLE=off",
		"MINIO_CI_CD=on",
	)
	s.start()
	s.makeBucket()
	return s
}

// StartVersityGW starts a versitygw server (POSIX backend) for the test.
// It fails the test when versitygw is not installed.
func StartVersityGW(t testing.TB, p S3ServerParams) *S3Server {
	t.Helper()
	s := newS3Server(t, KindVersityGW, p)
	s.args = []string{"--port", s.Endpoint, "--region", s.Region, "--quiet"}
	if p.TLS {
		dir := t.TempDir()
		s.CAFile = filepath.Join(dir, "cert.pem")
		key := filepath.Join(dir, "key.pem")
		writeSelfSigned(t, s.CAFile, key)
		s.args = append(s.args, "--cert", s.CAFile, "--key", key)
	}
	s.args = append(s.args, "posix", s.DataDir)
	s.env = append(s.env, "ROOT_ACCESS_KEY="+s.AccessKey, "ROOT_SECRET_KEY="+s.SecretKey)
	s.start()
	s.makeBucket()
	return s
}

func newS3Server(t testing.TB, kind string, p S3ServerParams) *S3Server {
	t.Helper()
	bin := filepath.Join(RepoRoot(t), ".tools", "bin", kind)
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s is not installed (%v); %s", kind, err, s3InstallHint)
	}
	if p.Bucket == "" {
		p.Bucket = "recordings"
	}
	home := t.TempDir()
	s := &S3Server{
		Kind:      kind,
		Endpoint:  net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(t))),
		Bucket:    p.Bucket,
		Region:    "us-east-1",
		AccessKey: "fv" + randomHex(t, 6),
		SecretKey: randomHex(t, 16),
		TLS:       p.TLS,
		DataDir:   filepath.Join(t.TempDir(), "data"),
		t:         t,
		bin:       bin,
		// A clean environment: nothing of the host's configuration or
		// proxies reaches the server.
		env: []string{"PATH=/usr/bin:/bin", "HOME=" + home, "TMPDIR=" + home},
	}
	if err := os.MkdirAll(s.DataDir, 0o700); err != nil {
		t.Fatalf("testkit: %v", err)
	}
	t.Cleanup(s.Kill)
	return s
}

// Start starts the server again on the same port and data directory, and
// waits until it answers S3 requests.
func (s *S3Server) Start() {
	s.t.Helper()
	s.start()
}

func (s *S3Server) start() {
	s.t.Helper()
	s.mu.Lock()
	if s.cmd != nil {
		s.mu.Unlock()
		s.t.Fatalf("testkit: %s at %s is already running", s.Kind, s.Endpoint)
	}
	cmd := exec.Command(s.bin, s.args...)
	cmd.Env = s.env
	cmd.Dir = s.DataDir
	out := &tailBuffer{max: 64 << 10}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		s.mu.Unlock()
		s.t.Fatalf("testkit: start %s: %v", s.Kind, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	s.cmd, s.done, s.out = cmd, done, out
	s.mu.Unlock()

	start := time.Now()
	deadline := start.Add(30 * time.Second)
	c := s.Client()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := c.ListBuckets(ctx)
		cancel()
		if err == nil {
			break
		}
		select {
		case <-done:
			s.t.Fatalf("testkit: %s exited before it answered on %s: %v\n%s", s.Kind, s.Endpoint, cmd.ProcessState, out.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Kill()
			s.t.Fatalf("testkit: %s did not answer on %s within 30s: %v\n%s", s.Kind, s.Endpoint, err, out.String())
		}
	}
	s.t.Logf("testkit: %s up at %s in %v", s.Kind, s.Endpoint, time.Since(start).Round(time.Millisecond))
}

// Stop ends the server with SIGTERM (SIGKILL after 5 s) and waits until it
// has exited, so its port refuses connections.
func (s *S3Server) Stop() { s.stop(syscall.SIGTERM) }

// Kill ends the server with SIGKILL and waits until it has exited.
func (s *S3Server) Kill() { s.stop(syscall.SIGKILL) }

func (s *S3Server) stop(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(sig)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
}

// Running reports whether the server process is running.
func (s *S3Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return false
	}
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// Pid returns the server's process id, or 0 when it is not running.
func (s *S3Server) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Output returns the end of what the server printed in its current or
// last run.
func (s *S3Server) Output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.out == nil {
		return ""
	}
	return s.out.String()
}

// Client returns a minio-go client for the server's root user, for test
// setup and inspection.
func (s *S3Server) Client() *minio.Client {
	s.t.Helper()
	tr, err := minio.DefaultTransport(s.TLS)
	if err != nil {
		s.t.Fatalf("testkit: %v", err)
	}
	tr.Proxy = nil
	if s.TLS {
		pem, err := os.ReadFile(s.CAFile)
		if err != nil {
			s.t.Fatalf("testkit: %v", err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		tr.TLSClientConfig.RootCAs = pool
	}
	c, err := minio.New(s.Endpoint, &minio.Options{
		Creds:      credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""),
		Secure:     s.TLS,
		Region:     s.Region,
		Transport:  tr,
		MaxRetries: 1,
	})
	if err != nil {
		s.t.Fatalf("testkit: minio-go client for %s: %v", s.Endpoint, err)
	}
	return c
}

// URL returns the server's base URL.
func (s *S3Server) URL() string {
	if s.TLS {
		return "https://" + s.Endpoint
	}
	return "http://" + s.Endpoint
}

func (s *S3Server) makeBucket() {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Client().MakeBucket(ctx, s.Bucket, minio.MakeBucketOptions{Region: s.Region}); err != nil {
		s.t.Fatalf("testkit: create bucket %s on %s: %v\n%s", s.Bucket, s.Kind, err, s.Output())
	}
}

// Refused reports whether a TCP connection to the server's port is refused
// (nothing listens there).
func (s *S3Server) Refused() bool {
	c, err := net.DialTimeout("tcp", s.Endpoint, time.Second)
	if err != nil {
		return true
	}
	c.Close()
	return false
}

// writeSelfSigned writes a fresh self-signed certificate for 127.0.0.1 and
// localhost, and its key, as PEM files.
func writeSelfSigned(t testing.TB, certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("testkit: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "fieldvideo test S3"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("testkit: %v", err)
	}
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("testkit: %v", err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatalf("testkit: %v", err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}), 0o600); err != nil {
		t.Fatalf("testkit: %v", err)
	}
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("testkit: %v", err)
	}
	return hex.EncodeToString(b)
}

// String describes the server for test logs, without its secret key.
func (s *S3Server) String() string {
	return fmt.Sprintf("%s at %s (bucket %s, data %s)", s.Kind, s.URL(), s.Bucket, s.DataDir)
}
