package playback

import (
	"archive/zip"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"fieldvideo/internal/audit"
	"fieldvideo/internal/auth"
)

// An export is one zip: an MP4 per source (the stitched stream over the
// range), manifest.json describing each file (SHA-256, init and fragments
// with their capture times, the recorded segments used with their
// alignment), and manifest.sig, the ed25519 signature of manifest.json.
// Verify says exactly what was altered, missing, added or reordered.

// Export file names.
const (
	ManifestName  = "manifest.json"
	SignatureName = "manifest.sig"
	exportKind    = "fieldvideo-export"
)

// ExportManifest is the signed description of an export.
type ExportManifest struct {
	Version    int          `json:"version"`
	Kind       string       `json:"kind"`
	Incident   string       `json:"incident"`
	Start      time.Time    `json:"start"`
	End        time.Time    `json:"end"`
	Created    time.Time    `json:"created"`
	ExportedBy string       `json:"exported_by"`
	Site       string       `json:"site"`
	KeyID      string       `json:"key_id"`
	PublicKey  string       `json:"public_key"`
	Files      []ExportFile `json:"files"`
}

// ExportFile is one source's MP4 in an export.
type ExportFile struct {
	Name   string `json:"name"`
	Source string `json:"source"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// CaptureStart is the capture time of the file's presentation time
	// zero on the common baseline.
	CaptureStart time.Time     `json:"capture_start"`
	InitSize     int64         `json:"init_size"`
	InitSHA256   string        `json:"init_sha256"`
	Parts        []PartInfo    `json:"parts"`
	Segments     []SegmentInfo `json:"segments"`
	Skipped      []string      `json:"skipped,omitempty"`
	Ended        string        `json:"ended,omitempty"`
}

// ExportRequest is the body of POST /v1/exports.
type ExportRequest struct {
	Incident string    `json:"incident"`
	Sources  []string  `json:"sources"`
	Start    time.Time `json:"start"`
	End      time.Time `json:"end"`
}

// Exporter signs exports with its key and audits each one.
type Exporter struct {
	pb    *Playback
	key   ed25519.PrivateKey
	audit func(audit.Event) error
}

// NewExporter returns an exporter signing with key; auditFn writes an
// event for each export made.
func NewExporter(pb *Playback, key ed25519.PrivateKey, auditFn func(audit.Event) error) *Exporter {
	return &Exporter{pb: pb, key: key, audit: auditFn}
}

// Export writes the export of req to w as a zip, made by who. It holds one
// of who's stream slots while it runs.
func (ex *Exporter) Export(ctx context.Context, w io.Writer, req ExportRequest, who string) (*ExportManifest, error) {
	release, err := ex.pb.acquire(who)
	if err != nil {
		return nil, err
	}
	defer release()
	return ex.export(ctx, w, req, who)
}

// export is Export for a caller that holds a stream slot for it.
func (ex *Exporter) export(ctx context.Context, w io.Writer, req ExportRequest, who string) (*ExportManifest, error) {
	pub := ex.key.Public().(ed25519.PublicKey)
	m := &ExportManifest{Version: 1, Kind: exportKind, Incident: req.Incident, Start: req.Start.UTC(), End: req.End.UTC(),
		Created: time.Now().UTC(), ExportedBy: who, KeyID: audit.KeyID(pub), PublicKey: hex.EncodeToString(pub)}
	zw := zip.NewWriter(w)
	for _, src := range req.Sources {
		name := src + ".mp4"
		fw, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Store, Modified: m.Created})
		if err != nil {
			return nil, err
		}
		h := sha256.New()
		cw := &countWriter{w: io.MultiWriter(fw, h)}
		info, err := ex.pb.stream(ctx, cw, StreamRequest{Incident: req.Incident, Sources: []string{src}, Start: req.Start, End: req.End, parts: true}, func(StreamInfo) {})
		if err != nil {
			return nil, fmt.Errorf("source %s: %w", src, err)
		}
		m.Site = info.Site
		f := ExportFile{Name: name, Source: src, Size: cw.n, SHA256: hex.EncodeToString(h.Sum(nil)), CaptureStart: info.Start,
			Parts: info.Parts, Segments: info.Segments, Skipped: info.Skipped, Ended: info.Ended}
		f.InitSize, f.InitSHA256 = info.InitSize, info.InitSHA256
		m.Files = append(m.Files, f)
	}
	mb, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	sig := ed25519.Sign(ex.key, mb)
	for _, f := range []struct {
		name string
		b    []byte
	}{{ManifestName, mb}, {SignatureName, []byte(hex.EncodeToString(sig) + "\n")}} {
		fw, err := zw.CreateHeader(&zip.FileHeader{Name: f.name, Method: zip.Deflate, Modified: m.Created})
		if err != nil {
			return nil, err
		}
		if _, err := fw.Write(f.b); err != nil {
			return nil, err
		}
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(mb)
	ex.pb.exports.Add(1)
	if ex.audit != nil {
		reason := fmt.Sprintf("export of %d source(s) %s..%s, manifest SHA-256 %s", len(req.Sources),
			m.Start.Format(time.RFC3339), m.End.Format(time.RFC3339), hex.EncodeToString(sum[:]))
		if err := ex.audit(audit.Event{Via: "http", Action: "export-complete", Actor: who, Result: "ok", Source: joinSources(req.Sources), Reason: reason}); err != nil {
			return m, fmt.Errorf("the export was made but cannot be audited: %w", err)
		}
	}
	return m, nil
}

func joinSources(s []string) string {
	out := ""
	for i, n := range s {
		if i > 0 {
			out += ","
		}
		out += n
	}
	return out
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// export serves POST /v1/exports.
func (h *handler) export(w http.ResponseWriter, r *http.Request, c *auth.Claims) {
	if c.Role != auth.RoleReviewer {
		h.fail(w, &Error{Status: http.StatusForbidden, Msg: fmt.Sprintf("evidence exports are for the reviewer role only; %s has role %s (a review grant lets it play recordings, not export them)", c.Who(), c.Role)})
		return
	}
	var req ExportRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		h.fail(w, badRequest("the export request is not {\"incident\",\"sources\":[…],\"start\",\"end\"} with RFC 3339 times: %v", err))
		return
	}
	if req.Incident == "" {
		req.Incident = h.incident
	}
	if err := checkName("incident", req.Incident); err != nil {
		h.fail(w, err)
		return
	}
	if len(req.Sources) == 0 || len(req.Sources) > 64 {
		h.fail(w, badRequest("an export names 1 to 64 sources; got %d", len(req.Sources)))
		return
	}
	for _, s := range req.Sources {
		if err := checkName("source", s); err != nil {
			h.fail(w, err)
			return
		}
	}
	if err := namedTwice(req.Sources); err != nil {
		h.fail(w, err)
		return
	}
	if err := h.pb.checkWindow(req.Start, req.End); err != nil {
		h.fail(w, err)
		return
	}
	// Check what can be checked before the answer starts.
	cov, _, err := h.pb.Coverage(r.Context(), req.Incident, req.Sources, req.Start, req.End)
	if err != nil {
		h.fail(w, err)
		return
	}
	for _, cv := range cov {
		if len(cv.Ranges) == 0 {
			h.fail(w, notFound("source %q has no recording between %s and %s", cv.Source, req.Start.Format(time.RFC3339), req.End.Format(time.RFC3339)))
			return
		}
	}
	if ev := audit.Annotate(r); ev != nil {
		ev.Action, ev.Source = "export", joinSources(req.Sources)
	}
	// One stream slot for the whole export, taken before the answer starts.
	release, err := h.pb.acquire(c.Who())
	if err != nil {
		h.fail(w, err)
		return
	}
	defer release()
	// The export stops when the token is revoked or expires, or when the
	// client stops reading.
	ctx, done := h.bind(r, c)
	defer done()
	w.Header().Set("Content-Type", "application/zip")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="export-%s-%s.zip"`, req.Incident, req.Start.UTC().Format("20060102T150405Z")))
	cw := h.clientWriter(w)
	defer cw.end("export", "sources", req.Sources)
	cw.WriteHeader(http.StatusOK)
	if _, err := h.ex.export(ctx, cw, req, c.Who()); err != nil {
		if te := tokenEnded(ctx); te != nil {
			h.pb.log.Warn("export stopped: its token ended; the client's zip is incomplete", "reason", te)
			panic(http.ErrAbortHandler)
		}
		h.pb.log.Error("export failed after it started; the client's zip is incomplete", "error", err)
		if !errors.Is(err, context.Canceled) {
			panic(http.ErrAbortHandler)
		}
	}
}
