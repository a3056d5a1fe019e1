package store

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"fieldvideo/internal/conf"
	"fieldvideo/internal/testkit"

	"github.com/minio/minio-go/v7"
)

func s3Conf(srv *testkit.S3Server) conf.StoreConf {
	return conf.StoreConf{Type: "s3", S3: conf.S3{
		Endpoint: srv.Endpoint, Bucket: srv.Bucket, Region: srv.Region,
		AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, TLS: srv.TLS, CAFile: srv.CAFile,
	}}
}

// TestOpenDegraded opens a store whose server is down (nothing listens on
// its port): Open returns the store and ErrUnreachable, and the store works
// once the server is up on that port.
func TestOpenDegraded(t *testing.T) {
	forEachS3Server(t, testkit.S3ServerParams{}, func(t *testing.T, srv *testkit.S3Server) {
		ctx := context.Background()
		srv.Stop()
		if !srv.Refused() {
			t.Fatal("the port still accepts connections")
		}
		start := time.Now()
		st, err := Open(ctx, "offsite", s3Conf(srv))
		if st == nil || !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "cannot reach "+srv.Endpoint) {
			t.Fatalf("Open with the server down: %v, %v; want a store and ErrUnreachable", st, err)
		}
		t.Logf("degraded after %v: %v", time.Since(start).Round(time.Millisecond), err)
		c, ok := st.(interface{ Check(context.Context) error })
		if !ok {
			t.Fatalf("%T has no Check", st)
		}
		b := []byte("segment recorded while the site was away")
		if err := st.Put(ctx, "rec/seg.mp4", bytes.NewReader(b), int64(len(b)), hexSum(b)); !errors.Is(err, ErrUnreachable) {
			t.Fatalf("put with the server down: %v", err)
		}

		srv.Start()
		if err := c.Check(ctx); err != nil {
			t.Fatalf("check with the server back: %v", err)
		}
		if err := st.Put(ctx, "rec/seg.mp4", bytes.NewReader(b), int64(len(b)), hexSum(b)); err != nil {
			t.Fatalf("put with the server back: %v", err)
		}
		if got, in := getAll(t, st, "rec/seg.mp4"); !bytes.Equal(got, b) || in.SHA256 != hexSum(b) {
			t.Fatalf("get: %q %+v", got, in)
		}
		if err := st.Put(ctx, "rec/seg.mp4", strings.NewReader("other"), 5, ""); !errors.Is(err, ErrExists) {
			t.Fatalf("other content: %v", err)
		}
	})
}

// TestOpenRefusesBadSettings: a server that answers and refuses is a
// configuration error, never ErrUnreachable, and Open returns no store.
func TestOpenRefusesBadSettings(t *testing.T) {
	t.Run("http", func(t *testing.T) { testOpenRefusesHTTP(t) })
	t.Run("https", func(t *testing.T) { testOpenRefusesHTTPS(t) })
}

func testOpenRefusesHTTP(t *testing.T) {
	forEachS3Server(t, testkit.S3ServerParams{}, func(t *testing.T, srv *testkit.S3Server) {
		for _, c := range []struct {
			name string
			mod  func(*conf.S3)
			want string
		}{
			{"wrong secret", func(c *conf.S3) { c.SecretKey = "wrong-secret-key" }, "access denied"},
			{"unknown access key", func(c *conf.S3) { c.AccessKey = "nobody" }, "access denied"},
			{"missing bucket", func(c *conf.S3) { c.Bucket = "no-such-bucket" }, `bucket "no-such-bucket" does not exist`},
			{"wrong region", func(c *conf.S3) { c.Region = "eu-west-3" }, `rejects region "eu-west-3"`},
			{"tls to a plain server", func(c *conf.S3) { c.TLS = true }, "does not speak TLS"},
			{"no endpoint", func(c *conf.S3) { c.Endpoint = "" }, "s3.endpoint"},
		} {
			t.Run(c.name, func(t *testing.T) {
				sc := s3Conf(srv)
				c.mod(&sc.S3)
				st, err := Open(context.Background(), "offsite", sc)
				if st != nil || err == nil || errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), c.want) {
					t.Fatalf("Open: %v, %v; want no store and an error saying %q, not ErrUnreachable", st, err, c.want)
				}
				t.Logf("%v", err)
			})
		}
	})
}

func testOpenRefusesHTTPS(t *testing.T) {
	forEachS3Server(t, testkit.S3ServerParams{TLS: true}, func(t *testing.T, srv *testkit.S3Server) {
		for _, c := range []struct {
			name string
			mod  func(*conf.S3)
			want string
		}{
			{"untrusted certificate", func(c *conf.S3) { c.CAFile = "" }, "not trusted"},
			{"plain http to a tls server", func(c *conf.S3) { c.TLS, c.CAFile = false, "" }, "s3.tls: true"},
		} {
			t.Run(c.name, func(t *testing.T) {
				sc := s3Conf(srv)
				c.mod(&sc.S3)
				st, err := Open(context.Background(), "offsite", sc)
				if st != nil || err == nil || errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), c.want) {
					t.Fatalf("Open: %v, %v; want no store and an error saying %q, not ErrUnreachable", st, err, c.want)
				}
				t.Logf("%v", err)
			})
		}
	})
}

func TestOpenFS(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "primary")
	st, err := Open(ctx, "primary", conf.StoreConf{Type: "fs", Path: dir})
	if err != nil || st == nil {
		t.Fatalf("Open: %v, %v", st, err)
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{file, filepath.Join(file, "sub")} {
		st, err := Open(ctx, "primary", conf.StoreConf{Type: "fs", Path: p})
		if st != nil || err == nil || errors.Is(err, ErrUnreachable) {
			t.Fatalf("Open of %s: %v, %v; want no store and an error", p, st, err)
		}
		t.Logf("%v", err)
	}
	if st, err := Open(ctx, "primary", conf.StoreConf{Type: "nfs"}); st != nil || err == nil || !strings.Contains(err.Error(), "use fs or s3") {
		t.Fatalf("Open of an unknown type: %v, %v", st, err)
	}
}

// TestS3Unreachable sorts errors: those of a server that cannot be reached
// wrap ErrUnreachable; answers that refuse, and the caller's cancelling,
// do not.
func TestS3Unreachable(t *testing.T) {
	s := mustNewS3(t, S3Params{Endpoint: "127.0.0.1:9", Bucket: "bkt", AccessKey: "a", SecretKey: "s"})
	urlErr := func(err error) error { return &url.Error{Op: "Put", URL: "http://127.0.0.1:9/bkt/k", Err: err} }
	for _, c := range []struct {
		name        string
		err         error
		unreachable bool
	}{
		{"connection refused", urlErr(&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}), true},
		{"no such host", urlErr(&net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: "s3.example", IsNotFound: true}}), true},
		{"dns timeout", urlErr(&net.DNSError{Err: "i/o timeout", Name: "s3.example", IsTimeout: true}), true},
		{"deadline", fmt.Errorf("list: %w", context.DeadlineExceeded), true},
		{"connection reset", urlErr(&net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}), true},
		{"broken pipe", urlErr(os.NewSyscallError("write", syscall.EPIPE)), true},
		{"eof", urlErr(io.EOF), true},
		{"unexpected eof", urlErr(io.ErrUnexpectedEOF), true},
		{"503", minio.ErrorResponse{StatusCode: 503, Code: "SlowDown"}, true},
		{"502 from a proxy", minio.ErrorResponse{StatusCode: 502, Code: "502 Bad Gateway"}, true},
		{"access denied", minio.ErrorResponse{StatusCode: 403, Code: "AccessDenied"}, false},
		{"bad signature", minio.ErrorResponse{StatusCode: 403, Code: "SignatureDoesNotMatch"}, false},
		{"no such bucket", minio.ErrorResponse{StatusCode: 404, Code: "NoSuchBucket"}, false},
		{"wrong region", minio.ErrorResponse{StatusCode: 400, Code: "AuthorizationHeaderMalformed"}, false},
		{"untrusted certificate", urlErr(&tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}), false},
		{"certificate for another name", urlErr(x509.HostnameError{Certificate: &x509.Certificate{}, Host: "s3.example"}), false},
		{"not tls", urlErr(tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}), false},
		{"tls alert", urlErr(&net.OpError{Op: "remote error", Err: tls.AlertError(40)}), false},
		{"cancelled", fmt.Errorf("put: %w", context.Canceled), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := s.explain("check", "", c.err)
			if errors.Is(err, ErrUnreachable) != c.unreachable {
				t.Fatalf("%v: wraps ErrUnreachable: %v, want %v", err, !c.unreachable, c.unreachable)
			}
			if c.unreachable && !strings.Contains(err.Error(), "cannot reach") {
				t.Fatalf("%v does not say it cannot reach the server", err)
			}
		})
	}

	// A name that does not resolve.
	s = mustNewS3(t, S3Params{Endpoint: "s3.fieldvideo.invalid:9000", Bucket: "bkt", AccessKey: "a", SecretKey: "s", Timeout: 3 * time.Second})
	if err := s.Check(context.Background()); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("check of a name that does not resolve: %v", err)
	} else {
		t.Logf("%v", err)
	}
}
