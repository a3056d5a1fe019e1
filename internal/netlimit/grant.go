package netlimit

import (
	"context"
	"net"
	"net/http"
	"time"
)

// RequestBy sets the request deadline (Conn.SetRequestDeadline) of the
// Listener connection nc is, or wraps through NetConn as TLS and WebSocket
// connections do; the zero time grants the connection its place: it is no
// longer closed for want of a request, nor closed to make room for a
// newcomer at MaxConns. It reports whether nc is such a connection.
func RequestBy(nc net.Conn, t time.Time) bool {
	for nc != nil {
		if c, ok := nc.(*Conn); ok {
			_ = c.SetRequestDeadline(t)
			return true
		}
		u, ok := nc.(interface{ NetConn() net.Conn })
		if !ok {
			return false
		}
		nc = u.NetConn()
	}
	return false
}

type connKeyType struct{}

// ConnContext is an http.Server's ConnContext that keeps each request's
// connection for GrantRequest.
func ConnContext(ctx context.Context, nc net.Conn) context.Context {
	return context.WithValue(ctx, connKeyType{}, nc)
}

// GrantRequest grants the connection r came on its place (RequestBy with
// the zero time), once r has shown the server a valid credential; it
// reports whether there was a Listener connection to grant.
func GrantRequest(r *http.Request) bool {
	nc, _ := r.Context().Value(connKeyType{}).(net.Conn)
	return RequestBy(nc, time.Time{})
}
