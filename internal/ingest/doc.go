// Package ingest is the RTSP edge of cmd/ingest. It pulls RTSP from
// configured cameras (reconnecting with capped exponential backoff), accepts
// RTSP pushes (ANNOUNCE/RECORD) from encoders, phones and ffmpeg, and serves
// every source back to RTSP players (DESCRIBE/SETUP/PLAY).
//
// Every source, pulled or pushed, has one stream.Stream for the life of the
// process. A reconnecting camera or publisher restarts the same stream, so
// its readers (the WHIP uplink, the recorder, RTSP players) re-anchor instead
// of starting over. Packets become units with one unit.Assembler per track;
// H.264 and H.265 keyframes that lack in-band parameter sets get them
// prepended, because browsers cannot decode an IDR without them.
//
// Access is by token: the JWT is the RTSP password (Basic authentication, any
// user name; Digest cannot carry it), or the token query parameter
// (rtsp://host:8554/source?token=JWT) for clients that cut credentials short:
// ffmpeg and ffprobe send at most 127 bytes of user:password, less than a
// JWT. The token query never goes back out: DESCRIBE answers with a
// Content-Base without it, and the grant of a connection's DESCRIBE carries
// over to its SETUPs and PLAY, which players send to the control URLs
// without the query. Every request that grants or refuses access
// (DESCRIBE, ANNOUNCE, SETUP, PLAY, RECORD), and the end of every publish
// and play session, is written to the audit log with the token's subject.
//
// A publish or play session lasts only as long as its token: it is bound
// to it (auth.Verifier.Bind) and closed when the token expires (after
// auth.BindGrace) or is revoked. A keepalive (GET_PARAMETER, SET_PARAMETER,
// OPTIONS) carrying a newer token of the same subject, with the same grant,
// moves the session to that token.
//
// The RTSP listener bounds open connections in total and per remote address
// (rtsp.max_connections, rtsp.max_connections_per_address), closes a
// connection that has not been granted access when it leaves a request
// unsent for rtsp.request_timeout, and waits out accept errors such as
// running out of file descriptors instead of stopping (internal/netlimit).
package ingest
