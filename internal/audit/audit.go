// Package audit writes the append-only audit trail: one JSON object per line
// for every access to media or recordings, granted or refused.
package audit

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Event is one audit record.
type Event struct {
	Time   time.Time `json:"time"`
	Actor  string    `json:"actor"`            // token subject
	Role   string    `json:"role,omitempty"`   // token role
	Action string    `json:"action"`           // publish, view, unpublish, stop, ...
	Source string    `json:"source,omitempty"` // source name
	Via    string    `json:"via"`              // whip, whep, rtsp, api
	Remote string    `json:"remote,omitempty"` // peer address
	// Result is "ok" or "denied"; Reason says why when denied.
	Result  string `json:"result"`
	Reason  string `json:"reason,omitempty"`
	Session string `json:"session,omitempty"`
}

// Log appends events to a file.
type Log struct {
	mu   sync.Mutex
	w    io.Writer
	f    *os.File
	now  func() time.Time
	errs int
}

// Open opens (creating if needed) the audit file in append mode; "-" writes
// to standard error.
func Open(path string) (*Log, error) {
	if path == "-" {
		return &Log{w: os.Stderr, now: time.Now}, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	return &Log{w: f, f: f, now: time.Now}, nil
}

// Discard returns a log that keeps nothing, for tests that do not read it.
func Discard() *Log { return &Log{w: io.Discard, now: time.Now} }

// Write appends one event and syncs it to disk.
func (l *Log) Write(e Event) {
	if e.Time.IsZero() {
		e.Time = l.now().UTC()
	}
	if e.Result == "" {
		e.Result = "ok"
	}
	b, err := json.Marshal(e)
	if err != nil {
		return
	}
	b = append(b, '\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, err := l.w.Write(b); err != nil {
		l.errs++
		return
	}
	if l.f != nil {
		_ = l.f.Sync()
	}
}

// Errors returns how many events could not be written.
func (l *Log) Errors() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.errs
}

// Close closes the file.
func (l *Log) Close() error {
	if l.f != nil {
		return l.f.Close()
	}
	return nil
}
