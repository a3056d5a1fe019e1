package playback

import (
	"archive/zip"
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fieldvideo/internal/audit"
	"fieldvideo/internal/auth"
	"fieldvideo/internal/testkit"
)

// exportZip asks the API for an export and writes the zip to a file.
func (s *server) exportZip(t *testing.T, tok string, req ExportRequest) (int, string) {
	t.Helper()
	body, _ := json.Marshal(req)
	hr, _ := http.NewRequest(http.MethodPost, s.base+"/v1/exports", bytes.NewReader(body))
	hr.Header.Set("Authorization", "Bearer "+tok)
	res, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("export: reading the answer: %v", err)
	}
	if res.StatusCode != http.StatusOK {
		return res.StatusCode, string(b)
	}
	p := filepath.Join(t.TempDir(), "export.zip")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, p
}

// unzip unpacks an export into a directory.
func unzip(t *testing.T, zipPath string) string {
	t.Helper()
	dir := t.TempDir()
	zr, err := zip.OpenReader(zipPath)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f.Name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func verifyProblems(t *testing.T, path string, pub ed25519.PublicKey) []string {
	t.Helper()
	rep, err := VerifyExport(path, pub)
	if err != nil {
		t.Fatalf("verify %s: %v", path, err)
	}
	return rep.Problems
}

// testExport: an export verifies, and verify names a flipped byte, a
// reordered or removed fragment, a removed or added file and an edited
// manifest; exports are for reviewers and audited.
func testExport(t *testing.T, rec *recorded, srv *server) {
	pub := srv.exporter.key.Public().(ed25519.PublicKey)
	from, to := rec.sessionOne[0].start.Add(500*time.Millisecond), rec.sessionOne[3].end
	req := ExportRequest{Incident: incident, Sources: []string{"cam1"}, Start: from, End: to}

	wall := mint(t, auth.Claims{Role: auth.RoleWall, View: []string{"*"}})
	if code, msg := srv.exportZip(t, wall, req); code != http.StatusForbidden {
		t.Fatalf("a wall token exported: %d %s", code, msg)
	}
	granted := mint(t, auth.Claims{Role: auth.RoleCommander, Review: true})
	if code, msg := srv.exportZip(t, granted, req); code != http.StatusForbidden || !strings.Contains(msg, "reviewer role only") {
		t.Fatalf("a commander with the review grant exported: %d %s", code, msg)
	}
	code, zipPath := srv.exportZip(t, srv.reviewer, req)
	if code != http.StatusOK {
		t.Fatalf("export: %d %s", code, zipPath)
	}
	if p := verifyProblems(t, zipPath, pub); len(p) != 0 {
		t.Fatalf("a fresh export does not verify: %v", p)
	}
	var out bytes.Buffer
	if err := Command([]string{"verify", "-key", "", zipPath}, &out); err != nil || !strings.Contains(out.String(), "OK:") {
		t.Fatalf("export verify: %v\n%s", err, out.String())
	}
	dir := unzip(t, zipPath)
	if p := verifyProblems(t, dir, pub); len(p) != 0 {
		t.Fatalf("the unpacked export does not verify: %v", p)
	}
	ffprobe(t, filepath.Join(dir, "cam1.mp4"))
	var m ExportManifest
	b, _ := os.ReadFile(filepath.Join(dir, ManifestName))
	if err := json.Unmarshal(b, &m); err != nil || len(m.Files) != 1 || len(m.Files[0].Parts) < 6 || len(m.Files[0].Segments) < 4 ||
		m.ExportedBy != "test-reviewer" || !m.Files[0].CaptureStart.Equal(from) {
		t.Fatalf("manifest %+v: %v", m, err)
	}

	mp := filepath.Join(dir, "cam1.mp4")
	orig, _ := os.ReadFile(mp)
	parts := m.Files[0].Parts
	mutate := func(name string, fn func() error, want string) []string {
		t.Helper()
		if err := fn(); err != nil {
			t.Fatal(err)
		}
		p := verifyProblems(t, dir, pub)
		if len(p) == 0 || !strings.Contains(strings.Join(p, "\n"), want) {
			t.Errorf("%s: verify says %q, want it to name %q", name, p, want)
		}
		t.Logf("%s: %s", name, strings.Join(p, "; "))
		if err := os.WriteFile(mp, orig, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	mutate("flipped byte", func() error {
		b := append([]byte(nil), orig...)
		b[parts[3].Offset+parts[3].Size-7] ^= 1
		return os.WriteFile(mp, b, 0o644)
	}, fmt.Sprintf("altered: cam1.mp4, bytes %d to %d: fragment", parts[3].Offset, parts[3].Offset+parts[3].Size-1))
	mutate("reordered fragments", func() error {
		a, c := parts[2], parts[3]
		b := append([]byte(nil), orig[:a.Offset]...)
		b = append(b, orig[c.Offset:c.Offset+c.Size]...)
		b = append(b, orig[a.Offset:a.Offset+a.Size]...)
		b = append(b, orig[c.Offset+c.Size:]...)
		return os.WriteFile(mp, b, 0o644)
	}, "reordered: cam1.mp4: fragment 3")
	if p := mutate("removed fragment", func() error {
		a := parts[4]
		b := append(append([]byte(nil), orig[:a.Offset]...), orig[a.Offset+a.Size:]...)
		return os.WriteFile(mp, b, 0o644)
	}, "missing: cam1.mp4: fragment 5"); len(p) != 1 {
		t.Errorf("a removed fragment is reported as %q, want it alone", p)
	}
	mutate("removed file", func() error { return os.Remove(mp) }, "missing: cam1.mp4")
	mutate("added file", func() error { return os.WriteFile(filepath.Join(dir, "extra.mp4"), []byte("x"), 0o644) }, "added: extra.mp4")
	_ = os.Remove(filepath.Join(dir, "extra.mp4"))
	mutate("edited manifest", func() error {
		mb, _ := os.ReadFile(filepath.Join(dir, ManifestName))
		mb = bytes.Replace(mb, []byte(`"exported_by": "test-reviewer"`), []byte(`"exported_by": "someone-else"`), 1)
		t.Cleanup(func() { _ = os.WriteFile(filepath.Join(dir, ManifestName), b, 0o644) })
		return os.WriteFile(filepath.Join(dir, ManifestName), mb, 0o644)
	}, "does not match its signature")
	_ = os.WriteFile(filepath.Join(dir, ManifestName), b, 0o644)

	// Signed by another key: refused when the expected key is given.
	other, _, _ := ed25519.GenerateKey(nil)
	if p := verifyProblems(t, zipPath, other); len(p) == 0 {
		t.Fatal("an export verified against another key")
	}

	// Exports are audited: the request, and its completion with the
	// manifest's hash.
	var started, completed bool
	for _, ev := range srv.auditEvents(t) {
		started = started || (ev.Action == "export" && ev.Actor == "test-reviewer" && ev.Result == "ok" && ev.Source == "cam1")
	}
	lines, _ := os.ReadFile(srv.auditLog)
	for _, line := range strings.Split(string(lines), "\n") {
		var ev audit.Event
		if json.Unmarshal([]byte(line), &ev) == nil && ev.Action == "export-complete" && strings.Contains(ev.Reason, "manifest SHA-256") {
			completed = true
		}
	}
	if !started || !completed {
		t.Fatalf("export audited: started %v, completed %v", started, completed)
	}

	if code, msg := srv.exportZip(t, srv.reviewer, ExportRequest{Sources: []string{"cam1"}, Start: to, End: from}); code != http.StatusBadRequest {
		t.Fatalf("reversed export range: %d %s", code, msg)
	}
	if code, msg := srv.exportZip(t, srv.reviewer, ExportRequest{Sources: []string{"cam1", "cam1"}, Start: from, End: to}); code != http.StatusBadRequest {
		t.Fatalf("a source twice: %d %s", code, msg)
	}
}

// testFailover: the primary store stops in the middle of a review: the
// stream goes on from the off-site copy, answers say so, and they move
// back once the primary answers again.
func testFailover(t *testing.T, rec *recorded, srv *server) {
	site := func() string {
		var out struct{ Site string }
		srv.getJSON(t, "/v1/recordings", nil, &out)
		return out.Site
	}
	if s := site(); s != "primary" {
		t.Fatalf("answers from %s at first", s)
	}
	from, to := rec.first, rec.last
	hr, _ := http.NewRequest(http.MethodGet, srv.base+"/v1/recordings/stream?"+url.Values{"source": {"cam1"}, "start": {ts(from)}, "end": {ts(to)}, "token": {srv.reviewer}}.Encode(), nil)
	res, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK || res.Header.Get("X-Playback-Site") != "primary" {
		t.Fatalf("%d from %q", res.StatusCode, res.Header.Get("X-Playback-Site"))
	}
	// Read the first fragment, then stop the primary.
	first := make([]byte, 64<<10)
	if _, err := io.ReadFull(res.Body, first); err != nil {
		t.Fatal(err)
	}
	rec.minio.Stop()
	stopped := time.Now()
	rest, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("the stream broke when the primary stopped: %v", err)
	}
	if sk := res.Trailer.Get("X-Playback-Skipped"); sk != "" {
		t.Fatalf("segments left out when the primary stopped: %s", sk)
	}
	p := ffprobe(t, writeFile(t, append(first, rest...)))
	last := 0.0
	for _, f := range p.Frames {
		if f.MediaType == "video" {
			last = max(last, ptime(f.PTSTime))
		}
	}
	if want := to.Sub(from).Seconds() - 0.2; last < want {
		t.Fatalf("the stream ends at %.2f s, want %.2f s", last, want)
	}
	if s := site(); s != "offsite" {
		t.Fatalf("answers from %s with the primary stopped", s)
	}
	t.Logf("stream completed from the off-site copy %s after the primary stopped", time.Since(stopped).Round(time.Millisecond))
	rec.minio.Start()
	back := time.Now()
	testkit.WaitFor(t, 20*time.Second, "answers from the primary again", func() bool { return site() == "primary" })
	t.Logf("back on the primary %s after it restarted", time.Since(back).Round(time.Millisecond))
	var out struct{ Sites []SiteState }
	srv.getJSON(t, "/v1/recordings", nil, &out)
	if len(out.Sites) != 2 || !out.Sites[0].Healthy || !out.Sites[0].Active || out.Sites[1].Active {
		t.Fatalf("sites %+v", out.Sites)
	}
	if srv.pb.Switches() < 2 {
		t.Fatalf("%d switches", srv.pb.Switches())
	}
}
