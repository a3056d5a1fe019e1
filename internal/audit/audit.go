// Package audit writes the append-only audit trail: one JSON object per line
// for every access to media or recordings, granted or refused. The trail is
// tamper-evident, complete and fails closed.
//
// # Lines
//
// Every line starts with its sequence number and the SHA-256 (hex) of the
// exact bytes of the line before it, without that line's newline:
//
//	{"seq":42,"prev":"<64 hex>","time":"…","actor":"eoc-wall","action":"view",…,"result":"ok"}
//
// Seq numbers count every line of the chain, across restarts and across the
// files of a rotated set. Lines that are not events have a "kind":
//
//   - start: the first line of a new chain (seq 1, prev all zeros; or, when
//     the file already held lines that are not chained, prev is the hash of
//     the last of them).
//   - restart: a new process continues the chain of the file. When the
//     process before it stopped in the middle of a line, that torn line is
//     kept, ended with a newline, and described by torn_bytes and torn_sha256.
//   - reopen: the path no longer named the open file (renamed by log
//     rotation, replaced, removed or truncated); this is the first line of the
//     new content and continues the chain of the old file.
//   - gap: events that could not be written (disk full, I/O error); Write
//     returned an error for each, so their access was refused.
//   - checkpoint: an ed25519 signature over the checkpoint line itself up to
//     its "sig" field, which includes the seq and hash of the line before it
//     (the chain head). Checkpoints are written every checkpoint interval
//     while there are unsigned lines, and on Close.
//
// # Requests without a valid identity
//
// Anyone can send requests without a valid identity (no token, or one that
// is refused), as many as they like. HTTP cuts every string field of their
// events to 256 bytes, and each event takes a token from two buckets: one
// of its remote address (an IPv4 address or an IPv6 /64 prefix; 2 events a
// second after a burst of 10) and one of all addresses (10 a second after a
// burst of 40). Without both, the request is answered without an event of
// its own and counted; within 10 seconds of the first request held back
// (and on Close) the counts are written as anonymous-summary events, one
// for each of the 8 addresses with the most and one for all the others:
//
//	{"seq":…,"prev":"…","time":"…","actor":"anonymous","action":"anonymous-summary","via":"http",
//	 "remote":"203.0.113.7","result":"denied","reason":"1234 more requests without a valid identity (1234 refused) from 203.0.113.7 between … and …, last GET /v1/sources/xx (404)",
//	 "method":"GET","path":"/v1/sources/xx","status":404,"count":1234,"refused":1234,"since":"…","until":"…"}
//
// count is the number of requests held back and refused how many of them
// had a status of 400 or more (result is "denied" when any had); since and
// until are when the first and the last came; method, path and status are
// those of the last. The summary of all the other addresses has no remote.
// Requests with a valid identity, and connection upgrades, always have
// their own event, in full. Requests that do not come through HTTP (RTSP)
// go through WriteAnonymous when they have no valid identity: they share the
// buckets of their address and of all addresses, and their summaries carry
// the via of the address's last request.
//
// # Limited roles
//
// Params.Limits bounds the requests of each identity (role and subject) of
// the roles it names: past its burst, a request over its rate is refused
// with 429 before it is served, and counted; within 10 seconds the counts are
// written as rate-limited events, one for each of the 8 identities with the
// most and one for all the others:
//
//	{"seq":…,"prev":"…","time":"…","actor":"phone7","role":"responder","action":"rate-limited","via":"http",
//	 "result":"denied","reason":"1234 requests of phone7 refused over the rate of 20 a second between … and …, last GET /v1/sources",
//	 "method":"GET","path":"/v1/sources","status":429,"count":1234,"refused":1234,"since":"…","until":"…"}
//
// Every request that is served has its own event.
//
// # Verifying
//
// Verify walks the chain and names the first line that does not follow the
// last good line A (seq a, hash h). For a line L with seq s and prev p:
//
//   - s = a+1 and p = h: L is good.
//   - s = a+1, p ≠ h: if the next line links to L (or L is a checkpoint with
//     a valid signature) L is genuine, so A was altered; if the next line
//     instead continues from A, L was inserted; otherwise L was altered.
//   - s > a+1: if a later line continues from A, the lines were swapped (the
//     line after that links to L), L was inserted (no line links to L), or
//     lines were moved; if L's successor has seq a+2, L's seq was altered;
//     otherwise s-a-1 lines are missing.
//   - s = a with the same prev as A: two lines claim one place; the one the
//     next line links to is genuine and the other inserted.
//   - s < a: a line moved or copied here (inserted, when the next line
//     continues from A); seq 1 starts a new chain that is not linked.
//   - a line that is not a chained audit line is inserted when the next line
//     continues from A, altered when the next line has seq a+2, and a torn
//     line when the line after it is a marker that describes its length and
//     hash (or it is the last line and has no newline).
//
// A trail must begin with a start or reopen line; any other first line means
// lines before it are missing. Every checkpoint signature is checked. Lines
// after the last checkpoint are chained but not signed: whoever can write the
// file can rewrite or drop them without detection, which the report states.
package audit

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
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
	// Method, Path and Status describe an HTTP request.
	Method string `json:"method,omitempty"`
	Path   string `json:"path,omitempty"`
	Status int    `json:"status,omitempty"`
	// Count, Refused, Since and Until are set in an anonymous-summary: how
	// many requests it counts, how many of them were refused, and when the
	// first and the last came.
	Count   int       `json:"count,omitempty"`
	Refused int       `json:"refused,omitempty"`
	Since   time.Time `json:"since,omitzero"`
	Until   time.Time `json:"until,omitzero"`
}

// clip shortens every string field to n bytes, marked as clipped.
func (e *Event) clip(n int) {
	for _, s := range []*string{&e.Actor, &e.Role, &e.Action, &e.Source, &e.Via, &e.Remote,
		&e.Result, &e.Reason, &e.Session, &e.Method, &e.Path} {
		*s = clipTo(*s, n)
	}
}

// Params configure Open.
type Params struct {
	// File is the audit log; "-" writes the chained lines to standard error
	// (not synced, never reopened).
	File string
	// KeyFile holds the ed25519 key that signs checkpoints; it is created
	// with a fresh random key when missing, and its public key is written to
	// KeyFile+".pub". Empty means no checkpoints are written.
	KeyFile string
	// CheckpointInterval is how often unsigned lines are signed; 0 means 1m.
	CheckpointInterval time.Duration
	// Log receives the ALARM lines when the trail cannot be written.
	Log *slog.Logger
	// Now returns the time of events and markers; nil means time.Now.
	Now func() time.Time
	// Limits bound the HTTP requests of each identity of a role (the roles
	// of tokens carried in the field, which a lost device exposes): the
	// requests over its rate are refused with 429 and counted in a
	// rate-limited event per identity every 10 seconds, so that no such
	// token can fill the trail's disk and lock everyone out.
	Limits map[string]Limit
}

// ErrClosed is returned by Write after Close.
var ErrClosed = errors.New("audit log is closed; access is refused")

// maxBatch bounds how many events share one write and fsync.
const maxBatch = 512

// alarmEvery is the least time between two ALARM lines.
const alarmEvery = time.Minute

// Log appends chained events to a file. Writes from many goroutines are
// committed in groups: one goroutine (run) writes and fsyncs each group, and
// every Write returns once its own line is durable.
type Log struct {
	p        Params
	log      *slog.Logger
	now      func() time.Time
	key      ed25519.PrivateKey // nil: no checkpoints
	keyID    string
	discard  bool
	interval time.Duration

	// mu guards closed. Write and Checkpoint hold it shared while handing a
	// request to run, so that Close, holding it exclusively, knows that no
	// request arrives after it closes reqs.
	mu     sync.RWMutex
	closed bool
	reqs   chan *request
	ckpts  chan chan error
	done   chan struct{} // closed when run has returned
	endErr error         // set by run before done is closed

	h health

	// anon limits the events of requests without a valid identity (HTTP);
	// nil for Discard.
	anon *eventLimit
	// limited limits the requests of the identities of Params.LimitedRoles
	limited *eventLimit

	// s is owned by run (and by Open before run starts).
	s sink
}

// request is one event waiting for its group commit.
type request struct {
	body []byte
	done chan error
}

var requestPool = sync.Pool{New: func() any { return &request{done: make(chan error, 1)} }}

// health is the alarm state, read by any goroutine.
type health struct {
	mu       sync.Mutex
	errs     int   // events not written, ever
	last     error // nil while the trail is writable
	alarmAt  time.Time
	refused  int // events refused since the trail failed
	silenced int // failures not logged since alarmAt
}

// Open opens (creating if needed) the audit log, continuing the chain of an
// existing file, and loads (creating if needed) the signing key. A trail that
// cannot be written at once (a full disk) is not an error here: Open returns
// the log, Healthy reports the problem, and Write fails until it is fixed.
func Open(p Params) (*Log, error) {
	if p.File == "" {
		return nil, errors.New("audit log: no file given; use a path, or - for standard error")
	}
	if p.CheckpointInterval < 0 {
		return nil, fmt.Errorf("audit log: checkpoint interval %s is negative", p.CheckpointInterval)
	}
	l := &Log{p: p, log: p.Log, now: p.Now, interval: p.CheckpointInterval,
		reqs: make(chan *request, maxBatch), ckpts: make(chan chan error), done: make(chan struct{})}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	if l.now == nil {
		l.now = time.Now
	}
	if l.interval == 0 {
		l.interval = time.Minute
	}
	if p.KeyFile != "" {
		key, err := loadSigningKey(p.KeyFile, l.log)
		if err != nil {
			return nil, err
		}
		l.key = key
		l.keyID = keyID(key.Public().(ed25519.PublicKey))
	}
	if err := l.s.open(l); err != nil {
		return nil, err
	}
	l.anon = newEventLimit(l, anonymousRules)
	if len(p.Limits) > 0 {
		l.limited = newEventLimit(l, limitedRules(p.Limits))
	}
	_ = l.commit(nil, false) // the start or restart line; a failure is an alarm
	go l.run()
	return l, nil
}

// Discard returns a log that keeps nothing, for tests that do not read it.
func Discard() *Log {
	return &Log{discard: true, now: time.Now, log: slog.New(slog.DiscardHandler)}
}

// Write appends one event and returns once it is durable (written and
// fsynced). An error means the event is not in the trail: the caller must
// refuse the access it describes.
func (l *Log) Write(e Event) error {
	if l.discard {
		return nil
	}
	if e.Time.IsZero() {
		e.Time = l.now().UTC()
	}
	if e.Result == "" {
		e.Result = "ok"
	}
	e.clip(maxField)
	body, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("audit log: event cannot be encoded (%w); access is refused", err)
	}
	r := requestPool.Get().(*request)
	r.body = body
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		requestPool.Put(r)
		l.h.mu.Lock()
		l.h.errs++
		l.h.mu.Unlock()
		return fmt.Errorf("audit log %s: %w", l.p.File, ErrClosed)
	}
	l.reqs <- r
	l.mu.RUnlock()
	err = <-r.done
	r.body = nil
	requestPool.Put(r)
	return err
}

// Checkpoint signs the chain head now, when there are unsigned lines.
func (l *Log) Checkpoint() error {
	if l.discard || l.key == nil {
		return nil
	}
	ch := make(chan error, 1)
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return fmt.Errorf("audit log %s: %w", l.p.File, ErrClosed)
	}
	l.ckpts <- ch
	l.mu.RUnlock()
	return <-ch
}

// Errors returns how many events could not be written.
func (l *Log) Errors() int {
	l.h.mu.Lock()
	defer l.h.mu.Unlock()
	return l.h.errs
}

// Healthy returns nil while the trail is writable, and otherwise the error
// of the last failed write (which says what to do).
func (l *Log) Healthy() error {
	l.h.mu.Lock()
	defer l.h.mu.Unlock()
	return l.h.last
}

// Close writes the summaries of the requests held back (see HTTP), a final
// checkpoint, and closes the file. Writes after Close fail with ErrClosed.
func (l *Log) Close() error {
	if l.discard {
		return nil
	}
	serr := errors.Join(l.anon.close(), l.limited.close())
	l.mu.Lock()
	if !l.closed {
		l.closed = true
		close(l.reqs)
	}
	l.mu.Unlock()
	<-l.done
	if l.endErr != nil {
		return l.endErr
	}
	return serr
}

// run commits the requests in groups and writes the checkpoints.
func (l *Log) run() {
	defer close(l.done)
	t := time.NewTicker(l.interval)
	defer t.Stop()
	batch := make([]*request, 0, maxBatch)
	for {
		select {
		case r, ok := <-l.reqs:
			if !ok {
				l.endErr = l.finish()
				return
			}
			batch = append(batch[:0], r)
		more:
			for len(batch) < maxBatch {
				select {
				case r, ok := <-l.reqs:
					if !ok {
						break more
					}
					batch = append(batch, r)
				default:
					break more
				}
			}
			err := l.commit(batch, false)
			for _, r := range batch {
				r.done <- err
			}
		case ch := <-l.ckpts:
			ch <- l.checkpoint()
		case <-t.C:
			if l.s.unsigned > 0 || l.s.owed() {
				_ = l.commit(nil, l.key != nil)
			}
		}
	}
}

// checkpoint signs the head when lines are unsigned or owed.
func (l *Log) checkpoint() error {
	if l.s.unsigned == 0 && !l.s.owed() {
		return nil
	}
	return l.commit(nil, l.key != nil)
}

// finish writes the last checkpoint and closes the file.
func (l *Log) finish() error {
	err := l.checkpoint()
	if cerr := l.s.close(); err == nil {
		err = cerr
	}
	return err
}

// failed records that events could not be written because of err, logs a
// rate-limited ALARM and returns err.
func (l *Log) failed(err error, events int) error {
	l.s.lost += events
	if l.s.lostSince.IsZero() && events > 0 {
		l.s.lostSince = l.now().UTC()
	}
	l.s.lostCause = cause(err)
	h := &l.h
	h.mu.Lock()
	h.errs += events
	h.refused += events
	first := h.last == nil
	h.last = err
	now := time.Now()
	logIt := first || now.Sub(h.alarmAt) >= alarmEvery
	silenced := h.silenced
	if logIt {
		h.alarmAt, h.silenced = now, 0
	} else {
		h.silenced++
	}
	refused := h.refused
	h.mu.Unlock()
	if logIt {
		l.log.Error("ALARM: "+err.Error(), "component", "audit", "file", l.p.File,
			"refused_events", refused, "failures_not_logged", silenced)
	}
	return err
}

// recovered clears the alarm after a successful write.
func (l *Log) recovered() {
	h := &l.h
	h.mu.Lock()
	was, refused := h.last, h.refused
	h.last, h.refused, h.silenced = nil, 0, 0
	h.mu.Unlock()
	if was != nil {
		l.log.Warn("audit log is writable again", "component", "audit", "file", l.p.File,
			"refused_events", refused, "was", was.Error())
	}
}
