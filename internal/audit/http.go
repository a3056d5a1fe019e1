package audit

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"
)

// Identify names who makes a request, from its token: the actor and role to
// audit, and the token's problem when it has one (no token, expired,
// revoked): the actor is then "anonymous".
type Identify func(r *http.Request) (actor, role string)

// HTTP audits every request h serves: one event with the real actor, the
// method, the path (never the query, which may carry a token), the status
// and the remote address; a status of 400 or more is a refusal whose reason
// is the first line of the answer. Handlers add what they know (the action,
// source and session) with Annotate.
//
// The access is fail-closed: the answer is held until its event is written,
// and when the audit log cannot be written the client gets 503 with the
// reason instead (functions registered with OnFailure undo what the
// handler set up). A WebSocket upgrade is audited when it is hijacked, and
// refused when that fails.
//
// A request without a valid identity (identify names no subject and no
// role) is one anyone can send as often as they like: every string field
// of its event is cut to 256 bytes, and its events are rate-limited per
// remote address and overall. A request held back is answered at once and
// counted in an anonymous-summary event of its address (see the package
// documentation); a connection upgrade always has its own event.
func HTTP(l *Log, identify Identify, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ev := &Event{Method: r.Method, Path: r.URL.Path, Remote: r.RemoteAddr, Via: "http"}
		ev.Actor, ev.Role = identify(r)
		if l.overRate(ev) {
			l.refuseOverRate(w, ev)
			return
		}
		a := &annotation{ev: ev}
		r = r.WithContext(context.WithValue(r.Context(), annotationKey{}, a))
		bw := &heldWriter{w: w, header: http.Header{}, status: http.StatusOK, log: l, a: a, hasBody: r.ContentLength != 0,
			anonymous: ev.Role == "" && (ev.Actor == "" || ev.Actor == "anonymous")}
		h.ServeHTTP(bw, r)
		if bw.hijacked {
			return
		}
		bw.finish()
	})
}

type annotationKey struct{}

type annotation struct {
	ev   *Event
	undo []func()
}

// Annotate returns the event of a request served through HTTP, for the
// handler to fill in (Action, Source, Session, Reason, Actor when the
// handler knows better); nil outside HTTP.
func Annotate(r *http.Request) *Event {
	if a, ok := r.Context().Value(annotationKey{}).(*annotation); ok {
		return a.ev
	}
	return nil
}

// OnFailure registers fn to run when the request's event cannot be written
// and its answer is withheld: it undoes what the handler set up (closes the
// session it opened).
func OnFailure(r *http.Request, fn func()) {
	if a, ok := r.Context().Value(annotationKey{}).(*annotation); ok {
		a.undo = append(a.undo, fn)
	}
}

// heldWriter holds a response until the request's event is written.
type heldWriter struct {
	w        http.ResponseWriter
	header   http.Header
	status   int
	wrote    bool
	body     bytes.Buffer
	hijacked bool
	log      *Log
	a        *annotation
	// streaming is set once Flush wrote the event and sent the answer so
	// far; what follows goes straight to the client. failed is the audit
	// error that withheld the answer.
	streaming bool
	failed    error
	// hasBody: the request came with a body, which a refusal leaves unread.
	hasBody bool
	// anonymous: the request has no valid identity.
	anonymous bool
}

func (b *heldWriter) Header() http.Header {
	if b.streaming {
		return b.w.Header() // trailers
	}
	return b.header
}

func (b *heldWriter) WriteHeader(status int) {
	if !b.wrote {
		b.status, b.wrote = status, true
	}
}

func (b *heldWriter) Write(p []byte) (int, error) {
	switch {
	case b.failed != nil:
		return 0, b.failed
	case b.streaming:
		return b.w.Write(p)
	}
	b.wrote = true
	return b.body.Write(p)
}

// Flush lets a handler stream a long answer (a recording): the event is
// written with the status set so far, then the answer is sent, and what
// the handler writes after goes straight to the client. When the event
// cannot be written the client gets 503 and later writes fail.
func (b *heldWriter) Flush() {
	if b.failed != nil || b.hijacked {
		return
	}
	if !b.streaming {
		if !b.finish() {
			return
		}
		b.streaming = true
	}
	if f, ok := b.w.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap returns the writer the answer goes to, for
// http.ResponseController: a long answer sets the connection's write
// deadline through it. Flush and Hijack are this writer's own, and the
// controller calls them first, so an answer is still held until its event
// is written.
func (b *heldWriter) Unwrap() http.ResponseWriter { return b.w }

// Hijack audits a connection upgrade (a WebSocket) before handing the
// connection over; it fails when the event cannot be written.
func (b *heldWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := b.w.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("audit: the connection cannot be hijacked")
	}
	ev := *b.a.ev
	ev.Status = http.StatusSwitchingProtocols
	if ev.Result == "" {
		ev.Result = "ok"
	}
	if b.anonymous {
		ev.clip(anonymousField)
	}
	if err := b.log.Write(ev); err != nil {
		b.fail(err)
		return nil, nil, err
	}
	for k, v := range b.header {
		b.w.Header()[k] = v
	}
	b.hijacked = true
	return hj.Hijack()
}

// finish writes the event (or counts a request without a valid identity
// for its summary), then sends the held answer, or 503 when the event could
// not be written (then it returns false).
func (b *heldWriter) finish() bool {
	if b.streaming || b.failed != nil {
		return b.failed == nil
	}
	ev := *b.a.ev
	ev.Status = b.status
	if ev.Result == "" {
		ev.Result = "ok"
		if b.status >= 400 {
			ev.Result = "denied"
		}
	}
	if ev.Result != "ok" && ev.Reason == "" {
		line, _, _ := strings.Cut(strings.TrimSpace(b.body.String()), "\n")
		ev.Reason = line
	}
	if b.anonymous {
		ev.clip(anonymousField)
		if !b.log.anon.admit(&ev) {
			b.send()
			return true
		}
	}
	if err := b.log.Write(ev); err != nil {
		b.fail(err)
		return false
	}
	b.send()
	return true
}

// send sends the held answer.
func (b *heldWriter) send() {
	h := b.w.Header()
	for k, v := range b.header {
		h[k] = v
	}
	b.closeIfRefused(b.status)
	b.w.WriteHeader(b.status)
	_, _ = b.w.Write(b.body.Bytes())
	b.body.Reset()
}

// fail refuses the access whose event could not be written.
func (b *heldWriter) fail(err error) {
	b.failed = fmt.Errorf("access refused: %w", err)
	for _, fn := range b.a.undo {
		fn()
	}
	h := b.w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Retry-After", "10")
	b.closeIfRefused(http.StatusServiceUnavailable)
	b.w.WriteHeader(http.StatusServiceUnavailable)
	fmt.Fprintf(b.w, "access refused: %v\n", err)
}

// closeIfRefused ends the connection after a refusal of a request with a body: the
// server would otherwise read what is left of the body (to keep the connection) until
// the server's read timeout, and a client that trickles it, or never sends it, would
// hold a connection per request for that long without any token.
func (b *heldWriter) closeIfRefused(status int) {
	if status >= 400 && b.hasBody {
		b.w.Header().Set("Connection", "close")
		_ = http.NewResponseController(b.w).SetReadDeadline(time.Now())
	}
}
