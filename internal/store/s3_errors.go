package store

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"

	"github.com/minio/minio-go/v7"
)

// explain turns an error of minio-go or the network into one that says what
// is wrong and what to do. A missing object becomes ErrNotFound; a server
// that cannot be reached, ErrUnreachable.
func (s *S3) explain(op, key string, err error) error {
	what := fmt.Sprintf("store %s: %s", s.p.Name, op)
	if key != "" {
		what += " " + key
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w %s: no answer in time: check s3.endpoint and the network: %w", what, ErrUnreachable, s.p.Endpoint, err)
	}
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("%s: %s: %w", what, s.where, err)
	}
	resp := minio.ToErrorResponse(err)
	switch resp.Code {
	case "NoSuchKey", "NotFound":
		if key != "" && op != "list" {
			return ErrNotFound
		}
	case "NoSuchBucket":
		return fmt.Errorf("%s: bucket %q does not exist on %s: create it: %w", what, s.p.Bucket, s.p.Endpoint, err)
	case "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "InvalidToken", "ExpiredToken",
		"XAdminUserNotFound": // versitygw without IAM, for an unknown access key
		return s.denied(what, resp.Code, err)
	case "XAmzContentSHA256Mismatch", "BadDigest", "InvalidDigest", "XAmzContentChecksumMismatch", "InvalidChecksum":
		return fmt.Errorf("%s: %s refused the content (%s); nothing was stored: %w: %w", what, s.where, resp.Code, ErrChecksum, err)
	case "AuthorizationHeaderMalformed", "InvalidRegion":
		return fmt.Errorf("%s: %s rejects region %q: set s3.region to the bucket's region: %w", what, s.where, s.p.Region, err)
	}
	switch resp.StatusCode {
	case http.StatusForbidden:
		return s.denied(what, resp.Code, err)
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		// A proxy whose server is down, or a server starting or
		// overloaded: it answers, but only that it cannot serve now.
		return fmt.Errorf("%s: %w %s: it answers %d (%s), unavailable for now: check that the server runs: %w",
			what, ErrUnreachable, s.where, resp.StatusCode, resp.Code, err)
	}
	if resp.StatusCode == http.StatusBadRequest && strings.Contains(resp.Message, "HTTPS") {
		return fmt.Errorf("%s: %s speaks HTTPS: set s3.tls: true: %w", what, s.p.Endpoint, err)
	}

	var recErr tls.RecordHeaderError
	var unknownCA x509.UnknownAuthorityError
	var badHost x509.HostnameError
	var certErr *tls.CertificateVerificationError
	var alert tls.AlertError
	switch {
	case errors.As(err, &recErr), strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		return fmt.Errorf("%s: %s does not speak TLS: set s3.tls: false, or use its TLS port: %w", what, s.p.Endpoint, err)
	case errors.As(err, &unknownCA), errors.As(err, &certErr):
		return fmt.Errorf("%s: the certificate of %s is not trusted: set s3.ca_file to the CA that signed it: %w", what, s.p.Endpoint, err)
	case errors.As(err, &badHost):
		return fmt.Errorf("%s: the certificate of %s is not for that name: use the name it was issued for in s3.endpoint: %w", what, s.p.Endpoint, err)
	case errors.As(err, &alert):
		return fmt.Errorf("%s: %s refused the TLS handshake: check s3.tls and the server's TLS settings: %w", what, s.p.Endpoint, err)
	}
	if unreachable(err) {
		return fmt.Errorf("%s: %w %s: check s3.endpoint and that the server runs: %w", what, ErrUnreachable, s.p.Endpoint, err)
	}
	return fmt.Errorf("%s: %s: %w", what, s.where, err)
}

// unreachable reports whether err is the network's: a connection refused,
// reset or cut, a name that does not resolve, or a timeout.
func unreachable(err error) bool {
	var opErr *net.OpError
	var dnsErr *net.DNSError
	var netErr net.Error
	return errors.As(err, &opErr) || errors.As(err, &dnsErr) || (errors.As(err, &netErr) && netErr.Timeout()) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE) ||
		strings.Contains(err.Error(), "Connection closed by foreign host")
}

// dialFailed reports whether err happened before a connection was made.
func dialFailed(err error) bool {
	var opErr *net.OpError
	var dnsErr *net.DNSError
	return (errors.As(err, &opErr) && opErr.Op == "dial") || errors.As(err, &dnsErr) || errors.Is(err, context.DeadlineExceeded)
}

func (s *S3) denied(what, code string, err error) error {
	return fmt.Errorf("%s: access denied by %s (%s): check s3.access_key/secret_key and the key's rights on the bucket: %w", what, s.where, code, err)
}

// speaksTLS reports whether the endpoint completes a TLS handshake, to
// explain a plain HTTP request that a TLS server dropped.
func (s *S3) speaksTLS(ctx context.Context) bool {
	d := tls.Dialer{
		NetDialer: &net.Dialer{Timeout: s.p.Timeout},
		// Only a probe: nothing is sent over this connection.
		Config: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}, //nolint:gosec
	}
	c, err := d.DialContext(ctx, "tcp", s.p.Endpoint)
	if err != nil {
		return false
	}
	c.Close()
	return true
}
