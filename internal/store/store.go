// Package store is where recordings go: one small interface with a
// filesystem implementation (the embedded default) and an S3 one.
//
// Keys are slash-separated paths such as
// rec/<incident>/<source>/2026/11/23/04/<start-unix-ms>-<duration-ms>.mp4;
// listing by prefix answers "what exists for this source in this hour".
package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// ErrNotFound is returned for a key that does not exist.
var ErrNotFound = errors.New("object not found")

// ErrChecksum is returned when content does not match its expected SHA-256:
// the data is damaged, and sending the same bytes again will not help.
var ErrChecksum = errors.New("content does not match its SHA-256")

// ErrExists is returned by Put when the key already holds different
// content. Recordings are evidence and are never overwritten: the caller
// keeps its content and raises an alarm.
var ErrExists = errors.New("the key already holds different content")

// ErrUnreachable is returned when a store's server cannot be reached: the
// connection is refused or reset, the name does not resolve, or no answer
// comes in time. It is a state of the network or the server, not of the
// settings, and may pass; answers that refuse (wrong keys, no such bucket,
// a certificate that is not trusted) are configuration errors and never
// wrap it.
var ErrUnreachable = errors.New("cannot reach")

// Info describes a stored object.
type Info struct {
	Key      string
	Size     int64
	Modified time.Time
	// SHA256 is the hex SHA-256 of the content as the store verified it on
	// upload; empty when the store does not know it.
	SHA256 string
}

// Store is an object store.
type Store interface {
	// Name identifies the store in logs and metrics (e.g. "primary").
	Name() string
	// Put stores size bytes from r at key. When sha256 (hex) is not empty
	// the store verifies the content against it and refuses a mismatch, so
	// a stored object is known to be intact.
	//
	// Put never replaces an object. When key already holds content of the
	// same SHA-256 and size, Put returns nil (a retry, e.g. after a lost
	// answer), whether or not it read r; when it holds different content,
	// Put returns an error wrapping ErrExists that names both SHA-256s, and
	// the stored object is unchanged.
	Put(ctx context.Context, key string, r io.Reader, size int64, sha256 string) error
	// Get opens an object for reading.
	Get(ctx context.Context, key string) (io.ReadCloser, Info, error)
	// Stat describes an object, or returns ErrNotFound.
	Stat(ctx context.Context, key string) (Info, error)
	// List calls fn for every object whose key starts with prefix, in key
	// order, until fn returns an error.
	List(ctx context.Context, prefix string, fn func(Info) error) error
	// Delete removes an object; deleting a missing object is not an error.
	Delete(ctx context.Context, key string) error
}

// existsError is the error of a Put that found different content at key.
func existsError(store, key, stored string, storedSize int64, offered string, offeredSize int64) error {
	return fmt.Errorf("store %s: put %s: %w: stored SHA-256 %s (%d bytes), offered SHA-256 %s (%d bytes); "+
		"recordings are never overwritten: keep the offered content and raise an alarm",
		store, key, ErrExists, stored, storedSize, offered, offeredSize)
}

// CheckKey refuses keys that could escape a store's namespace or that S3
// would treat differently from a filesystem.
func CheckKey(key string) error {
	switch {
	case key == "":
		return errors.New("empty object key")
	case len(key) > 1024:
		return fmt.Errorf("object key of %d bytes; the limit is 1024", len(key))
	case strings.HasPrefix(key, "/"), strings.HasSuffix(key, "/"):
		return fmt.Errorf("object key %q starts or ends with /", key)
	}
	for _, part := range strings.Split(key, "/") {
		if part == "" || part == "." || part == ".." {
			return fmt.Errorf("object key %q has an empty, . or .. segment", key)
		}
	}
	for _, r := range key {
		if r < 0x20 || r == 0x7f || r == '\\' {
			return fmt.Errorf("object key %q has a control character or backslash", key)
		}
	}
	return nil
}
