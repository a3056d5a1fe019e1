package ingest

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"golang.org/x/time/rate"

	"fieldvideo/internal/auth"
	"fieldvideo/internal/conf"
	tsync "fieldvideo/internal/sync"
	"fieldvideo/internal/unit"
)

// rtspHandler handles the RTSP server's requests: pushes (ANNOUNCE, SETUP,
// RECORD) and players (DESCRIBE, SETUP, PLAY).
type rtspHandler struct {
	s *Server

	// anonWarn spaces the warnings of refusals without a valid identity
	// (one every anonWarnEvery); anonRefusals counts those refusals since
	// the last warning.
	anonWarn     rate.Sometimes
	anonRefusals atomic.Int64
}

func newRTSPHandler(s *Server) *rtspHandler {
	return &rtspHandler{s: s, anonWarn: rate.Sometimes{Interval: anonWarnEvery}}
}

// sessionState is kept on every RTSP session that passed authorization.
type sessionState struct {
	publisher bool
	src       *source
	claims    *auth.Claims
	token     string // the token claims came from
	remote    string

	// Publisher sessions.
	inputs    []inputTrack
	skipped   []TrackInfo
	refs      map[*description.Media]tsync.RefClock
	recording bool
	lastWarn  time.Time // decode errors, rate-limited
	// oversizeWarn spaces the warnings of video frames dropped for their
	// size (unit.MaxFrameBytes), which may come from any track.
	oversizeWarn rate.Sometimes

	// Player sessions: the output they are set up on, and whether PLAY was
	// granted.
	out     *rtspOut
	playing bool

	// binding ends the session when the token it records or plays with
	// expires or is revoked.
	binding tokenBinding
}

func sessionOf(ss *gortsplib.ServerSession) *sessionState {
	st, _ := ss.UserData().(*sessionState)
	return st
}

// sourceName is the source a request path names.
func sourceName(path string) string {
	return strings.TrimSuffix(strings.TrimPrefix(path, "/"), "/")
}

func invalidName(name string) string {
	return fmt.Sprintf("%q is not a valid source name; use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit", name)
}

// OnConnOpen implements gortsplib.ServerHandlerOnConnOpen.
func (h *rtspHandler) OnConnOpen(ctx *gortsplib.ServerHandlerOnConnOpenCtx) {
	cs := &connState{remote: ctx.Conn.NetConn().RemoteAddr().String(), nc: ctx.Conn.NetConn(), conns: h.s.conns}
	ctx.Conn.SetUserData(cs)
}

// OnConnClose implements gortsplib.ServerHandlerOnConnClose.
func (h *rtspHandler) OnConnClose(ctx *gortsplib.ServerHandlerOnConnCloseCtx) {
	cs := stateOf(ctx.Conn)
	if cs.challenged && !cs.authenticated {
		h.refused(accessEvent{remote: cs.remote, method: cs.challengeMethod, action: cs.challengeAction, source: cs.challengeSource,
			result: "denied", status: int(base.StatusUnauthorized),
			reason: "no token: the client sent no credentials; put the token as the RTSP password or as ?token="})
	}
}

// OnRequest implements gortsplib.ServerHandlerOnRequest.
func (h *rtspHandler) OnRequest(c *gortsplib.ServerConn, req *base.Request) {
	cs := stateOf(c)
	cs.method = string(req.Method)
	switch req.Method {
	case base.GetParameter, base.SetParameter, base.Options:
		h.renew(c, cs, req)
	}
}

// OnResponse implements gortsplib.ServerHandlerOnResponse. It takes the
// token out of Content-Base, and gives a connection that has not been
// granted access the request timeout for its next request.
func (h *rtspHandler) OnResponse(c *gortsplib.ServerConn, res *base.Response) {
	if v := res.Header["Content-Base"]; len(v) == 1 {
		res.Header["Content-Base"] = base.HeaderValue{contentBase(v[0])}
	}
	if cs := stateOf(c); !cs.authenticated {
		cs.requestBy(time.Now().Add(h.s.p.RTSP.RequestTimeout))
	}
}

// OnSessionClose implements gortsplib.ServerHandlerOnSessionClose.
func (h *rtspHandler) OnSessionClose(ctx *gortsplib.ServerHandlerOnSessionCloseCtx) {
	st := sessionOf(ctx.Session)
	if st == nil {
		return
	}
	claims, ended := st.binding.close()
	if claims == nil {
		claims = st.claims
	}
	if st.publisher {
		reason := "the publisher left"
		if ctx.Error != nil {
			reason += ": " + ctx.Error.Error()
		}
		if ended != "" {
			reason = ended
		}
		h.s.reg.release(st.src, ctx.Session, reason)
		if claims != nil {
			go h.s.pruneIdlePushes(claims.Who())
		}
		if st.recording {
			h.audit(accessEvent{remote: st.remote, action: actionUnpublish, source: st.src.name, claims: claims, result: "ok", reason: reason})
			h.s.log.Info("publisher left", "source", st.src.name, "remote", st.remote, "reason", reason)
		}
		return
	}
	if st.out != nil {
		h.s.playerLeft(st.out)
	}
	if st.playing {
		reason := "the player left"
		if ctx.Error != nil {
			reason += ": " + ctx.Error.Error()
		}
		if ended != "" {
			reason = ended
		}
		h.audit(accessEvent{remote: st.remote, action: actionStop, source: st.src.name, claims: claims, result: "ok", reason: reason})
		h.s.log.Info("RTSP player left", "source", st.src.name, "remote", st.remote, "reason", reason)
	}
}

// OnAnnounce implements gortsplib.ServerHandlerOnAnnounce.
func (h *rtspHandler) OnAnnounce(ctx *gortsplib.ServerHandlerOnAnnounceCtx) (*base.Response, error) {
	cs := stateOf(ctx.Conn)
	name := sourceName(ctx.Path)
	if !conf.SourceName.MatchString(name) {
		r := h.deny(cs, actionPublish, name, nil, base.StatusBadRequest, invalidName(name), false)
		return r.res, r.err
	}
	if err := conf.CheckPublishedName(name); err != nil {
		r := h.deny(cs, actionPublish, name, nil, base.StatusBadRequest, err.Error(), false)
		return r.res, r.err
	}
	claims, ref := h.authorize(ctx.Conn, ctx.Request, ctx.Query, actionPublish, name)
	if ref != nil {
		return ref.res, ref.err
	}
	if err := checkMedias(ctx.Description); err != nil {
		r := h.deny(cs, actionPublish, name, claims, base.StatusBadRequest, err.Error(), false)
		return r.res, r.err
	}
	in, skipped := selectTracks(ctx.Description)
	if len(in) == 0 {
		r := h.deny(cs, actionPublish, name, claims, base.StatusUnsupportedMediaType,
			fmt.Sprintf("no usable track (%d skipped); send H.264 or H.265 video with Opus, G.711 or AAC audio", len(skipped)), false)
		return r.res, r.err
	}
	src, err := h.s.reg.claim(name, ctx.Session, claims.Who(), cs.remote, in, skipped)
	switch {
	case errors.Is(err, errIsCamera):
		r := h.deny(cs, actionPublish, name, claims, base.StatusMethodNotAllowed,
			"source "+name+" is a pulled camera and cannot be published to; pick another name", false)
		return r.res, r.err
	case errors.Is(err, errBusy):
		r := h.deny(cs, actionPublish, name, claims, base.StatusMethodNotValidInThisState,
			"source "+name+" is already being published; stop the other publisher or pick another name", false)
		return r.res, r.err
	case err != nil:
		r := h.deny(cs, actionPublish, name, claims, base.StatusInternalServerError, err.Error(), false)
		return r.res, r.err
	}
	ctx.Session.SetUserData(&sessionState{publisher: true, src: src, claims: claims, token: cs.grantedToken, remote: cs.remote,
		inputs: in, skipped: skipped, refs: refClocks(ctx.Description, ctx.Request.Body),
		oversizeWarn: rate.Sometimes{Interval: oversizeWarnEvery}})
	if ref := h.grant(cs, actionPublish, name, claims); ref != nil {
		return ref.res, ref.err
	}
	for _, sk := range skipped {
		h.s.log.Warn("pushed track skipped", "source", name, "kind", sk.Kind, "reason", sk.Note)
	}
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// OnRecord implements gortsplib.ServerHandlerOnRecord.
func (h *rtspHandler) OnRecord(ctx *gortsplib.ServerHandlerOnRecordCtx) (*base.Response, error) {
	st := sessionOf(ctx.Session)
	if st == nil || !st.publisher {
		return &base.Response{StatusCode: base.StatusMethodNotValidInThisState}, errors.New("RECORD without an accepted ANNOUNCE")
	}
	ws := newTrackWriters(st.src, st.inputs, st.refs)
	for i, it := range st.inputs {
		ws[i].asm.OnOversized = h.oversized(st, it.track, ws[i].asm)
		ctx.Session.OnPacketRTP(it.media, it.format, ws[i].onPacket)
	}
	ctx.Session.OnPacketRTCPAny(onRTCP(ws))
	h.s.reg.prepare(st.src, st.inputs, st.skipped, ws)
	transport := ""
	if tr := ctx.Session.Transport(); tr != nil {
		transport = tr.Protocol.String()
	}
	h.s.reg.setLive(st.src, transport)
	st.recording = true
	if ref := h.grant(stateOf(ctx.Conn), actionPublish, st.src.name, st.claims); ref != nil {
		return ref.res, ref.err
	}
	h.bind(ctx.Session, st, st.claims, st.token)
	h.s.log.Info("publisher live", "source", st.src.name, "remote", st.remote, "who", st.claims.Who(),
		"tracks", len(st.inputs), "transport", transport)
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// OnDescribe implements gortsplib.ServerHandlerOnDescribe.
func (h *rtspHandler) OnDescribe(ctx *gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	out, claims, ref := h.playerOutput(ctx.Conn, ctx.Request, ctx.Path, ctx.Query)
	if ref != nil {
		return ref.res, nil, ref.err
	}
	if ref := h.grant(stateOf(ctx.Conn), actionView, out.src.name, claims); ref != nil {
		return ref.res, nil, ref.err
	}
	return &base.Response{StatusCode: base.StatusOK}, out.ss, nil
}

// OnSetup implements gortsplib.ServerHandlerOnSetup.
func (h *rtspHandler) OnSetup(ctx *gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if ctx.Session.State() == gortsplib.ServerSessionStatePreRecord {
		return &base.Response{StatusCode: base.StatusOK}, nil, nil // a publisher's track
	}
	out, claims, ref := h.playerOutput(ctx.Conn, ctx.Request, ctx.Path, ctx.Query)
	if ref != nil {
		return ref.res, nil, ref.err
	}
	cs := stateOf(ctx.Conn)
	st := sessionOf(ctx.Session)
	switch {
	case st == nil:
		st = &sessionState{src: out.src, remote: cs.remote, out: out}
		ctx.Session.SetUserData(st)
		h.s.playerJoined(out)
	case st.src != out.src || st.out != out:
		return &base.Response{StatusCode: base.StatusBadRequest, StatusMessage: "Bad Request - one session plays one source"}, nil,
			errors.New("SETUP of a second source in one session")
	}
	if ref := h.grant(cs, actionView, out.src.name, claims); ref != nil {
		return ref.res, nil, ref.err
	}
	return &base.Response{StatusCode: base.StatusOK}, out.ss, nil
}

// OnPlay implements gortsplib.ServerHandlerOnPlay.
func (h *rtspHandler) OnPlay(ctx *gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	st := sessionOf(ctx.Session)
	if st == nil || st.publisher {
		return &base.Response{StatusCode: base.StatusMethodNotValidInThisState}, errors.New("PLAY without SETUP")
	}
	claims, ref := h.authorize(ctx.Conn, ctx.Request, ctx.Query, actionView, st.src.name)
	if ref != nil {
		return ref.res, ref.err
	}
	cs := stateOf(ctx.Conn)
	st.claims, st.token, st.playing = claims, cs.grantedToken, true
	if ref := h.grant(cs, actionView, st.src.name, claims); ref != nil {
		return ref.res, ref.err
	}
	h.bind(ctx.Session, st, claims, cs.grantedToken)
	h.s.log.Info("RTSP player started", "source", st.src.name, "remote", st.remote, "who", claims.Who())
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// oversized returns the OnOversized hook of a publisher's track: a warning,
// at most one every oversizeWarnEvery per session, with what the track's
// assembler dropped so far.
func (h *rtspHandler) oversized(st *sessionState, tr unit.Track, asm *unit.Assembler) func(rtpTime uint64, packets, bytes int) {
	return func(_ uint64, packets, bytes int) {
		st.oversizeWarn.Do(func() {
			h.s.log.Warn("publisher sent a video frame larger than ingest takes; the frame is dropped",
				"source", st.src.name, "remote", st.remote, "codec", tr.Codec, "packets", packets, "bytes", bytes,
				"max_frame_bytes", unit.MaxFrameBytes, "frames_dropped", asm.Oversized, "packets_dropped", asm.OversizedPackets)
		})
	}
}

// oversizeWarnEvery spaces the warnings of one session's dropped frames.
const oversizeWarnEvery = 10 * time.Second

// OnDecodeError implements gortsplib.ServerHandlerOnDecodeError.
func (h *rtspHandler) OnDecodeError(ctx *gortsplib.ServerHandlerOnDecodeErrorCtx) {
	st := sessionOf(ctx.Session)
	if st == nil || !st.publisher {
		return
	}
	st.src.decodeErrs.Add(1)
	if now := time.Now(); now.Sub(st.lastWarn) > 10*time.Second {
		st.lastWarn = now
		h.s.log.Warn("publisher sent packets that cannot be decoded", "source", st.src.name, "remote", st.remote, "error", ctx.Error)
	}
}

// playerOutput authorizes a player's request for path and returns the
// source's RTSP output and the claims that granted it.
func (h *rtspHandler) playerOutput(c *gortsplib.ServerConn, req *base.Request, path, query string) (*rtspOut, *auth.Claims, *refusal) {
	cs := stateOf(c)
	name := sourceName(path)
	if !conf.SourceName.MatchString(name) {
		return nil, nil, h.deny(cs, actionView, name, nil, base.StatusBadRequest, invalidName(name), false)
	}
	claims, ref := h.authorize(c, req, query, actionView, name)
	if ref != nil {
		return nil, nil, ref
	}
	src := h.s.reg.get(name)
	if src == nil {
		r := h.deny(cs, actionView, name, claims, base.StatusNotFound, "no source named "+name, false)
		r.err = nil // keep the connection: the player may retry
		return nil, nil, r
	}
	out, err := h.s.output(src)
	if err != nil {
		info := h.s.reg.info(src)
		reason := fmt.Sprintf("source %s is %s", name, info.State)
		if info.Reason != "" {
			why := info.Reason
			if !claims.CanOperate() {
				why = HideAddresses(why, info.URL) // players do not see cameras' addresses
			}
			reason += ": " + why
		}
		if !errors.Is(err, errNotLive) {
			reason = err.Error()
		}
		r := h.deny(cs, actionView, name, claims, base.StatusNotFound, reason, false)
		r.err = nil
		return nil, nil, r
	}
	return out, claims, nil
}
