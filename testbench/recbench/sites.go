package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"fieldvideo/internal/store"
)

// site is an S3 server process on loopback with one bucket.
type site struct {
	kind, endpoint string
	access, secret string
	cmd            *exec.Cmd
}

const bucket = "recordings"

// startSite runs MinIO or versitygw from dir with its data in data.
func startSite(kind, tools, data string) (*site, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	endpoint := l.Addr().String()
	l.Close()
	s := &site{kind: kind, endpoint: endpoint, access: "bench" + randHex(4), secret: randHex(16)}
	var args, env []string
	switch kind {
	case "minio":
		args = []string{"server", "--address", endpoint, "--quiet", "--anonymous", data}
		env = []string{"MINIO_ROOT_USER=" + s.access, "MINIO_ROOT_PASSWORD=" + s.secret, "MINIO_BROWSER=off",
			"MINIO_UPDATE=off", "MINIO_CALLHOME_ENABLE=off", "MINIO_CI_CD=on"}
	default:
		args = []string{"--port", endpoint, "--region", "us-east-1", "--quiet", "posix", data}
		env = []string{"ROOT_ACCESS_KEY=" + s.access, "ROOT_SECRET_KEY=" + s.secret}
	}
	if err := os.MkdirAll(data, 0o750); err != nil {
		return nil, err
	}
	bin, err := filepath.Abs(filepath.Join(tools, kind))
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("%s not found (%v); run scripts/deps.sh test, or pass -fs", bin, err)
	}
	s.cmd = exec.Command(bin, args...)
	s.cmd.Env = append(os.Environ(), env...)
	s.cmd.Dir = data
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	c, err := minio.New(endpoint, &minio.Options{Creds: credentials.NewStaticV4(s.access, s.secret, ""), Region: "us-east-1"})
	if err != nil {
		s.stop()
		return nil, err
	}
	for deadline := time.Now().Add(30 * time.Second); ; {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err = c.MakeBucket(ctx, bucket, minio.MakeBucketOptions{Region: "us-east-1"})
		cancel()
		if err == nil {
			return s, nil
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("%s did not answer: %w", kind, err)
		}
		time.Sleep(50 * time.Millisecond) // polling a server that is starting
	}
}

func (s *site) store(name string) (store.Store, error) {
	return store.NewS3(store.S3Params{Name: name, Endpoint: s.endpoint, Bucket: bucket, AccessKey: s.access, SecretKey: s.secret})
}

func (s *site) stop() {
	s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		s.cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		s.cmd.Process.Kill()
		<-done
	}
}

// cpu returns the process's CPU time so far (user plus system) from /proc.
func (s *site) cpu() time.Duration { return procCPU(s.cmd.Process.Pid) }

// procCPU reads a process's CPU time from /proc/<pid>/stat.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	sy, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+sy) * time.Second / 100 // clock ticks (USER_HZ = 100)
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
