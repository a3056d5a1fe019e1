package sfu

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"fieldvideo/internal/audit"
	"fieldvideo/internal/auth"
	"fieldvideo/internal/conf"
	"fieldvideo/internal/whip"
	"fieldvideo/testbench/synth"
)

// putPosition sends body to PUT /v1/sources/{source}/position.
func (h *harness) putPosition(source, token, body string) (int, string) {
	h.t.Helper()
	status, answer, _ := h.request(http.MethodPut, h.base+"/v1/sources/"+source+"/position", token, "application/json", body)
	return status, answer
}

// listed returns source as GET /v1/sources lists it to an operator.
func (h *harness) listed(source string) SourceInfo {
	h.t.Helper()
	var list struct{ Sources []SourceInfo }
	if st := h.getJSON("/v1/sources", h.mintFor("op", auth.RoleOperator, nil, nil, time.Hour), &list); st != http.StatusOK {
		h.t.Fatalf("GET /v1/sources: %d", st)
	}
	for _, s := range list.Sources {
		if s.Name == source {
			return s
		}
	}
	h.t.Fatalf("GET /v1/sources does not list %s: %+v", source, list.Sources)
	return SourceInfo{}
}

// auditLines returns the audit log's events.
func (h *harness) auditLines() []audit.Event {
	h.t.Helper()
	b, err := os.ReadFile(h.audit)
	if err != nil {
		h.t.Fatal(err)
	}
	var out []audit.Event
	for _, line := range bytes.Split(b, []byte("\n")) {
		var e audit.Event
		if len(line) > 0 && json.Unmarshal(line, &e) == nil && e.Action != "" {
			out = append(out, e)
		}
	}
	return out
}

// The position of a source may be set by the token that publishes it (a
// camera token, as ingest sends it), or by an operator or commander; every
// attempt is audited with its actor, and refusals say why.
func TestPositionAccess(t *testing.T) {
	h := startSFU(t)
	ingest := h.mintFor("ingest-1", auth.RoleCamera, []string{"cam1"}, nil, time.Hour)
	_, stop := h.publishWith("cam1", synth.Params{}, func(p *whip.PublisherParams) { p.Client = &whip.Client{Token: ingest} })

	// untagged, a source is listed under the incident this server records.
	if in := h.listed("cam1"); in.Incident != h.srv.p.Conf.Record.Incident || in.Incident == "" {
		t.Errorf("untagged cam1 is listed with incident %q, want the recorded incident %q", in.Incident, h.srv.p.Conf.Record.Incident)
	}

	const body = `{"lat":25.0339,"lon":121.5645,"accuracy_m":8}`
	for _, tc := range []struct {
		name, source, token, ctype, body string
		status                           int
		want                             string
	}{
		{"no token", "cam1", "", "application/json", body, 401, "no token"},
		{"viewer", "cam1", h.mintFor("wall", auth.RoleWall, nil, []string{"*"}, time.Hour), "application/json", body, 403, `may not publish source "cam1"`},
		{"another publisher while live", "cam1", h.mintFor("bob", auth.RoleResponder, []string{"cam*"}, nil, time.Hour), "application/json", body, 403, "being published by ingest-1"},
		{"not JSON", "cam1", ingest, "text/plain", body, 415, "Content-Type: application/json"},
		{"too large", "cam1", ingest, "application/json", `{"note":"` + strings.Repeat("x", 5000) + `"}`, 413, "larger than 4096 bytes"},
		{"out of range", "cam1", ingest, "application/json", `{"lat":95,"lon":0}`, 400, "lat 95 is out of range"},
		{"never published", "cam9", h.mintFor("op", auth.RoleOperator, nil, nil, time.Hour), "application/json", body, 404, "has not been published here"},
		{"its publisher", "cam1", ingest, "application/json", body, 200, `"reporter":"ingest-1"`},
		{"a commander", "cam1", h.mintFor("cmd", auth.RoleCommander, nil, nil, time.Hour), "application/json", `{"incident":"flood-7","note":"north gate"}`, 200, `"incident":"flood-7"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, answer, _ := h.request(http.MethodPut, h.base+"/v1/sources/"+tc.source+"/position", tc.token, tc.ctype, tc.body)
			if status != tc.status || !strings.Contains(answer, tc.want) {
				t.Fatalf("got %d %q, want %d with %q", status, answer, tc.status, tc.want)
			}
		})
	}

	in := h.listed("cam1")
	if in.Reporter != "ingest-1" || in.Kind != "camera" || in.Incident != "flood-7" || in.Note != "north gate" || in.Position == nil ||
		in.Position.Lat != 25.0339 || in.Position.Lon != 121.5645 || in.Position.AccuracyM != 8 || in.Position.Heading != nil {
		t.Fatalf("GET /v1/sources lists cam1 as %+v (position %+v)", in, in.Position)
	}
	if since := time.Since(in.Position.At); since < 0 || since > time.Minute {
		t.Errorf("a position without at is stamped %s, %s from now", in.Position.At, since)
	}

	// offline, the last position stays, and a token that may publish the
	// source may set it (ingest, before its camera is back).
	stop()
	h.waitFor("cam1 offline", func() bool { return h.state("cam1") == "offline" })
	at := time.Now().Add(30 * time.Second).UTC().Truncate(time.Second)
	if st, answer := h.putPosition("cam1", h.mintFor("bob", auth.RoleResponder, []string{"cam*"}, nil, time.Hour),
		`{"lat":25.04,"lon":121.57,"heading":90,"at":"`+at.Format(time.RFC3339)+`"}`); st != 200 {
		t.Fatalf("a token that may publish the offline cam1: %d %s", st, answer)
	}
	in = h.listed("cam1")
	if in.State != "offline" || in.Reporter != "ingest-1" || in.Position == nil || in.Position.Lat != 25.04 || in.Position.Heading == nil || *in.Position.Heading != 90 ||
		!in.Position.At.Equal(at) {
		t.Fatalf("offline cam1 is listed as %+v (position %+v)", in, in.Position)
	}
	// an older measurement that arrives late does not replace a newer one.
	if st, answer := h.putPosition("cam1", ingest, `{"lat":1,"lon":1,"at":"2025-01-01T00:00:00Z"}`); st != 200 || !strings.Contains(answer, `"lat":25.04`) {
		t.Fatalf("a stale position: %d %s", st, answer)
	}
	// a person's token does not label a source a camera.
	if st, answer := h.putPosition("cam1", h.mintFor("bob", auth.RoleResponder, []string{"cam*"}, nil, time.Hour), `{"kind":"camera"}`); st != 403 || !strings.Contains(answer, "labels a source a camera") {
		t.Fatalf("a responder labelling a source a camera: %d %s", st, answer)
	}

	var ok, denied []audit.Event
	for _, e := range h.auditLines() {
		if e.Action != "position" {
			continue
		}
		if e.Source == "" || e.Via != "api" || e.Method != http.MethodPut {
			t.Errorf("audit event %+v lacks its source, via or method", e)
		}
		if e.Result == "ok" {
			ok = append(ok, e)
		} else {
			denied = append(denied, e)
		}
	}
	if len(ok) != 4 || len(denied) != 8 {
		t.Fatalf("audited %d granted and %d refused position updates, want 4 and 8:\n%+v\n%+v", len(ok), len(denied), ok, denied)
	}
	if ok[0].Actor != "ingest-1" || ok[0].Role != "camera" || ok[1].Actor != "cmd" {
		t.Errorf("granted updates are audited as %+v", ok)
	}
	for _, e := range denied {
		if e.Reason == "" || e.Status < 400 {
			t.Errorf("refused update audited without its reason or status: %+v", e)
		}
	}
	if denied[0].Actor != "anonymous" || !strings.Contains(denied[2].Reason, "being published by ingest-1") || denied[2].Actor != "bob" {
		t.Errorf("refusals are audited as %+v", denied)
	}
}

// A phone's page served from another origin (http.allow_origin) may set its
// position: the browser's preflight for the PUT is answered with it allowed.
// A source taken away for good leaves the list: its publisher's token or an
// operator removes it once it is offline; a live one is refused; the viewer
// that waited for it ends; the removal is audited.
func TestForgetSource(t *testing.T) {
	h := startSFU(t)
	camTok := h.token(auth.RoleCamera, []string{"cam1"}, nil)
	_, stop := h.publish("cam1", synth.Params{FPS: 25, GOP: 25})
	var rec received
	h.view("cam1", h.token(auth.RoleWall, nil, []string{"*"}), &rec)
	h.waitFor("video at the viewer", func() bool { n, _ := rec.counts(); return n > 20 })
	forget := func(tok string) (int, string) {
		st, body, _ := h.request(http.MethodDelete, h.base+"/v1/sources/cam1", tok, "", "")
		return st, body
	}
	if st, body := forget(camTok); st != http.StatusConflict || !strings.Contains(body, "live") {
		t.Errorf("removing a live source: %d %s, want 409", st, body)
	}
	stop()
	h.waitFor("cam1 offline", func() bool { return h.state("cam1") == "offline" })
	for _, c := range []struct {
		tok  string
		want int
	}{
		{"", http.StatusUnauthorized},
		{h.token(auth.RoleWall, nil, []string{"*"}), http.StatusForbidden},
		{h.token(auth.RoleCamera, []string{"cam2"}, nil), http.StatusForbidden},
	} {
		if st, body := forget(c.tok); st != c.want {
			t.Errorf("removing with a token that may not: %d %s, want %d", st, body, c.want)
		}
	}
	if st, body := forget(camTok); st != http.StatusNoContent {
		t.Fatalf("removing an offline source with its publisher's token: %d %s", st, body)
	}
	for _, s := range h.srv.Sources() {
		if s.Name == "cam1" {
			t.Fatalf("cam1 is still listed: %+v", s)
		}
	}
	h.waitFor("the waiting viewer's session ended", func() bool {
		h.srv.mu.Lock()
		defer h.srv.mu.Unlock()
		for _, ss := range h.srv.sessions {
			if ss.kind == "whep" && ss.source == "cam1" {
				return false
			}
		}
		return true
	})
	if st, _ := forget(camTok); st != http.StatusNotFound {
		t.Errorf("removing it again: %d, want 404", st)
	}
	found := false
	for _, e := range h.auditLines() {
		found = found || (e.Action == "forget" && e.Source == "cam1" && e.Result == "ok")
	}
	if !found {
		t.Error("the removal is not in the audit log")
	}
	// published again, it is a new source
	h.publish("cam1", synth.Params{})
}

func TestPositionFromAnotherOrigin(t *testing.T) {
	const origin = "https://responders.example.org"
	h := startSFUWith(t, func(c *conf.SFU) { c.HTTP.AllowOrigin = origin })
	req, err := http.NewRequest(http.MethodOptions, h.base+"/v1/sources/phone-7/position", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Origin", origin)
	req.Header.Set("Access-Control-Request-Method", http.MethodPut)
	req.Header.Set("Access-Control-Request-Headers", "authorization, content-type")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	methods := res.Header.Get("Access-Control-Allow-Methods")
	if res.StatusCode/100 != 2 || res.Header.Get("Access-Control-Allow-Origin") != origin || !strings.Contains(methods, "PUT") ||
		!strings.Contains(strings.ToLower(res.Header.Get("Access-Control-Allow-Headers")), "authorization") {
		t.Fatalf("preflight: %s, allow origin %q, methods %q, headers %q", res.Status, res.Header.Get("Access-Control-Allow-Origin"), methods, res.Header.Get("Access-Control-Allow-Headers"))
	}
}

func TestParsePositionUpdate(t *testing.T) {
	now := time.Date(2026, 12, 5, 18, 0, 0, 0, time.UTC)
	for _, tc := range []struct{ body, want string }{
		{``, "it is empty"},
		{`[1,2]`, "must be a JSON object, not a JSON array"},
		{`{"lat":"25","lon":121}`, "lat must be a number, not a JSON string"},
		{`{"lat":25,"lon":121,"alt":3}`, `unknown field "alt"`},
		{`{"lat":25,"lon":121}{"lat":1,"lon":1}`, "more after its JSON object"},
		{`{"lat":25`, "not a position update"},
		{`{"lat":25}`, "send lat and lon together"},
		{`{"heading":3}`, "send them with lat and lon"},
		{`{}`, "the body sets nothing"},
		{`{"lat":-90.5,"lon":0}`, "lat -90.5 is out of range"},
		{`{"lat":0,"lon":180.01}`, "lon 180.01 is out of range"},
		{`{"lat":0,"lon":0,"accuracy_m":-1}`, "accuracy_m -1 is out of range"},
		{`{"lat":0,"lon":0,"accuracy_m":2e6}`, "accuracy_m 2e+06 is out of range"},
		{`{"lat":0,"lon":0,"heading":360}`, "heading 360 is out of range"},
		{`{"lat":0,"lon":0,"lat":1e999}`, "lat must be a number, not a JSON number 1e999"},
		{`{"lat":0,"lon":0,"at":"yesterday"}`, `at "yesterday" is not an RFC 3339 time`},
		{`{"lat":0,"lon":0,"at":"2026-12-05T18:05:00Z"}`, "5m0s ahead of the server's clock"},
		{`{"lat":0,"lon":0,"at":"1970-01-01T00:00:00Z"}`, "before 2000"},
		{`{"kind":"Camera"}`, `kind "Camera"`},
		{`{"incident":"../etc"}`, `incident "../etc"`},
		{`{"note":"` + strings.Repeat("火", 201) + `"}`, "at most 200 characters (have 201)"},
		{`{"note":"a\u0000b"}`, "without control characters"},
		{`{"note":"smoke \u202egnp.exe"}`, "marks that reorder or hide text"},
		{`{"note":"a\u200bb"}`, "marks that reorder or hide text"},
		{`{"note":"a\u2066b\u2069"}`, "marks that reorder or hide text"},
	} {
		if _, err := parsePositionUpdate([]byte(tc.body), now); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error with %q", tc.body, err, tc.want)
		}
	}
	u, err := parsePositionUpdate([]byte(`{"lat":-33.8688,"lon":151.2093,"accuracy_m":4.5,"heading":null,"at":"2026-12-05T18:00:30.250+01:00","kind":"report","note":"  smoke  "}`), now)
	if err != nil {
		t.Fatal(err)
	}
	if p := u.pos; p == nil || p.Lat != -33.8688 || p.Lon != 151.2093 || p.AccuracyM != 4.5 || p.Heading != nil ||
		!p.At.Equal(time.Date(2026, 12, 5, 17, 0, 30, 250e6, time.UTC)) || *u.kind != "report" || *u.note != "smoke" || u.incident != nil {
		t.Fatalf("parsed %+v (position %+v)", u, u.pos)
	}
}

// FuzzParsePositionUpdate feeds the position parser arbitrary bodies; the
// seed corpus in testdata/fuzz/FuzzParsePositionUpdate holds valid updates
// and broken ones. What it accepts is in range, and reads back the same.
func FuzzParsePositionUpdate(f *testing.F) {
	now := time.Date(2026, 12, 5, 18, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, data []byte) {
		orig := bytes.Clone(data)
		u, err := parsePositionUpdate(data, now)
		if !bytes.Equal(orig, data) {
			t.Fatal("parsePositionUpdate modified its input")
		}
		if err != nil {
			if err.Error() == "" {
				t.Fatal("an error without a message")
			}
			return
		}
		if u.pos == nil && u.kind == nil && u.incident == nil && u.note == nil {
			t.Fatal("accepted an update that sets nothing")
		}
		if p := u.pos; p != nil {
			if p.Lat < -90 || p.Lat > 90 || p.Lon < -180 || p.Lon > 180 || p.AccuracyM < 0 || p.AccuracyM > maxAccuracyM ||
				(p.Heading != nil && (*p.Heading < 0 || *p.Heading >= 360)) || p.At.After(now.Add(positionClockSkew)) || p.At.Year() < 2000 {
				t.Fatalf("accepted a position out of range: %+v", p)
			}
			// what the API lists reads back as the same position.
			b, err := json.Marshal(map[string]any{"lat": p.Lat, "lon": p.Lon, "accuracy_m": p.AccuracyM, "heading": p.Heading, "at": p.At})
			if err != nil {
				t.Fatal(err)
			}
			again, err := parsePositionUpdate(b, now)
			if err != nil || again.pos.Lat != p.Lat || again.pos.Lon != p.Lon || !again.pos.At.Equal(p.At) {
				t.Fatalf("%s reads back as %+v, %v", b, again.pos, err)
			}
		}
	})
}

// testConsole is a console whose map page has the policy map.html has.
var testConsole = fstest.MapFS{"map.html": {Data: []byte(`<!doctype html><meta http-equiv="Content-Security-Policy" content="default-src 'self'; ` +
	mapImageSources + `; object-src 'none'"><title>Map</title>`)}}

// The map page is told the configured tiles, and its policy lets it load
// images from the tile server's origin, and from no other.
func TestMapSettings(t *testing.T) {
	for _, tc := range []struct{ tiles, imgSrc string }{
		{"", mapImageSources + ";"},
		{"/tiles/{z}/{x}/{y}.png", mapImageSources + ";"},
		{"https://tiles.example.org:8443/osm/{z}/{x}/{y}{r}.png", mapImageSources + " https://tiles.example.org:8443;"},
	} {
		t.Run(tc.tiles, func(t *testing.T) {
			c := conf.DefaultSFU()
			c.HTTP.Address, c.WebRTC.UDPAddress, c.Log.Level = "127.0.0.1:0", "127.0.0.1:0", "warn"
			c.Console.MapTiles, c.Console.MapAttribution = tc.tiles, "© OpenStreetMap contributors"
			dir := t.TempDir()
			al, err := audit.Open(audit.Params{File: filepath.Join(dir, "audit.log"), KeyFile: filepath.Join(dir, "audit.key")})
			if err != nil {
				t.Fatal(err)
			}
			defer al.Close()
			v, err := auth.NewVerifier(testSecret, nil)
			if err != nil {
				t.Fatal(err)
			}
			srv, err := New(Params{Conf: c, Verifier: v, Audit: al, Log: c.Log.NewLogger(testWriter{t}), Console: testConsole})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { _ = srv.Run(ctx); close(done) }()
			defer func() { cancel(); <-done }()
			base := "http://" + srv.HTTPAddr()

			res, err := http.Get(base + "/map.html")
			if err != nil {
				t.Fatal(err)
			}
			var page bytes.Buffer
			_, _ = page.ReadFrom(res.Body)
			res.Body.Close()
			if res.StatusCode != 200 || !strings.Contains(page.String(), tc.imgSrc) || strings.Count(page.String(), "img-src") != 1 {
				t.Fatalf("map.html: %d %s, want img-src %q", res.StatusCode, page.String(), tc.imgSrc)
			}

			h := &harness{t: t, base: base}
			if st, _, _ := h.request(http.MethodGet, base+"/v1/map", "", "", ""); st != http.StatusUnauthorized {
				t.Fatalf("GET /v1/map without a token: %d", st)
			}
			tok, err := auth.Mint(testSecret, auth.Claims{Role: auth.RoleWall, View: []string{"*"}}, time.Hour, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			var got MapSettings
			if st := h.getJSON("/v1/map", tok, &got); st != 200 || got.Tiles != tc.tiles || got.Attribution != "© OpenStreetMap contributors" {
				t.Fatalf("GET /v1/map: %d %+v", st, got)
			}
		})
	}
}

// Merged tags take the newest position and each other tag from the first
// node that has it.
func TestMergeTags(t *testing.T) {
	now := time.Now()
	older, newer := &Position{Lat: 1, At: now.Add(-time.Second)}, &Position{Lat: 2, At: now}
	m := MergeTags(SourceTags{Reporter: "phone-7", Position: older}, SourceTags{Reporter: "relay@x", Note: "gate", Position: newer}, SourceTags{Kind: "report", Position: older})
	if m.Reporter != "phone-7" || m.Note != "gate" || m.Kind != "report" || m.Position != newer {
		t.Fatalf("merged %+v (position %+v)", m, m.Position)
	}
	if !MergeTags().empty() {
		t.Fatal("nothing merged is not empty")
	}

	// Labels set by updates: the latest wins whichever node holds it, even
	// when it cleared the label; one never set by an update only fills a gap.
	publisher := SourceTags{Reporter: "phone-7", Kind: "report", Note: "smoke", NoteAt: now.Add(-time.Minute), Incident: "flood-7", IncidentAt: now.Add(-time.Minute)}
	edited := SourceTags{Note: "smoke, 3rd floor", NoteAt: now, Incident: "", IncidentAt: now, Kind: "vehicle", KindAt: now}
	for _, order := range [][]SourceTags{{publisher, edited}, {edited, publisher}} {
		m := MergeTags(order...)
		if m.Note != "smoke, 3rd floor" || m.Incident != "" || m.Kind != "vehicle" || m.Reporter != "phone-7" || !m.NoteAt.Equal(now) {
			t.Errorf("merged %+v; want the later edit's note, its cleared incident and its kind, and the publisher's reporter", m)
		}
	}
	if m := MergeTags(SourceTags{Kind: "camera"}, SourceTags{Note: "north gate", NoteAt: now}); m.Kind != "camera" || m.Note != "north gate" {
		t.Errorf("merged %+v; want the derived kind kept and the note added", m)
	}
}
