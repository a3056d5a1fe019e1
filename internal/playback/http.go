package playback

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"fieldvideo/internal/audit"
	"fieldvideo/internal/auth"
	"fieldvideo/internal/conf"
	"fieldvideo/internal/whip"
)

// Routes adds the playback API to mux, for reviewers (the reviewer role
// or the review grant):
//
//	GET  /v1/recordings            incidents, sources, sites
//	GET  /v1/recordings/coverage   ?incident=&source=…&start=&end=
//	GET  /v1/recordings/at         ?incident=&source=…&t=
//	GET  /v1/recordings/stream     ?incident=&source=…&start=&end= (or duration=); several sources, or
//	                               participant=<room>.<name>, merge into one file
//	POST /v1/exports               {"incident","sources","start","end"} → signed zip
//	GET  /list, /get               MediaMTX's playback API: ?path=[incident/]source
//
// Every answer says which site served it (the X-Playback-Site header, and
// "site" in JSON).
//
// A stream (with or without a Range header) and an export stop when the
// token they were asked with is revoked or expires, and when their client
// stops reading for the write timeout. One token holder has at most
// MaxStreamsPerHolder streams without Range and exports at once.
func (pb *Playback) Routes(mux *http.ServeMux, v *auth.Verifier, incident, allowOrigin string, ex *Exporter) {
	h := &handler{pb: pb, v: v, incident: incident, origin: allowOrigin, ex: ex}
	mux.HandleFunc("GET /v1/recordings", h.guard(h.list))
	mux.HandleFunc("GET /v1/recordings/coverage", h.guard(h.coverage))
	mux.HandleFunc("GET /v1/recordings/at", h.guard(h.at))
	mux.HandleFunc("GET /v1/recordings/stream", h.guard(h.stream))
	mux.HandleFunc("GET /list", h.guard(h.mtxList))
	mux.HandleFunc("GET /get", h.guard(h.mtxGet))
	if ex != nil {
		mux.HandleFunc("POST /v1/exports", h.guard(h.export))
	}
}

type handler struct {
	pb       *Playback
	v        *auth.Verifier
	incident string // the default incident
	origin   string
	ex       *Exporter
}

// guard lets reviewers through.
func (h *handler) guard(fn func(w http.ResponseWriter, r *http.Request, c *auth.Claims)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		whip.SetCORS(w, h.origin)
		w.Header().Set("Cache-Control", "no-store")
		if ev := audit.Annotate(r); ev != nil {
			ev.Action = "review"
		}
		c, err := h.v.Verify(auth.FromRequest(r))
		if err != nil {
			whip.WriteError(w, whip.Errorf(http.StatusUnauthorized, "%v", err))
			return
		}
		if !c.CanReview() {
			whip.WriteError(w, whip.Errorf(http.StatusForbidden,
				"recordings are for reviewers: %s has role %s; use a reviewer token or one with the review grant (token -review)", c.Who(), c.Role))
			return
		}
		fn(w, r, c)
	}
}

func (h *handler) fail(w http.ResponseWriter, err error) {
	var pe *Error
	switch {
	case errors.As(err, &pe):
		switch pe.Status {
		case http.StatusServiceUnavailable:
			w.Header().Set("Retry-After", "2")
		case http.StatusTooManyRequests:
			w.Header().Set("Retry-After", "10")
		}
		whip.WriteError(w, whip.Errorf(pe.Status, "%s", pe.Msg))
	case errors.Is(err, errNoSite):
		w.Header().Set("Retry-After", "5")
		whip.WriteError(w, whip.Errorf(http.StatusServiceUnavailable, "%v", err))
	default:
		whip.WriteError(w, whip.Errorf(http.StatusBadGateway, "reading recordings: %v", err))
	}
}

// failAt answers an error that site gave (none when empty).
func (h *handler) failAt(w http.ResponseWriter, site string, err error) {
	if site != "" {
		w.Header().Set("X-Playback-Site", site)
	}
	h.fail(w, err)
}

func (h *handler) json(w http.ResponseWriter, site string, v map[string]any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Playback-Site", site)
	v["site"] = site
	_ = json.NewEncoder(w).Encode(v)
}

func (h *handler) list(w http.ResponseWriter, r *http.Request, _ *auth.Claims) {
	inc, site, err := h.pb.Incidents(r.Context())
	if err != nil {
		h.failAt(w, site, err)
		return
	}
	h.json(w, site, map[string]any{"incidents": inc, "sites": h.pb.Sites(), "default_incident": h.incident})
}

// query is a request's parameters, checked.
type query struct {
	incident string
	sources  []string
	start    time.Time
	end      time.Time
}

func (h *handler) parse(r *http.Request, needRange bool) (query, error) {
	v := r.URL.Query()
	q := query{incident: v.Get("incident")}
	if q.incident == "" {
		q.incident = h.incident
	}
	for _, s := range v["source"] {
		for _, n := range strings.Split(s, ",") {
			if n = strings.TrimSpace(n); n != "" {
				q.sources = append(q.sources, n)
			}
		}
	}
	if err := checkName("incident", q.incident); err != nil {
		return q, err
	}
	if len(q.sources) == 0 {
		return q, badRequest("name at least one source: source=<name> (GET /v1/recordings lists them)")
	}
	if len(q.sources) > 64 {
		return q, badRequest("%d sources in one question; the limit is 64", len(q.sources))
	}
	for _, s := range q.sources {
		if err := checkName("source", s); err != nil {
			return q, err
		}
	}
	if err := namedTwice(q.sources); err != nil {
		return q, err
	}
	if !needRange {
		return q, nil
	}
	var err error
	if q.start, err = ParseTime("start", v.Get("start")); err != nil {
		return q, err
	}
	switch {
	case v.Get("end") != "":
		q.end, err = ParseTime("end", v.Get("end"))
	case v.Get("duration") != "":
		var d time.Duration
		d, err = parseDuration(v.Get("duration"))
		q.end = q.start.Add(d)
	default:
		err = badRequest("the range needs end=<time> or duration=<seconds>")
	}
	if err != nil {
		return q, err
	}
	return q, h.pb.checkWindow(q.start, q.end)
}

// namedTwice refuses a list that names a source more than once.
func namedTwice(sources []string) error {
	sorted := slices.Sorted(slices.Values(sources))
	for i := 1; i < len(sorted); i++ {
		if sorted[i] == sorted[i-1] {
			return badRequest("source %q is named twice; name each source once", sorted[i])
		}
	}
	return nil
}

// bind ties a long answer to the token it was asked with: the context
// returned ends when the token is revoked or expires, its cause a 401
// saying so; done unbinds, once the answer is over.
func (h *handler) bind(r *http.Request, c *auth.Claims) (ctx context.Context, done func()) {
	ctx, cancel := context.WithCancelCause(r.Context())
	unbind := h.v.Bind(c, func(reason string) {
		cancel(&Error{Status: http.StatusUnauthorized, Msg: reason})
	})
	return ctx, func() {
		unbind()
		cancel(nil)
	}
}

// tokenEnded returns the reason the token of a bound answer ended, or nil
// when it did not.
func tokenEnded(ctx context.Context) error {
	var pe *Error
	if err := context.Cause(ctx); ctx.Err() != nil && errors.As(err, &pe) && pe.Status == http.StatusUnauthorized {
		return err
	}
	return nil
}

// checkName refuses names that are not a single key segment.
func checkName(what, s string) error {
	if s == "" || len(s) > 200 || strings.ContainsAny(s, "/\\") || s == "." || s == ".." {
		return badRequest("%s %q is not a name (no slashes, at most 200 characters)", what, s)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return badRequest("%s %q has a control character", what, s)
		}
	}
	return nil
}

// ParseTime reads an instant: RFC 3339 (with a zone), or Unix milliseconds.
func ParseTime(what, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, badRequest("%s is missing: give an RFC 3339 time such as 2026-12-05T03:30:00.250Z, or Unix milliseconds", what)
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 || n > 1e14 {
			return time.Time{}, badRequest("%s %q is out of range as Unix milliseconds", what, s)
		}
		return time.UnixMilli(n).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, badRequest("%s %q is not a time: give RFC 3339 with a zone (2026-12-05T03:30:00.250Z) or Unix milliseconds", what, s)
	}
	if t.Year() < 2000 || t.Year() > 2200 {
		return time.Time{}, badRequest("%s %q is out of range", what, s)
	}
	return t.UTC(), nil
}

// maxDuration bounds a duration asked in a query, in either form.
const maxDuration = 1e7 * time.Second

// parseDuration reads seconds (MediaMTX's form, e.g. 60.5) or a Go
// duration (90s, 1h).
func parseDuration(s string) (time.Duration, error) {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if f <= 0 || math.IsNaN(f) || f > maxDuration.Seconds() {
			return 0, badRequest("duration %q is out of range: give 0 to %.0f seconds", s, maxDuration.Seconds())
		}
		return time.Duration(f * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, badRequest("duration %q is not a positive number of seconds or a duration such as 90s", s)
	}
	if d > maxDuration {
		return 0, badRequest("duration %q is out of range: give at most %s", s, maxDuration)
	}
	return d, nil
}

func (h *handler) coverage(w http.ResponseWriter, r *http.Request, _ *auth.Claims) {
	q, err := h.parse(r, true)
	if err != nil {
		h.fail(w, err)
		return
	}
	cov, site, err := h.pb.Coverage(r.Context(), q.incident, q.sources, q.start, q.end)
	if err != nil {
		h.failAt(w, site, err)
		return
	}
	h.json(w, site, map[string]any{"incident": q.incident, "start": q.start, "end": q.end, "sources": cov})
}

func (h *handler) at(w http.ResponseWriter, r *http.Request, _ *auth.Claims) {
	q, err := h.parse(r, false)
	if err != nil {
		h.fail(w, err)
		return
	}
	t, err := ParseTime("t", r.URL.Query().Get("t"))
	if err != nil {
		h.fail(w, err)
		return
	}
	out, site, err := h.pb.At(r.Context(), q.incident, q.sources, t)
	if err != nil {
		h.failAt(w, site, err)
		return
	}
	h.json(w, site, map[string]any{"incident": q.incident, "t": t, "sources": out})
}

func (h *handler) stream(w http.ResponseWriter, r *http.Request, c *auth.Claims) {
	if p := r.URL.Query().Get("participant"); p != "" {
		if err := h.participant(r, p); err != nil {
			h.fail(w, err)
			return
		}
	}
	q, err := h.parse(r, true)
	if err != nil {
		h.fail(w, err)
		return
	}
	if len(q.sources) > 8 {
		h.fail(w, badRequest("one stream merges at most 8 sources; got %d", len(q.sources)))
		return
	}
	h.serveStream(w, r, c, StreamRequest{Incident: q.incident, Sources: q.sources, Start: q.start, End: q.end})
}

// serveStream streams a source. A client's Range request from the start
// ("bytes=0-", what media elements send first) gets the whole stream;
// seeking is by asking again with another start. The answer stops when the
// token of c is revoked or expires, or when its client stops reading. A
// stream without Range counts against the token holder's streams.
func (h *handler) serveStream(w http.ResponseWriter, r *http.Request, c *auth.Claims, req StreamRequest) {
	if ev := audit.Annotate(r); ev != nil {
		ev.Source = strings.Join(req.Sources, ",")
	}
	ctx, done := h.bind(r, c)
	defer done()
	if r.Header.Get("Range") != "" {
		// A media element: the whole stream with its length, so that it
		// seeks within it.
		e, release, err := h.pb.rendered(ctx, req, c.Who())
		if err != nil {
			site := ""
			if e != nil {
				site = e.info.Site
			}
			h.failAt(w, site, err)
			return
		}
		defer release()
		cw := h.clientWriter(w)
		defer cw.end("playback range answer", "sources", req.Sources)
		streamHeaders(w.Header(), e.info)
		if len(e.info.Skipped) > 0 {
			w.Header().Set("X-Playback-Skipped", strings.Join(e.info.Skipped, "; "))
		}
		if e.info.Ended != "" {
			w.Header().Set("X-Playback-Ended", e.info.Ended)
		}
		http.ServeContent(cw, r, "", time.Time{}, boundReader{ctx, io.NewSectionReader(e.data, 0, e.data.size)})
		if err := tokenEnded(ctx); err != nil {
			h.pb.log.Info("playback stream stopped: its token ended", "sources", req.Sources, "reason", err)
		}
		return
	}
	cw := h.clientWriter(w)
	defer cw.end("playback stream", "sources", req.Sources)
	req.holder = c.Who()
	info, err := h.pb.Stream(ctx, cw, req, func(info StreamInfo) {
		streamHeaders(w.Header(), info)
		w.Header().Set("Trailer", "X-Playback-Skipped, X-Playback-Ended")
		cw.WriteHeader(http.StatusOK)
	})
	if te := tokenEnded(ctx); err != nil && te != nil {
		err = te
		h.pb.log.Info("playback stream stopped: its token ended", "sources", req.Sources, "reason", te)
	}
	if err != nil && info.Start.IsZero() {
		h.failAt(w, info.Site, err)
		return
	}
	if len(info.Skipped) > 0 {
		w.Header().Set("X-Playback-Skipped", strings.Join(info.Skipped, "; "))
	}
	if info.Ended != "" {
		w.Header().Set("X-Playback-Ended", info.Ended)
	}
	if err != nil {
		w.Header().Set("X-Playback-Ended", "stopped: "+err.Error())
	}
	if len(info.Skipped) > 0 || info.Ended != "" {
		h.pb.log.Warn("playback stream incomplete", "sources", req.Sources, "skipped", info.Skipped, "ended", info.Ended)
	}
}

func streamHeaders(hd http.Header, info StreamInfo) {
	hd.Set("Content-Type", "video/mp4")
	hd.Set("X-Playback-Site", info.Site)
	hd.Set("X-Capture-Start", info.Start.Format(time.RFC3339Nano))
	hd.Set("X-Capture-Keyframe", info.Keyframe.Format(time.RFC3339Nano))
	hd.Set("Access-Control-Expose-Headers", "X-Playback-Site, X-Capture-Start, X-Capture-Keyframe, X-Playback-Skipped, X-Playback-Ended, Content-Range, Content-Length")
}

// participant adds to the request's sources every recorded source of a
// call participant: <room>.<participant>.<camera|microphone|screen>, so
// that its camera and microphone play as one stream.
func (h *handler) participant(r *http.Request, p string) error {
	if err := checkName("participant", p); err != nil {
		return err
	}
	v := r.URL.Query()
	inc := v.Get("incident")
	if inc == "" {
		inc = h.incident
	}
	list, _, err := h.pb.Incidents(r.Context())
	if err != nil {
		return err
	}
	n := 0
	for _, is := range list {
		if is.Incident != inc {
			continue
		}
		for _, s := range is.Sources {
			if track, ok := strings.CutPrefix(s.Source, p+"."); ok && slices.Contains(conf.CallTracks, track) {
				v.Add("source", s.Source)
				n++
			}
		}
	}
	if n == 0 {
		return notFound("no recorded source of participant %q in incident %q (a call participant's sources are <room>.<participant>.camera and .microphone)", p, inc)
	}
	r.URL.RawQuery = v.Encode()
	return nil
}

// mtxPath splits MediaMTX's path=[incident/]source.
func (h *handler) mtxPath(r *http.Request) (string, string, error) {
	p := strings.Trim(r.URL.Query().Get("path"), "/")
	inc, src, ok := strings.Cut(p, "/")
	if !ok {
		inc, src = h.incident, p
	}
	if err := checkName("incident", inc); err != nil {
		return "", "", err
	}
	if err := checkName("source", src); err != nil {
		return "", "", badRequest("path=%q is not [incident/]source", p)
	}
	return inc, src, nil
}

// mtxList answers like MediaMTX's GET /list: the source's recorded spans,
// each with the URL that plays it.
func (h *handler) mtxList(w http.ResponseWriter, r *http.Request, _ *auth.Claims) {
	inc, src, err := h.mtxPath(r)
	if err != nil {
		h.fail(w, err)
		return
	}
	v := r.URL.Query()
	end := time.Now().UTC()
	if s := v.Get("end"); s != "" {
		if end, err = ParseTime("end", s); err != nil {
			h.fail(w, err)
			return
		}
	}
	start := end.Add(-h.pb.p.MaxRange)
	if s := v.Get("start"); s != "" {
		if start, err = ParseTime("start", s); err != nil {
			h.fail(w, err)
			return
		}
	}
	cov, site, err := h.pb.Coverage(r.Context(), inc, []string{src}, start, end)
	if err != nil {
		h.failAt(w, site, err)
		return
	}
	type entry struct {
		Start    time.Time `json:"start"`
		Duration float64   `json:"duration"`
		URL      string    `json:"url"`
	}
	out := []entry{}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	for _, rg := range cov[0].Ranges {
		d := rg.End.Sub(rg.Start).Seconds()
		u := url.URL{Scheme: scheme, Host: r.Host, Path: "/get", RawQuery: url.Values{
			"path": {inc + "/" + src}, "start": {rg.Start.Format(time.RFC3339Nano)}, "duration": {strconv.FormatFloat(d, 'f', -1, 64)},
		}.Encode()}
		out = append(out, entry{Start: rg.Start, Duration: d, URL: u.String()})
	}
	if len(out) == 0 {
		h.fail(w, notFound("no recordings of %s/%s between %s and %s", inc, src, start.Format(time.RFC3339), end.Format(time.RFC3339)))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Playback-Site", site)
	_ = json.NewEncoder(w).Encode(out)
}

// mtxGet answers like MediaMTX's GET /get (format fmp4).
func (h *handler) mtxGet(w http.ResponseWriter, r *http.Request, c *auth.Claims) {
	inc, src, err := h.mtxPath(r)
	if err != nil {
		h.fail(w, err)
		return
	}
	v := r.URL.Query()
	if f := v.Get("format"); f != "" && f != "fmp4" {
		h.fail(w, badRequest("format %q is not served; only fmp4", f))
		return
	}
	start, err := ParseTime("start", v.Get("start"))
	if err != nil {
		h.fail(w, err)
		return
	}
	if v.Get("duration") == "" {
		h.fail(w, badRequest("duration=<seconds> is missing"))
		return
	}
	d, err := parseDuration(v.Get("duration"))
	if err != nil {
		h.fail(w, err)
		return
	}
	if err := h.pb.checkWindow(start, start.Add(d)); err != nil {
		h.fail(w, err)
		return
	}
	h.serveStream(w, r, c, StreamRequest{Incident: inc, Sources: []string{src}, Start: start, End: start.Add(d)})
}
