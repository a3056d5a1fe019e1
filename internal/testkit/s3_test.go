package testkit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
)

func TestS3Servers(t *testing.T) {
	for _, c := range []struct {
		name  string
		start func(testing.TB, S3ServerParams) *S3Server
	}{{KindMinIO, StartMinIO}, {KindVersityGW, StartVersityGW}} {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			srv := c.start(t, S3ServerParams{Bucket: "b-one"})
			t.Logf("%s: started with its bucket in %v", srv, time.Since(start))
			if srv.Kind != c.name || srv.Bucket != "b-one" || !strings.HasPrefix(srv.Endpoint, "127.0.0.1:") || srv.AccessKey == "" || srv.SecretKey == "" {
				t.Fatalf("server %+v", srv)
			}
			if strings.Contains(srv.String(), srv.SecretKey) {
				t.Fatal("String shows the secret key")
			}
			// The server listens on its S3 port on loopback (MinIO on
			// both 127.0.0.1 and ::1) and nowhere else: no console, no
			// other service.
			_, port, _ := net.SplitHostPort(srv.Endpoint)
			got := listeningAddrs(t, srv.Pid())
			if len(got) == 0 {
				t.Fatal("found no listening socket of the server")
			}
			for _, a := range got {
				if !a.Addr().IsLoopback() || strconv.Itoa(int(a.Port())) != port {
					t.Fatalf("%s listens on %v, want only loopback port %s", c.name, got, port)
				}
			}

			ctx := context.Background()
			cl := srv.Client()
			if _, err := cl.PutObject(ctx, "b-one", "k", strings.NewReader("v"), 1, minio.PutObjectOptions{}); err != nil {
				t.Fatal(err)
			}
			readBack := func() string {
				t.Helper()
				o, err := cl.GetObject(ctx, "b-one", "k", minio.GetObjectOptions{})
				if err != nil {
					t.Fatal(err)
				}
				defer o.Close()
				b, err := io.ReadAll(o)
				if err != nil {
					t.Fatalf("read back after restart: %v", err)
				}
				return string(b)
			}

			// Stop, then start again on the same port and data; the same
			// with Kill.
			for _, down := range []func(){srv.Stop, srv.Kill} {
				down()
				if srv.Running() || !srv.Refused() {
					t.Fatalf("the server still runs or accepts connections after stopping")
				}
				srv.Start()
				if !srv.Running() || srv.Refused() {
					t.Fatal("the server does not run after Start")
				}
				if got := readBack(); got != "v" {
					t.Fatalf("object after restart: %q", got)
				}
			}
		})
	}
}

func TestS3ServerTLS(t *testing.T) {
	for _, start := range []func(testing.TB, S3ServerParams) *S3Server{StartMinIO, StartVersityGW} {
		srv := start(t, S3ServerParams{TLS: true})
		if !srv.TLS || srv.CAFile == "" || !strings.HasPrefix(srv.URL(), "https://") {
			t.Fatalf("TLS server %+v", srv)
		}
		if ok, err := srv.Client().BucketExists(context.Background(), srv.Bucket); err != nil || !ok {
			t.Fatalf("%s over TLS: bucket exists %v, %v", srv.Kind, ok, err)
		}
	}
}

// listeningAddrs returns the TCP addresses process pid listens on.
func listeningAddrs(t *testing.T, pid int) []netip.AddrPort {
	t.Helper()
	inodes := map[string]bool{}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		l, err := os.Readlink(filepath.Join(fmt.Sprintf("/proc/%d/fd", pid), fd.Name()))
		if err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	var out []netip.AddrPort
	for _, f := range []string{"tcp", "tcp6"} {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, f))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Scan() // header
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			// local_address st ... inode: 0A is LISTEN.
			if len(fields) < 10 || fields[3] != "0A" || !inodes[fields[9]] {
				continue
			}
			out = append(out, procAddr(t, fields[1]))
		}
	}
	return out
}

// procAddr decodes a /proc/net/tcp{,6} address such as 0100007F:1F90: the
// address is in 32-bit words of host (little-endian) byte order.
func procAddr(t *testing.T, s string) netip.AddrPort {
	t.Helper()
	hexIP, hexPort, _ := strings.Cut(s, ":")
	port, err := strconv.ParseUint(hexPort, 16, 16)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := hex.DecodeString(hexIP)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		t.Fatalf("address %q in /proc/net/tcp", s)
	}
	for w := 0; w < len(raw); w += 4 {
		slices.Reverse(raw[w : w+4])
	}
	ip, _ := netip.AddrFromSlice(raw)
	return netip.AddrPortFrom(ip.Unmap(), uint16(port))
}
