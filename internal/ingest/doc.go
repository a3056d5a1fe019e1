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
// JWT. Every publish and view, granted or denied, is written to the audit
// log.
package ingest
