package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"fieldvideo/internal/conf"
)

// checker is a store that can tell whether it works now.
type checker interface {
	Store
	Check(ctx context.Context) error
}

// Open returns the store c describes, checked at once — a directory that
// can be written; an S3 endpoint that answers, keys that work, a bucket that
// exists — so that bad settings fail at start with a reason instead of
// filling the spool silently.
//
// When the check fails only because the server cannot be reached (the
// error wraps ErrUnreachable: an off-site S3 during a WAN outage), Open
// returns the usable store and that error: callers may start degraded and
// retry, calling Check to learn when the site is back. Any other failure is
// one of the settings: Open returns nil and the error.
func Open(ctx context.Context, name string, c conf.StoreConf) (Store, error) {
	var s checker
	switch c.Type {
	case "fs":
		fs, err := NewFS(name, c.Path)
		if err != nil {
			return nil, err
		}
		s = fs
	case "s3":
		s3, err := NewS3(S3Params{
			Name: name, Endpoint: c.S3.Endpoint, Bucket: c.S3.Bucket, Region: c.S3.Region,
			AccessKey: c.S3.AccessKey, SecretKey: c.S3.SecretKey, TLS: c.S3.TLS, CAFile: c.S3.CAFile,
			InsecureSkipVerify: c.S3.InsecureSkipVerify, Prefix: c.S3.Prefix,
		})
		if err != nil {
			return nil, err
		}
		s = s3
	default:
		return nil, fmt.Errorf("store %s: type %q: use fs or s3", name, c.Type)
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	switch err := s.Check(ctx); {
	case err == nil:
		return s, nil
	case errors.Is(err, ErrUnreachable):
		return s, err
	default:
		return nil, err
	}
}
