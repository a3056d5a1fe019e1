package drill

import (
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"fieldvideo/internal/auth"
	"fieldvideo/internal/testkit"
)

// The CI-sized form by default; `make drill` runs a longer one and keeps
// the report.
var (
	recordFor = flag.Duration("drill.record", 20*time.Second, "how much known content to record before the primary store is cut")
	cameraN   = flag.Int("drill.cameras", 2, "number of demo cameras")
	segDur    = flag.Duration("drill.segment", 2*time.Second, "recording segment duration")
	window    = flag.Duration("drill.window", 2*time.Minute, "the last minutes before the cut whose segments are looked for off-site (RPO)")
	reportDir = flag.String("drill.report", "", "directory for drill.md and drill.json (default: the test's temporary directory)")
)

// drill is one run: the system and the report being written.
type drill struct {
	*system
	rep   *Report
	began time.Time
}

// begin starts a timed step and returns its index for end.
func (d *drill) begin(name string) int {
	d.t.Logf("drill: %s", name)
	d.rep.Steps = append(d.rep.Steps, Step{Name: name, At: Seconds(time.Since(d.began)), Detail: "did not finish"})
	return len(d.rep.Steps) - 1
}

// end finishes step i.
func (d *drill) end(i int, ok bool, format string, a ...any) {
	s := &d.rep.Steps[i]
	s.Took = Seconds(time.Since(d.began) - time.Duration(s.At))
	s.OK, s.Detail = ok, fmt.Sprintf(format, a...)
	d.t.Logf("drill: %s: %s (%s)", s.Name, s.Detail, s.Took)
}

// fail finishes step i as failed and ends the drill: what follows depends
// on it.
func (d *drill) fail(i int, format string, a ...any) {
	d.t.Helper()
	d.end(i, false, format, a...)
	d.t.Fatalf("drill: %s failed: %s", d.rep.Steps[i].Name, d.rep.Steps[i].Detail)
}

// check records a functional check; a failed one fails the test, and the
// drill goes on.
func (d *drill) check(name string, ok bool, format string, a ...any) {
	d.t.Helper()
	c := Check{Name: name, OK: ok, Detail: fmt.Sprintf(format, a...)}
	d.rep.Checks = append(d.rep.Checks, c)
	if !ok {
		d.t.Errorf("drill check %q failed: %s", name, c.Detail)
	}
}

// objective records a measured RPO or RTO figure.
func (d *drill) objective(o Objective) {
	d.t.Helper()
	d.rep.Objectives = append(d.rep.Objectives, o)
	if !o.OurPass || !o.SeedPass {
		ours, seed := OurLimits.RTO, SeedLimits.RTO
		if o.Kind == "RPO" {
			ours, seed = OurLimits.RPO, SeedLimits.RPO
		}
		d.t.Errorf("drill: %s %s of %s misses the target (ours ≤ %s, seed ≤ %s)", o.Kind, o.Name, o.Measured, ours, seed)
	}
}

func (d *drill) note(format string, a ...any) {
	d.rep.Notes = append(d.rep.Notes, fmt.Sprintf(format, a...))
}

// TestDrill is the disaster-recovery drill on real processes: record known
// content; cut the primary store, then the primary SFU; time detection,
// switch-over and the first playback from the off-site copy (RTO); list
// what was off-site at the cut (RPO); check live view, call join and
// playback; restore and resynchronise; write the report.
func TestDrill(t *testing.T) {
	testkit.RequireBinary(t, testkit.FFprobePath)
	s := &system{t: t, root: testkit.RepoRoot(t), bin: t.TempDir(), dir: t.TempDir(), segment: *segDur,
		http: &http.Client{Transport: &http.Transport{Proxy: nil}}}
	for i := 1; i <= *cameraN; i++ {
		s.cameras = append(s.cameras, fmt.Sprintf("cam%d", i))
	}
	d := &drill{system: s, began: time.Now(), rep: &Report{Started: time.Now(), Limits: []Limits{SeedLimits, OurLimits},
		Params: Params{Record: Seconds(*recordFor), Cameras: *cameraN, SegmentDuration: Seconds(*segDur), Window: Seconds(*window)}}}
	dir := *reportDir
	if dir == "" {
		dir = t.TempDir()
	}
	t.Cleanup(func() {
		d.rep.Finished = time.Now()
		d.rep.Wall = Seconds(time.Since(d.began))
		d.rep.Judge()
		d.rep.Pass = d.rep.Pass && !t.Failed()
		if err := d.rep.Write(dir); err != nil {
			t.Error(err)
		}
		t.Logf("drill report in %s:\n%s", dir, d.rep.Markdown())
	})

	reviewer := token(t, auth.RoleReviewer, nil)
	operator := token(t, auth.RoleOperator, func(c *auth.Claims) { c.View = []string{"*"} })
	callToken := func(r auth.Role) string {
		return token(t, r, func(c *auth.Claims) { c.Room, c.RoomPublish, c.RoomSubscribe = "drill-*", true, true })
	}

	// Bring the system up.
	st := d.begin("build the binaries")
	s.build()
	d.end(st, true, "sfu, ingest, democam")

	st = d.begin("start the stores")
	s.primary = testkit.StartMinIO(t, testkit.S3ServerParams{})
	s.offsite = testkit.StartVersityGW(t, testkit.S3ServerParams{})
	d.end(st, true, "primary: MinIO at %s; off-site: versitygw at %s", s.primary.Endpoint, s.offsite.Endpoint)

	st = d.begin("start cameras, SFU and ingest")
	s.startCameras()
	sfuProc, sfu := s.startSFU("sfu")
	_, ingest := s.startIngest(sfu)
	d.end(st, true, "%d demo cameras (true capture times in SEI) at %s; SFU %s; ingest API %s", len(s.cameras), s.camAddr, sfu, ingest)

	st = d.begin("live and recording at both sites")
	var live time.Duration
	ok := waitUntil(40*time.Second, 250*time.Millisecond, func() bool {
		for _, c := range s.cameras {
			if s.sourceState(sfu, operator, c) != "live" {
				return false
			}
		}
		if live == 0 {
			live = time.Since(d.began) - time.Duration(d.rep.Steps[st].At)
		}
		a, err1 := segments(s.primary)
		b, err2 := segments(s.offsite)
		if err1 != nil || err2 != nil {
			return false
		}
		for _, c := range s.cameras {
			if len(a[c]) < 1 || len(b[c]) < 1 {
				return false
			}
		}
		return true
	})
	if !ok {
		d.fail(st, "the cameras were not live at the SFU and recorded at both sites within 40 s")
	}
	d.end(st, true, "every camera live at the SFU after %s, and a segment of each at both sites", live.Round(time.Millisecond))

	st = d.begin("record known content")
	var recStart time.Time
	ok = waitUntil(*recordFor+30*time.Second, 500*time.Millisecond, func() bool {
		b, err := segments(s.offsite)
		if err != nil {
			return false
		}
		for _, c := range s.cameras {
			segs := b[c]
			if len(segs) == 0 || segs[len(segs)-1].end.Sub(segs[0].start) < *recordFor {
				return false
			}
			if recStart.IsZero() || segs[0].start.Before(recStart) {
				recStart = segs[0].start
			}
		}
		return true
	})
	if !ok {
		d.fail(st, "the off-site copy did not reach %s of recordings of every camera", *recordFor)
	}
	d.end(st, true, "%s of every camera off-site, from %s", *recordFor, recStart.UTC().Format(time.RFC3339))

	// Cut the primary store.
	st = d.begin("note the newest segments at both sites, cut the primary store")
	before, err := segments(s.primary)
	if err != nil {
		d.fail(st, "%v", err)
	}
	offBefore, err := segments(s.offsite)
	if err != nil {
		d.fail(st, "%v", err)
	}
	// The known segment: the newest one of the first camera at both sites,
	// played from the primary as a reviewer would before the cut.
	var known segment
	atBoth := keys(offBefore[s.cameras[0]])
	for _, g := range before[s.cameras[0]] {
		if atBoth[g.key] {
			known = g
		}
	}
	if known.key == "" {
		d.fail(st, "no segment of %s is at both sites", s.cameras[0])
	}
	pb, err := s.play(sfu, reviewer, known)
	d.check("playback before the cut", err == nil && pb.site == "primary", "%s %v", pb, errText(err))
	recBefore, err := s.recordingState(ingest, operator)
	if err != nil {
		d.fail(st, "%v", err)
	}
	offAtCut, err := segments(s.offsite)
	if err != nil {
		d.fail(st, "%v", err)
	}
	t0 := time.Now()
	s.primary.Stop()
	stopped := time.Since(t0)
	d.end(st, true, "newest at the primary: %s; off-site: %s; known segment %s; MinIO stopped in %s",
		newest(before, s.cameras), newest(offAtCut, s.cameras), known, stopped.Round(time.Millisecond))

	// Detection and switch-over, as a reviewer polling the playback API sees them.
	st = d.begin("detect the loss of the primary store and switch over")
	var detect, switched, recDetect, lastStale time.Duration
	stale := 0
	covQ := func(base string) string {
		return base + "/v1/recordings/coverage?" + url.Values{"incident": {incident}, "source": {strings.Join(s.cameras, ",")},
			"start": {strconv.FormatInt(t0.Add(-time.Minute).UnixMilli(), 10)}, "end": {strconv.FormatInt(time.Now().UnixMilli(), 10)}}.Encode()
	}
	ok = waitUntil(60*time.Second, 100*time.Millisecond, func() bool {
		if a, err := s.get(sfu+"/v1/recordings", reviewer); err == nil && a.status == http.StatusOK {
			var r recordings
			if json.Unmarshal(a.body, &r) == nil && len(r.Sites) == 2 {
				if detect == 0 && (!r.Sites[0].Healthy || r.Site == "offsite") {
					detect = time.Since(t0)
				}
				if r.Site == "primary" && r.Sites[0].Healthy {
					stale++
					lastStale = time.Since(t0)
				}
			}
		}
		if a, err := s.get(covQ(sfu), reviewer); err == nil && a.status == http.StatusOK && switched == 0 && a.header.Get("X-Playback-Site") == "offsite" {
			switched = time.Since(t0)
		}
		if v, err := s.recordingState(ingest, operator); err == nil && recDetect == 0 && len(v.Stores) == 2 && !v.Stores[0].Up {
			recDetect = time.Since(t0)
		}
		return detect > 0 && switched > 0 && recDetect > 0
	})
	if !ok {
		d.fail(st, "after 60 s: playback detection %s, switch-over %s, recorder detection %s", detect, switched, recDetect)
	}
	d.end(st, true, "playback API reports the primary down %s after the cut; answers from the off-site copy after %s; ingest's recorder reports it down after %s",
		detect.Round(time.Millisecond), switched.Round(time.Millisecond), recDetect.Round(time.Millisecond))
	if stale > 0 {
		d.note("GET /v1/recordings answered %d time(s) after the cut (the last %s after it) that the primary served it and is healthy: "+
			"it answers from the cached listing without asking the store, so it shows the loss only once playback's health check "+
			"or another request (coverage, stream) has reached the store.", stale, lastStale.Round(time.Millisecond))
	}

	st = d.begin("first playback of the known segment from the off-site copy")
	var pl played
	var lastErr error
	ok = waitUntil(60*time.Second, 200*time.Millisecond, func() bool {
		pl, lastErr = s.play(sfu, reviewer, known)
		return lastErr == nil && pl.site == "offsite"
	})
	rtoStore := time.Since(t0)
	if !ok {
		d.fail(st, "no playback of %s from the off-site copy within 60 s: %v (site %q)", known, lastErr, pl.site)
	}
	d.end(st, true, "%s", pl)
	d.objective(NewObjective("RTO", "store", "primary store cut → first playback of a segment recorded before the cut, from the off-site copy, decoded by ffprobe", rtoStore))
	d.check("known content off-site", pl.alignMax < 250*time.Millisecond, "the off-site copy of %s holds the frames captured then; its timeline is within %s of their true capture times",
		known, pl.alignMax.Round(time.Microsecond))

	// RPO: what of the last minutes was off-site at the cut.
	from := t0.Add(-*window)
	if from.Before(recStart) {
		from = recStart
	}
	var rpo time.Duration
	for _, c := range s.cameras {
		sr := sourceRPO(c, before[c], offAtCut[c], from, t0)
		for _, sv := range recBefore.Sources {
			if sv.Name == c {
				sr.RecorderRPO = Seconds(time.Duration(sv.RPOSeconds * float64(time.Second)))
			}
		}
		rpo = max(rpo, time.Duration(sr.Lost))
		d.rep.Sources = append(d.rep.Sources, sr)
	}
	d.objective(NewObjective("RPO", "off-site copy", "capture time lost had the primary site been lost at the cut: cut − the first capture instant not off-site (worst camera)", rpo))
	d.objective(NewObjective("RPO", "ingest recorder", "ingest's own RPO (/v1/recording) just before the cut", time.Duration(recBefore.RPOSeconds*float64(time.Second))))

	// The key functions while the primary store is down.
	st = d.begin("key functions with the primary store down")
	took, err := watchLive(sfu, operator, s.cameras[0], 15*time.Second)
	d.check("live view (store down)", err == nil, "a new WHEP viewer of %s got a keyframe after %s %v", s.cameras[0], took.Round(time.Millisecond), errText(err))
	_, detail, err := joinCall(sfu, "drill-store", callToken)
	d.check("call join (store down)", err == nil, "%s%v", detail, errText(err))
	// An instant every camera had off-site at the cut.
	syncT := t0
	for _, c := range s.cameras {
		if l := offAtCut[c]; len(l) > 0 && l[len(l)-1].end.Before(syncT) {
			syncT = l[len(l)-1].end
		}
	}
	at := d.syncedAt(sfu, reviewer, syncT.Add(-s.segment/2), "offsite")
	var grew bool
	ok = waitUntil(3*s.segment+20*time.Second, 500*time.Millisecond, func() bool {
		b, err := segments(s.offsite)
		if err != nil {
			return false
		}
		for _, c := range s.cameras {
			if segs := b[c]; len(segs) == 0 || !segs[len(segs)-1].start.After(t0) {
				return false
			}
		}
		v, err := s.recordingState(ingest, operator)
		grew = err == nil && len(v.Stores) == 2 && v.Stores[0].BacklogSegs > 0
		return true
	})
	d.check("recording goes on off-site (store down)", ok, "every camera has a segment captured after the cut off-site; the primary's backlog at ingest is growing: %v", grew)
	d.end(st, true, "live view, call join, playback (%s)", at)

	// Cut the primary SFU; a standby takes over playback.
	st = d.begin("kill the primary SFU, start a standby")
	t1 := time.Now()
	sfuProc.kill()
	var sfuDetect time.Duration
	waitUntil(10*time.Second, 50*time.Millisecond, func() bool {
		_, err := s.get(sfu+"/healthz", "")
		if err != nil {
			sfuDetect = time.Since(t1)
		}
		return err != nil
	})
	_, standby := s.startSFU("sfu-standby")
	d.end(st, sfuDetect > 0, "SIGKILL; health check refused after %s; standby at %s after %s", sfuDetect.Round(time.Millisecond), standby, time.Since(t1).Round(time.Millisecond))

	st = d.begin("first playback of the known segment from the standby SFU")
	ok = waitUntil(60*time.Second, 200*time.Millisecond, func() bool {
		pl, lastErr = s.play(standby, reviewer, known)
		return lastErr == nil
	})
	rtoSFU := time.Since(t1)
	if !ok {
		d.fail(st, "no playback from the standby within 60 s: %v", lastErr)
	}
	d.end(st, pl.site == "offsite", "%s", pl)
	d.objective(NewObjective("RTO", "SFU", "primary SFU killed → first playback of the known segment from a standby SFU (primary store still down)", rtoSFU))
	pi, err := s.play(ingest, reviewer, known)
	d.check("playback from ingest's API (SFU and store down)", err == nil && pi.site == "offsite", "%s %v", pi, errText(err))
	d.note("Live view does not move to the standby SFU by itself: ingest's uplink.url names one SFU, so the cameras reach the standby only when ingest is pointed at it (DNS or a restart).")

	// Restore and resynchronise.
	st = d.begin("restore the primary store; playback moves back, ingest catches up")
	v, err := s.recordingState(ingest, operator)
	if err != nil || len(v.Stores) != 2 {
		d.fail(st, "ingest's recording state: %v", err)
	}
	atRestore, failures := v.Stores[0].BacklogSegs, uint64(0)
	t2 := time.Now()
	s.primary.Start()
	minioUp := time.Since(t2)
	// Playback moving back and ingest's recorder catching up, watched
	// together.
	var back, upAgain, drained time.Duration
	backlog := atRestore
	ok = waitUntil(90*time.Second, 100*time.Millisecond, func() bool {
		if back == 0 {
			if a, err := s.get(covQ(standby), reviewer); err == nil && a.status == http.StatusOK && a.header.Get("X-Playback-Site") == "primary" {
				back = time.Since(t2)
				d.holeAfterSwitchBack(standby, reviewer, t0, t2, back)
			}
		}
		if v, err := s.recordingState(ingest, operator); err == nil && len(v.Stores) == 2 {
			backlog = v.Stores[0].BacklogSegs
			if v.Stores[0].Up && upAgain == 0 {
				upAgain = time.Since(t2)
			}
			if v.Stores[0].Up && backlog == 0 && drained == 0 {
				drained, failures = time.Since(t2), v.Stores[0].UploadFailures
			}
		}
		return back > 0 && drained > 0
	})
	if !ok {
		d.fail(st, "90 s after the restore: playback back at the primary after %s; ingest's primary backlog %d segments", back, backlog)
	}
	pp, err := s.play(standby, reviewer, known)
	d.check("playback from the restored primary", err == nil && pp.site == "primary", "%s %v", pp, errText(err))
	d.end(st, true, "MinIO answering after %s; playback back at the primary after %s; ingest's recorder saw the primary up after %s and its backlog of %d segments drained after %s",
		minioUp.Round(time.Millisecond), back.Round(time.Millisecond), upAgain.Round(time.Millisecond), atRestore, drained.Round(time.Millisecond))
	if upAgain > 5*time.Second {
		d.note("Ingest's recorder retried the primary only %s after it answered again (%d segments waiting; %d failed uploads to it in all, for an outage of %s): "+
			"its backoff doubles at every failed upload of any of its workers (internal/recorder/uploader.go fail: retry_min << (failures−1), capped at retry_max 30 s, ±20%%), "+
			"and with a backlog it sleeps the backoff without probing, so after an outage of a few seconds the primary catches up — and /v1/recording shows it up — only up to 36 s after it is back.",
			upAgain.Round(time.Millisecond), atRestore, failures, t2.Sub(t0).Round(time.Second))
	}

	st = d.begin("resynchronised: the outage's segments at the primary")
	// Every segment recorded during the outage is at the primary.
	var outage, missing []string
	var resynced time.Duration
	ok = waitUntil(60*time.Second, 500*time.Millisecond, func() bool {
		a, err1 := segments(s.primary)
		b, err2 := segments(s.offsite)
		if err1 != nil || err2 != nil {
			return false
		}
		outage, missing = nil, nil
		for _, c := range s.cameras {
			atPrimary := keys(a[c])
			for _, g := range b[c] {
				if g.end.After(t0) && g.start.Before(t2) {
					outage = append(outage, g.key)
					if !atPrimary[g.key] {
						missing = append(missing, g.String())
					}
				}
			}
		}
		resynced = time.Since(t2)
		return len(missing) == 0
	})
	d.check("outage segments at the primary", ok && len(outage) > 0, "%d segments captured during the outage are at the primary %s after the restore; missing: %v",
		len(outage)-len(missing), resynced.Round(time.Millisecond), missing)
	d.end(st, ok, "the outage's %d segments at the primary %s after the restore", len(outage), resynced.Round(time.Millisecond))

	st = d.begin("coverage across the outage")
	var gaps []string
	var site string
	ok = waitUntil(15*time.Second, 250*time.Millisecond, func() bool {
		site, gaps = d.coverageGaps(standby, reviewer, t0.Add(-10*time.Second), t2)
		return len(gaps) == 0
	})
	d.check("no gap across the outage", ok, "coverage of every camera from 10 s before the cut to the restore, answered by %s %s after the restore: gaps %v",
		site, time.Since(t2).Round(time.Millisecond), gaps)
	d.end(st, ok, "%d gaps", len(gaps))

	d.note("Detection is measured as a reviewer polling the playback API every 100 ms sees it; playback notices a failed store when a request reaches it or at its health check of every site (every 2 s).")
	d.note("The standby SFU was started by the drill as soon as the primary's health check was refused; a real deployment adds its monitor's interval to RTO(SFU).")
	d.rep.Judge()
}

// newest names each camera's newest segment.
func newest(segs map[string][]segment, cams []string) string {
	var out []string
	for _, c := range cams {
		if l := segs[c]; len(l) > 0 {
			out = append(out, l[len(l)-1].String())
		}
	}
	return strings.Join(out, ", ")
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return "— " + err.Error()
}

// sourceRPO compares a source's segments of [from, cut) at the primary just
// before the cut with those off-site at the cut. The capture time lost is
// from the first instant of the window that is not off-site to the cut.
func sourceRPO(source string, primary, offsite []segment, from, cut time.Time) SourceRPO {
	r := SourceRPO{Source: source}
	off := keys(offsite)
	lostFrom := time.Time{}
	for _, g := range primary {
		if g.end.Before(from) {
			continue
		}
		r.AtPrimary++
		if !off[g.key] {
			r.Missing = append(r.Missing, g.String())
			if lostFrom.IsZero() || g.start.Before(lostFrom) {
				lostFrom = g.start
			}
		}
	}
	for _, g := range offsite {
		if g.end.Before(from) {
			continue
		}
		r.Offsite++
		if g.end.After(r.NewestOffsite) {
			r.NewestOffsite = g.end
		}
	}
	if lostFrom.IsZero() || r.NewestOffsite.Before(lostFrom) {
		lostFrom = r.NewestOffsite
	}
	if lostFrom.IsZero() {
		lostFrom = from
	}
	r.Lost = Seconds(max(cut.Sub(lostFrom), 0))
	return r
}

// syncedAt asks what every camera holds at one instant, and checks that
// each is present and that the answer came from site.
func (d *drill) syncedAt(base, tok string, t time.Time, site string) string {
	d.t.Helper()
	q := url.Values{"incident": {incident}, "source": {strings.Join(d.cameras, ",")}, "t": {strconv.FormatInt(t.UnixMilli(), 10)}}
	a, err := d.get(base+"/v1/recordings/at?"+q.Encode(), tok)
	name := "synced playback of every camera (store down)"
	if err != nil || a.status != http.StatusOK {
		d.check(name, false, "GET /v1/recordings/at: %v %d %s", err, a.status, a.body)
		return "at: failed"
	}
	var r struct {
		Site    string `json:"site"`
		Sources []struct {
			Source   string   `json:"source"`
			Present  bool     `json:"present"`
			OffsetMS *float64 `json:"offset_ms"`
		} `json:"sources"`
	}
	_ = json.Unmarshal(a.body, &r)
	present := 0
	for _, src := range r.Sources {
		if src.Present {
			present++
		}
	}
	d.check(name, r.Site == site && present == len(d.cameras), "at %s: %d of %d cameras present, answered by %s",
		t.UTC().Format("15:04:05.000"), present, len(d.cameras), r.Site)
	return fmt.Sprintf("%d of %d cameras at one instant, from %s", present, len(d.cameras), r.Site)
}

// coverageGaps returns the gaps in every camera's coverage of [from, to).
func (d *drill) coverageGaps(base, tok string, from, to time.Time) (string, []string) {
	q := url.Values{"incident": {incident}, "source": {strings.Join(d.cameras, ",")},
		"start": {strconv.FormatInt(from.UnixMilli(), 10)}, "end": {strconv.FormatInt(to.UnixMilli(), 10)}}
	a, err := d.get(base+"/v1/recordings/coverage?"+q.Encode(), tok)
	if err != nil || a.status != http.StatusOK {
		return "", []string{fmt.Sprintf("coverage: %v %d %s", err, a.status, a.body)}
	}
	var r struct {
		Sources []struct {
			Source string `json:"source"`
			Gaps   []struct{ Start, End time.Time }
		} `json:"sources"`
	}
	if err := json.Unmarshal(a.body, &r); err != nil {
		return "", []string{err.Error()}
	}
	var out []string
	for _, src := range r.Sources {
		for _, g := range src.Gaps {
			out = append(out, fmt.Sprintf("%s %s–%s", src.Source, g.Start.UTC().Format("15:04:05.000"), g.End.UTC().Format("15:04:05.000")))
		}
	}
	return a.header.Get("X-Playback-Site"), out
}

// holeAfterSwitchBack notes what a reviewer sees just after playback moved
// back to the restored primary, when the recorders have not yet uploaded the
// outage's segments to it: a segment the off-site copy holds is not played.
func (d *drill) holeAfterSwitchBack(base, tok string, t0, t2 time.Time, back time.Duration) {
	var during segment
	if b, err := segments(d.offsite); err == nil {
		for _, g := range b[d.cameras[0]] {
			if g.start.After(t0) && g.end.Before(t2) && during.key == "" {
				during = g
			}
		}
	}
	if during.key == "" {
		return
	}
	p, err := d.play(base, tok, during)
	if err == nil {
		return
	}
	_, gaps := d.coverageGaps(base, tok, t0.Add(-10*time.Second), during.end)
	res := fmt.Sprintf("a stream of %s, off-site since the outage, answered: %v", during, err)
	if p.site == "" {
		res += " (an error answer names no site: X-Playback-Site is set on successful answers only)"
	}
	d.note("Playback moved back to the restored primary %s after its restart, before the recorders had uploaded the outage's segments to it: "+
		"%s; coverage from 10 s before the cut then showed the gaps %v. "+
		"Playback lists segments from the active site only (internal/playback index.segments and Playback.with), so a reviewer sees a hole until the backlog drains.",
		back.Round(time.Millisecond), res, gaps)
}
