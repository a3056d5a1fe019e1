package retention

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"regexp"
	"strings"
	"time"

	"fieldvideo/internal/conf"
	"fieldvideo/internal/recorder"
)

// holdPrefix is where holds are stored at both sites: outside rec/, so the
// recorder's reconciler never lists them.
const holdPrefix = "holds/"

// holdVersion is the version of the stored hold format.
const holdVersion = 1

// maxHoldBytes bounds a stored hold when it is read back.
const maxHoldBytes = 16 << 10

// maxReasonLen bounds a hold's reason.
const maxReasonLen = 1024

// holdID is the form of hold ids: they name objects, so they follow the
// same rules as source names.
var holdID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// Hold is an evidence hold: while it exists at either site, no segment or
// manifest of Incident whose source matches Source and whose capture
// interval [start, start+duration) overlaps [From, To) is deleted. A zero
// To leaves the hold open-ended.
type Hold struct {
	Version  int    `json:"version"`
	ID       string `json:"id"`
	Incident string `json:"incident"`
	// Source is a source name or a shell pattern (path.Match) such as
	// "cam-*" or "*".
	Source      string    `json:"source"`
	From        time.Time `json:"from"`
	To          time.Time `json:"to,omitzero"`
	Reason      string    `json:"reason"`
	CreatedBy   string    `json:"created_by"`
	CreatedRole string    `json:"created_role,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
}

// HoldKey returns the object key of the hold with id.
func HoldKey(id string) string { return holdPrefix + id + ".json" }

// Covers reports whether the hold keeps the segment or manifest k.
func (h Hold) Covers(k recorder.KeyInfo) bool {
	if k.Incident != h.Incident {
		return false
	}
	if ok, err := path.Match(h.Source, k.Source); err != nil || !ok {
		return false
	}
	start := k.Start
	end := start.Add(k.Duration)
	if !end.After(start) {
		// A segment of no duration still has an instant: [start, start+1ns).
		end = start.Add(time.Nanosecond)
	}
	return end.After(h.From) && (h.To.IsZero() || start.Before(h.To))
}

// Summary describes the hold in one line, for the audit trail and logs.
func (h Hold) Summary() string {
	to := "open-ended"
	if !h.To.IsZero() {
		to = "to " + h.To.UTC().Format(time.RFC3339)
	}
	return fmt.Sprintf("hold %s on %s/%s from %s %s: %s", h.ID, h.Incident, h.Source,
		h.From.UTC().Format(time.RFC3339), to, h.Reason)
}

// validate checks the fields a hold request sets.
func (h Hold) validate() error {
	if !conf.SourceName.MatchString(h.Incident) {
		return fmt.Errorf("incident %q: use 1-64 letters, digits, '.', '_' or '-'", h.Incident)
	}
	if err := checkSourcePattern(h.Source); err != nil {
		return err
	}
	switch {
	case h.From.IsZero():
		return errors.New(`"from" is missing: give the start of the capture time to hold, in RFC 3339 (2026-11-23T04:00:00Z)`)
	case !h.To.IsZero() && !h.From.Before(h.To):
		return fmt.Errorf(`"from" %s is not before "to" %s; leave "to" out for an open-ended hold`,
			h.From.Format(time.RFC3339Nano), h.To.Format(time.RFC3339Nano))
	case strings.TrimSpace(h.Reason) == "":
		return errors.New(`"reason" is empty: say why the recordings are held (case number, request)`)
	case len(h.Reason) > maxReasonLen:
		return fmt.Errorf(`"reason" is %d bytes; keep it under %d and refer to the case file for more`, len(h.Reason), maxReasonLen)
	}
	for _, r := range h.Reason {
		if (r < 0x20 && r != '\t') || r == 0x7f {
			return errors.New(`"reason" has a control character; write it on one line`)
		}
	}
	return nil
}

// checkSourcePattern accepts a source name, or a shell pattern over the
// characters of source names.
func checkSourcePattern(p string) error {
	if conf.SourceName.MatchString(p) {
		return nil
	}
	bad := p == "" || len(p) > 64
	for _, r := range p {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune("._-*?[]^!", r):
		default:
			bad = true
		}
	}
	if _, err := path.Match(p, ""); bad || err != nil {
		return fmt.Errorf("source %q: use a source name, or a shell pattern such as cam-* or * (letters, digits, '.', '_', '-', and * ? [ ])", p)
	}
	return nil
}

// newHoldID returns a random hold id.
func newHoldID() (string, error) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("cannot draw a hold id: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// encodeHold returns the stored form of h. It is encoded once and kept, so
// that every Put of the hold offers the same bytes.
func encodeHold(h Hold) ([]byte, error) {
	b, err := json.Marshal(h)
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// parseHold decodes and checks a hold stored at key.
func parseHold(key string, b []byte) (Hold, error) {
	var h Hold
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&h); err != nil {
		return h, fmt.Errorf("%s is not a hold: %w", key, err)
	}
	if h.Version != holdVersion {
		return h, fmt.Errorf("%s has hold version %d; this server reads version %d", key, h.Version, holdVersion)
	}
	if HoldKey(h.ID) != key || !holdID.MatchString(h.ID) {
		return h, fmt.Errorf("%s holds the id %q, which does not match its key", key, h.ID)
	}
	if err := h.validate(); err != nil {
		return h, fmt.Errorf("%s: %w", key, err)
	}
	return h, nil
}
