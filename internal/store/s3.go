package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/s3utils"
)

// S3Params configures an S3 store.
type S3Params struct {
	// Name identifies the store in logs and errors (e.g. "primary").
	Name string
	// Endpoint is the server's host:port, without a scheme.
	Endpoint string
	Bucket   string
	// Region is the bucket's region; empty means us-east-1, the default of
	// MinIO and versitygw.
	Region    string
	AccessKey string
	SecretKey string
	// TLS selects https. CAFile names a PEM file of extra CAs to trust (a
	// private CA or a self-signed server certificate);
	// InsecureSkipVerify accepts any certificate and is for tests only.
	TLS                bool
	CAFile             string
	InsecureSkipVerify bool
	// Prefix is put before every key, so several deployments can share a
	// bucket; keys given to and returned by the store never carry it.
	Prefix string
	// Timeout bounds connecting, the TLS handshake and the wait for each
	// response's headers (default 30s). A transfer itself is bounded by
	// the caller's context.
	Timeout time.Duration
	// ListPageSize is the number of keys asked for per list request
	// (default and S3 maximum 1000).
	ListPageSize int
}

// LogValue leaves the secret key out of logs.
func (p S3Params) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("name", p.Name),
		slog.String("endpoint", p.Endpoint),
		slog.String("bucket", p.Bucket),
		slog.String("region", p.Region),
		slog.String("access_key", p.AccessKey),
		slog.Bool("tls", p.TLS),
		slog.String("prefix", p.Prefix),
	)
}

// S3 stores objects in a bucket of an S3-compatible server.
//
// Put sends the content's SHA-256 twice, so the server refuses content that
// does not match it: as the signed payload hash (x-amz-content-sha256,
// checked by every server that verifies SigV4 payloads) and as an S3
// additional checksum (x-amz-checksum-sha256), which the server also keeps.
// The hex SHA-256 is kept as user metadata too (x-amz-meta-sha256), so
// Stat, Get and List report it from any server. Objects are written with
// one PUT each, which S3 limits to 5 GiB.
//
// Put never replaces an object. Its PUT carries If-None-Match: *, which
// MinIO and versitygw (and AWS S3) honour atomically: a second writer gets
// 412 Precondition Failed, and Put then compares SHA-256s. Check learns,
// once, whether the server honours the condition, by writing a probe
// object twice under .fieldvideo/ (a name the store keeps for itself) and
// deleting it. Until the server has been seen to honour it, and on a server
// that ignores or rejects it, Put first asks for the object (HEAD) and
// writes only when there is none. On a server that ignores the condition a
// small window remains: two writers of one key whose HEADs both come before
// either PUT could both write, the later replacing the earlier.
type S3 struct {
	p      S3Params
	client *minio.Client
	prefix string
	where  string       // "bucket B on https://host:port", for errors
	writes atomic.Int32 // a condWrites: what the server does with If-None-Match
}

// condWrites is what a server does with If-None-Match: * on PUT.
type condWrites = int32

const (
	condUnknown  condWrites = iota // not learnt yet
	condHonoured                   // refuses a PUT over an object with 412
	condIgnored                    // replaces the object
	condRejected                   // refuses the header itself (501)
)

const (
	// s3MaxSinglePut is the largest object S3 accepts in one PUT.
	s3MaxSinglePut = 5 << 30
	// s3MaxBufferedPut is the largest object without a given SHA-256 that
	// is not seekable and so is read into memory to hash it first.
	s3MaxBufferedPut = 64 << 20
	// s3SumMeta is the user metadata name that carries the hex SHA-256.
	s3SumMeta = "sha256"
	// s3ChecksumHeader carries the base64 SHA-256 the server verifies.
	s3ChecksumHeader = "x-amz-checksum-sha256"
	// s3Reserved is the key prefix the store keeps for itself: Put refuses
	// such keys and List leaves them out.
	s3Reserved = ".fieldvideo/"
	// s3ProbeKey is the object with which Check learns whether the server
	// honours If-None-Match.
	s3ProbeKey = s3Reserved + "conditional-write-probe"
)

var s3ProbeBody = []byte("fieldvideo: a probe that the server refuses to overwrite an object; it is deleted after use\n")

// NewS3 returns an S3 store. It does not contact the server: call Check at
// start to learn that the endpoint answers, the keys work and the bucket
// exists.
func NewS3(p S3Params) (*S3, error) {
	if p.Name == "" {
		p.Name = "s3"
	}
	if p.Endpoint == "" || strings.Contains(p.Endpoint, "://") || strings.Contains(p.Endpoint, "/") {
		return nil, fmt.Errorf("store %s: s3.endpoint %q must be host:port without a scheme or path (use s3.tls for https)", p.Name, p.Endpoint)
	}
	if _, _, err := net.SplitHostPort(p.Endpoint); err != nil {
		return nil, fmt.Errorf("store %s: s3.endpoint %q must be host:port: %w", p.Name, p.Endpoint, err)
	}
	if p.Bucket == "" {
		return nil, fmt.Errorf("store %s: s3.bucket is empty: name the bucket recordings go to", p.Name)
	}
	if err := s3utils.CheckValidBucketNameStrict(p.Bucket); err != nil {
		return nil, fmt.Errorf("store %s: s3.bucket %q is not a valid S3 bucket name: %w", p.Name, p.Bucket, err)
	}
	if p.AccessKey == "" || p.SecretKey == "" {
		return nil, fmt.Errorf("store %s: s3.access_key and s3.secret_key must both be set", p.Name)
	}
	if p.Region == "" {
		p.Region = "us-east-1"
	}
	if p.Timeout <= 0 {
		p.Timeout = 30 * time.Second
	}
	if p.ListPageSize <= 0 || p.ListPageSize > 1000 {
		p.ListPageSize = 1000
	}
	prefix := strings.Trim(p.Prefix, "/")
	if prefix != "" {
		if err := CheckKey(prefix); err != nil {
			return nil, fmt.Errorf("store %s: s3.prefix: %w", p.Name, err)
		}
		prefix += "/"
	}
	if (p.CAFile != "" || p.InsecureSkipVerify) && !p.TLS {
		return nil, fmt.Errorf("store %s: s3.ca_file and s3.insecure_skip_verify need s3.tls: true", p.Name)
	}

	tr, err := minio.DefaultTransport(p.TLS)
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", p.Name, err)
	}
	tr.Proxy = nil // a recording store is reached directly
	tr.DialContext = (&net.Dialer{Timeout: p.Timeout, KeepAlive: 30 * time.Second}).DialContext
	tr.TLSHandshakeTimeout = p.Timeout
	tr.ResponseHeaderTimeout = p.Timeout
	if p.TLS {
		if p.CAFile != "" {
			pem, err := os.ReadFile(p.CAFile)
			if err != nil {
				return nil, fmt.Errorf("store %s: read s3.ca_file: %w", p.Name, err)
			}
			pool, err := x509.SystemCertPool()
			if err != nil {
				pool = x509.NewCertPool()
			}
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("store %s: s3.ca_file %s holds no PEM certificate", p.Name, p.CAFile)
			}
			tr.TLSClientConfig.RootCAs = pool
		}
		tr.TLSClientConfig.InsecureSkipVerify = p.InsecureSkipVerify //nolint:gosec // an explicit, documented option
	}

	client, err := minio.New(p.Endpoint, &minio.Options{
		Creds:     credentials.NewStaticV4(p.AccessKey, p.SecretKey, ""),
		Secure:    p.TLS,
		Transport: tr,
		Region:    p.Region,
		// No retries inside a call: a stopped server fails fast, and the
		// caller (the uploader) retries with its own backoff.
		MaxRetries: 1,
	})
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", p.Name, err)
	}
	scheme := "http"
	if p.TLS {
		scheme = "https"
	}
	return &S3{
		p:      p,
		client: client,
		prefix: prefix,
		where:  fmt.Sprintf("bucket %q on %s://%s", p.Bucket, scheme, p.Endpoint),
	}, nil
}

// Name implements Store.
func (s *S3) Name() string { return s.p.Name }

// Check verifies that the endpoint answers, the keys are accepted and the
// bucket exists, by listing at most one key. An error wrapping
// ErrUnreachable says the server could not be reached; any other error is
// one of the settings.
//
// Until it has learnt it, Check also learns whether the server honours
// If-None-Match (see S3). That probe needs the right to write under the
// prefix; when it is refused, Put keeps asking for an object before
// writing it, and Check does not fail for it.
func (s *S3) Check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.p.Timeout)
	defer cancel()
	for o := range s.client.ListObjectsIter(ctx, s.p.Bucket, minio.ListObjectsOptions{
		Prefix: s.prefix, Recursive: true, MaxKeys: 1,
	}) {
		if o.Err != nil {
			err := s.explain("check", "", o.Err)
			if minio.ToErrorResponse(o.Err).Code == "" && !s.p.TLS && !dialFailed(o.Err) && s.speaksTLS(ctx) {
				return fmt.Errorf("store %s: check: %s speaks HTTPS: set s3.tls: true: %w", s.p.Name, s.p.Endpoint, o.Err)
			}
			return err
		}
		break
	}
	if err := ctx.Err(); err != nil {
		return s.explain("check", "", err)
	}
	if err := s.learnWrites(ctx); err != nil && (errors.Is(err, ErrUnreachable) || ctx.Err() != nil) {
		return err
	}
	return nil
}

// learnWrites writes the probe object twice with If-None-Match: *, to learn
// whether the server refuses the second PUT, and deletes it.
func (s *S3) learnWrites(ctx context.Context) error {
	if s.writes.Load() != condUnknown {
		return nil
	}
	raw := sha256.Sum256(s3ProbeBody)
	sum, b64 := hex.EncodeToString(raw[:]), base64.StdEncoding.EncodeToString(raw[:])
	obj := s.prefix + s3ProbeKey
	learnt, created := condUnknown, false
	for learnt == condUnknown {
		_, err := s.putObject(ctx, obj, bytes.NewReader(s3ProbeBody), int64(len(s3ProbeBody)), sum, b64, true)
		switch {
		case err == nil && created:
			learnt = condIgnored
		case err == nil:
			created = true
		case preconditionFailed(err):
			learnt = condHonoured
		case notImplemented(err):
			learnt = condRejected
		default:
			return s.explain("check: learn whether the server honours If-None-Match: put", s3ProbeKey, err)
		}
	}
	if created {
		// Best effort: a key may be allowed to write and not to delete.
		_ = s.client.RemoveObject(ctx, s.p.Bucket, obj, minio.RemoveObjectOptions{})
	}
	s.writes.CompareAndSwap(condUnknown, learnt)
	return nil
}

func (s *S3) object(key string) (string, error) {
	if err := CheckKey(key); err != nil {
		return "", err
	}
	if strings.HasPrefix(key, s3Reserved) {
		return "", fmt.Errorf("object key %q is under %s, which the S3 store keeps for itself", key, s3Reserved)
	}
	return s.prefix + key, nil
}

// Put implements Store.
func (s *S3) Put(ctx context.Context, key string, r io.Reader, size int64, sum string) error {
	obj, err := s.object(key)
	if err != nil {
		return err
	}
	switch {
	case size < 0:
		return fmt.Errorf("store %s: put %s: size %d is negative: give the content's length", s.p.Name, key, size)
	case size > s3MaxSinglePut:
		return fmt.Errorf("store %s: put %s: %d bytes is over the 5 GiB one S3 PUT takes: split the object", s.p.Name, key, size)
	}
	if sum == "" {
		if r, sum, err = hashContent(r, size); err != nil {
			return fmt.Errorf("store %s: put %s: %w", s.p.Name, key, err)
		}
	}
	raw, err := hex.DecodeString(sum)
	if err != nil || len(raw) != sha256.Size {
		return fmt.Errorf("store %s: put %s: SHA-256 %q is not 64 hex digits", s.p.Name, key, sum)
	}
	sum = hex.EncodeToString(raw) // lower case
	b64 := base64.StdEncoding.EncodeToString(raw)

	writes := s.writes.Load()
	if writes != condHonoured {
		// The server is not known to refuse a PUT over an object: look
		// first. An answer that does not tell (a key that may write but
		// not read) leaves it to the PUT and its If-None-Match.
		in, err := s.Stat(ctx, key)
		switch {
		case err == nil:
			return s.compare(ctx, key, in, sum, size)
		case errors.Is(err, ErrUnreachable), ctx.Err() != nil:
			return err
		}
	}
	ifNoneMatch := writes != condRejected

	// The reader is passed without its Seek method: minio-go seeks a
	// seekable body to offset 0 before sending, which would be wrong for
	// a reader positioned elsewhere.
	body := &sizedReader{r: r, want: size}
	info, err := s.putObject(ctx, obj, body, size, sum, b64, ifNoneMatch)
	if short := body.short.Load(); short != nil {
		return fmt.Errorf("store %s: put %s: %w; nothing was stored", s.p.Name, key, *short)
	}
	if err != nil {
		return s.putFailed(ctx, key, sum, size, ifNoneMatch, err)
	}
	if info.ChecksumSHA256 != "" && info.ChecksumSHA256 != b64 {
		return fmt.Errorf("store %s: put %s: %s stored SHA-256 %s, not the %s sent: the server is not trustworthy", s.p.Name, key, s.where, info.ChecksumSHA256, b64)
	}
	return nil
}

// putObject sends one PUT of obj. Given the hex SHA-256 and
// DisableContentSha256 (which turns off the chunked streaming signature),
// minio-go signs that hash as the payload hash; Core.PutObject is one PUT
// whatever the size.
func (s *S3) putObject(ctx context.Context, obj string, body io.Reader, size int64, sum, b64 string, ifNoneMatch bool) (minio.UploadInfo, error) {
	opts := minio.PutObjectOptions{
		ContentType:          "application/octet-stream",
		DisableContentSha256: true,
		UserMetadata: map[string]string{
			s3ChecksumHeader: b64,
			s3SumMeta:        sum,
		},
	}
	if ifNoneMatch {
		opts.SetMatchETagExcept("*")
	}
	return minio.Core{Client: s.client}.PutObject(ctx, s.p.Bucket, obj, body, size, "", sum, opts)
}

// putFailed explains a failed PUT. A PUT refused because an object is
// there, or one whose answer was lost, is settled by comparing SHA-256s.
func (s *S3) putFailed(ctx context.Context, key, sum string, size int64, ifNoneMatch bool, err error) error {
	switch {
	case ifNoneMatch && preconditionFailed(err):
		s.writes.CompareAndSwap(condUnknown, condHonoured)
		in, serr := s.Stat(ctx, key)
		if errors.Is(serr, ErrNotFound) {
			return fmt.Errorf("store %s: put %s: %s refused to replace an object that is gone now (deleted meanwhile?): retry the put", s.p.Name, key, s.where)
		}
		if serr != nil {
			return fmt.Errorf("store %s: put %s: an object is already there, and reading it to compare failed: %w", s.p.Name, key, serr)
		}
		return s.compare(ctx, key, in, sum, size)
	case ifNoneMatch && notImplemented(err):
		s.writes.Store(condRejected)
		return fmt.Errorf("store %s: put %s: %s does not take If-None-Match; nothing was stored: retry: the store now asks for an object before writing it: %w",
			s.p.Name, key, s.where, err)
	}
	xerr := s.explain("put", key, err)
	if errors.Is(xerr, ErrUnreachable) && ctx.Err() == nil {
		// The server may have stored the object and the answer been lost,
		// or it may have refused the PUT and closed the connection before
		// the whole body was sent: what is there now tells.
		if in, serr := s.Stat(ctx, key); serr == nil {
			if cerr := s.compare(ctx, key, in, sum, size); cerr == nil || errors.Is(cerr, ErrExists) {
				return cerr
			}
		}
	}
	return xerr
}

// compare checks the object in describes against offered content; an
// object stored without a SHA-256 is read to hash it.
func (s *S3) compare(ctx context.Context, key string, in Info, sum string, size int64) error {
	stored := in.SHA256
	if stored == "" {
		var err error
		if stored, err = s.hashObject(ctx, key); err != nil {
			return fmt.Errorf("store %s: put %s: an object without a known SHA-256 is already there, and reading it to compare failed: %w", s.p.Name, key, err)
		}
	}
	if stored == sum && in.Size == size {
		return nil
	}
	return existsError(s.p.Name, key, stored, in.Size, sum, size)
}

func (s *S3) hashObject(ctx context.Context, key string) (string, error) {
	rc, _, err := s.Get(ctx, key)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	h := sha256.New()
	if _, err := io.Copy(h, rc); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func preconditionFailed(err error) bool {
	resp := minio.ToErrorResponse(err)
	return resp.Code == "PreconditionFailed" || resp.StatusCode == http.StatusPreconditionFailed
}

func notImplemented(err error) bool {
	resp := minio.ToErrorResponse(err)
	return resp.Code == "NotImplemented" || resp.StatusCode == http.StatusNotImplemented
}

// hashContent returns the SHA-256 of the next size bytes of r and a reader
// that yields them again.
func hashContent(r io.Reader, size int64) (io.Reader, string, error) {
	h := sha256.New()
	if rs, ok := r.(io.ReadSeeker); ok {
		start, err := rs.Seek(0, io.SeekCurrent)
		if err == nil {
			if _, err := io.CopyN(h, rs, size); err != nil {
				return nil, "", fmt.Errorf("read the content to hash it: %w", err)
			}
			if _, err := rs.Seek(start, io.SeekStart); err != nil {
				return nil, "", fmt.Errorf("seek back after hashing: %w", err)
			}
			return rs, hex.EncodeToString(h.Sum(nil)), nil
		}
	}
	if size > s3MaxBufferedPut {
		return nil, "", fmt.Errorf("%d bytes from a reader that cannot seek and no SHA-256 given: pass the content's SHA-256", size)
	}
	buf := make([]byte, size)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, "", fmt.Errorf("read %d bytes to hash them: %w", size, err)
	}
	h.Write(buf)
	return bytes.NewReader(buf), hex.EncodeToString(h.Sum(nil)), nil
}

// Get implements Store. The returned reader checks the content against the
// SHA-256 the object was stored with, and fails at the end on a mismatch.
func (s *S3) Get(ctx context.Context, key string) (io.ReadCloser, Info, error) {
	obj, err := s.object(key)
	if err != nil {
		return nil, Info{}, err
	}
	o, err := s.client.GetObject(ctx, s.p.Bucket, obj, minio.GetObjectOptions{Checksum: true})
	if err != nil {
		return nil, Info{}, s.explain("get", key, err)
	}
	oi, err := o.Stat() // sends the GET
	if err != nil {
		o.Close()
		return nil, Info{}, s.explain("get", key, err)
	}
	in := s.info(key, oi)
	rc := io.ReadCloser(o)
	if in.SHA256 != "" {
		rc = &verifyingReader{rc: o, h: sha256.New(), want: in.SHA256, what: fmt.Sprintf("store %s: get %s", s.p.Name, key)}
	}
	return rc, in, nil
}

// Stat implements Store.
func (s *S3) Stat(ctx context.Context, key string) (Info, error) {
	obj, err := s.object(key)
	if err != nil {
		return Info{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.p.Timeout)
	defer cancel()
	oi, err := s.client.StatObject(ctx, s.p.Bucket, obj, minio.StatObjectOptions{Checksum: true})
	if err != nil {
		return Info{}, s.explain("stat", key, err)
	}
	return s.info(key, oi), nil
}

// List implements Store. S3 lists keys in byte order, which is the order of
// Go strings.
//
// MinIO puts user metadata, and so the SHA-256, in a listing when asked
// (its metadata=true extension, which other servers ignore). For objects
// listed without it, the SHA-256 is read with HEAD requests, a few at a
// time, one page of keys after another.
func (s *S3) List(ctx context.Context, prefix string, fn func(Info) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batch := make([]Info, 0, s.p.ListPageSize)
	flush := func() error {
		if err := s.fillSums(ctx, batch); err != nil {
			return err
		}
		for _, in := range batch {
			if in.Key == "" {
				continue // deleted meanwhile
			}
			if err := fn(in); err != nil {
				return err
			}
		}
		batch = batch[:0]
		return nil
	}
	for oi := range s.client.ListObjectsIter(ctx, s.p.Bucket, minio.ListObjectsOptions{
		Prefix:       s.prefix + prefix,
		Recursive:    true,
		MaxKeys:      s.p.ListPageSize,
		WithMetadata: true,
	}) {
		if oi.Err != nil {
			return s.explain("list", prefix, oi.Err)
		}
		if strings.HasPrefix(oi.Key, s.prefix+s3Reserved) {
			continue
		}
		batch = append(batch, s.info(strings.TrimPrefix(oi.Key, s.prefix), oi))
		if len(batch) == cap(batch) {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	// The listing ends silently when the context does.
	if err := ctx.Err(); err != nil {
		return s.explain("list", prefix, err)
	}
	return flush()
}

// s3ListStats is the number of HEAD requests List has in flight at once.
const s3ListStats = 8

// fillSums reads the SHA-256 of the listed objects that lack one. An object
// deleted meanwhile gets an empty Key.
func (s *S3) fillSums(ctx context.Context, batch []Info) error {
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	sem := make(chan struct{}, s3ListStats)
	for i := range batch {
		if batch[i].SHA256 != "" {
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			st, err := s.Stat(ctx, batch[i].Key)
			switch {
			case errors.Is(err, ErrNotFound):
				batch[i].Key = ""
			case err != nil:
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			default:
				batch[i].SHA256 = st.SHA256
			}
		})
	}
	wg.Wait()
	return firstErr
}

// Delete implements Store.
func (s *S3) Delete(ctx context.Context, key string) error {
	obj, err := s.object(key)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.p.Timeout)
	defer cancel()
	err = s.client.RemoveObject(ctx, s.p.Bucket, obj, minio.RemoveObjectOptions{})
	if err != nil && !errors.Is(s.explain("delete", key, err), ErrNotFound) {
		return s.explain("delete", key, err)
	}
	return nil
}

// info converts minio-go's object description. The SHA-256 comes from the
// user metadata, else from the server's additional checksum.
func (s *S3) info(key string, oi minio.ObjectInfo) Info {
	in := Info{Key: key, Size: oi.Size, Modified: oi.LastModified}
	for k, v := range oi.UserMetadata {
		k = strings.ToLower(k)
		if k == s3SumMeta || k == "x-amz-meta-"+s3SumMeta {
			if b, err := hex.DecodeString(v); err == nil && len(b) == sha256.Size {
				in.SHA256 = strings.ToLower(v)
			}
		}
	}
	if in.SHA256 == "" && oi.ChecksumSHA256 != "" {
		// A full-object checksum is plain base64; a multipart one ends
		// in "-<parts>" and is not the content's SHA-256.
		if b, err := base64.StdEncoding.DecodeString(oi.ChecksumSHA256); err == nil && len(b) == sha256.Size {
			in.SHA256 = hex.EncodeToString(b)
		}
	}
	return in
}

// sizedReader notes content that ends before its announced size, which
// the HTTP client reports only as a broken connection.
type sizedReader struct {
	r     io.Reader
	want  int64
	n     int64
	short atomic.Pointer[error]
}

func (c *sizedReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if err == io.EOF && c.n < c.want {
		short := fmt.Errorf("the content ended after %d of the %d bytes given as its size", c.n, c.want)
		c.short.Store(&short)
		return n, short
	}
	return n, err
}

// verifyingReader hashes what it reads and fails at the end when the hash
// is not the expected one.
type verifyingReader struct {
	rc   io.ReadCloser
	h    hash.Hash
	want string
	what string
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	n, err := v.rc.Read(p)
	v.h.Write(p[:n])
	if err != nil && err != io.EOF {
		// minio-go checks the server's checksum itself when it has one.
		if strings.Contains(err.Error(), "checksum mismatch") {
			return n, fmt.Errorf("%s: the object is damaged: %w: %w", v.what, ErrChecksum, err)
		}
		return n, fmt.Errorf("%s: %w", v.what, err)
	}
	if err == io.EOF {
		if got := hex.EncodeToString(v.h.Sum(nil)); got != v.want {
			return n, fmt.Errorf("%s: the object is damaged: %w: got %s, stored %s", v.what, ErrChecksum, got, v.want)
		}
	}
	return n, err
}

func (v *verifyingReader) Close() error { return v.rc.Close() }
