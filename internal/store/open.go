package store

import (
	"context"
	"fmt"
	"time"

	"fieldvideo/internal/conf"
)

// Open returns the store c describes. An S3 store is checked at once — the
// endpoint answers, the keys work, the bucket exists — so that bad settings
// fail at start with a reason instead of filling the spool silently.
func Open(ctx context.Context, name string, c conf.StoreConf) (Store, error) {
	switch c.Type {
	case "fs":
		return NewFS(name, c.Path)
	case "s3":
		s, err := NewS3(S3Params{
			Name: name, Endpoint: c.S3.Endpoint, Bucket: c.S3.Bucket, Region: c.S3.Region,
			AccessKey: c.S3.AccessKey, SecretKey: c.S3.SecretKey, TLS: c.S3.TLS, CAFile: c.S3.CAFile,
			InsecureSkipVerify: c.S3.InsecureSkipVerify, Prefix: c.S3.Prefix,
		})
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		if err := s.Check(ctx); err != nil {
			return nil, err
		}
		return s, nil
	}
	return nil, fmt.Errorf("store %s: type %q: use fs or s3", name, c.Type)
}
