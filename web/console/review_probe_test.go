package console_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"testing"
	"time"

	"fieldvideo/internal/testkit"
)

func TestReviewProbeEditList(t *testing.T) {
	rec := recordReview(t, []string{"cam1"}, "", 2)
	srv := startReviewServer(t, rec)
	first, last := srv.recorded("cam1")
	cov := srv.coverage(first, last, "cam1")
	t.Logf("recorded %s..%s cov %+v", first, last, cov)
	k := cov["cam1"][0].Start
	stream := func(start time.Time) string {
		return "/v1/recordings/stream?" + url.Values{"incident": {reviewIncident}, "source": {"cam1"}, "start": {ms(start)}, "end": {ms(last)}, "token": {srv.reviewer}}.Encode()
	}
	p := testkit.OpenPage(t)
	defer p.LogConsole()
	p.Open(srv.base + "/call.html")
	p.Eval(`(() => {
	  window.__mk = (name, src) => {
	    const v = document.createElement('video'); v.muted = true; v.preload = 'auto'; document.body.append(v);
	    const o = { frames: [], t0: performance.now(), events: [] };
	    const cb = (now, md) => { o.frames.push({ at: Math.round(performance.now() - o.t0), mt: md.mediaTime, pf: md.presentedFrames, ct: v.currentTime }); if (o.frames.length < 400) v.requestVideoFrameCallback(cb); };
	    v.requestVideoFrameCallback(cb);
	    for (const e of ['loadedmetadata','loadeddata','canplay','seeked','error','waiting','playing','ended']) v.addEventListener(e, () => o.events.push(e + '@' + Math.round(performance.now() - o.t0) + ' ct=' + v.currentTime));
	    v.src = src; window[name] = { v, o }; return true; };
	  window.__hash = (v) => { const c = document.createElement('canvas'); c.width = v.videoWidth; c.height = v.videoHeight; const g = c.getContext('2d'); g.drawImage(v, 0, 0); const d = g.getImageData(0, 0, c.width, c.height).data; let h = 0; for (let i = 0; i < d.length; i += 97) h = (h * 31 + d[i]) >>> 0; return h; };
	  window.__ranges = (r) => { const a = []; for (let i = 0; i < r.length; i++) a.push([r.start(i), r.end(i)]); return a; };
	  window.__state = (name) => { const { v, o } = window[name]; return { ct: v.currentTime, dur: v.duration, rs: v.readyState, buf: __ranges(v.buffered), seekable: __ranges(v.seekable), frames: o.frames.slice(0, 8), nframes: o.frames.length, events: o.events, err: v.error && v.error.message }; };
	  return true; })()`, new(bool))
	var ok bool
	p.Eval(`(() => { window.__mk2 = (name, src, start) => {
	    const v = document.createElement('video'); v.muted = true; v.preload = 'auto'; document.body.append(v);
	    const o = { frames: [] };
	    const cb = (now, md) => { o.frames.push({ cap: start + md.mediaTime * 1000, mt: md.mediaTime, h: __hash(v) }); if (o.frames.length < 100) v.requestVideoFrameCallback(cb); };
	    v.requestVideoFrameCallback(cb); v.src = src; window[name] = { v, o }; return true; }; return true; })()`, &ok)
	p.Eval(fmt.Sprintf(`__mk2('A', %q, %d)`, stream(k), k.UnixMilli()), &ok)
	p.Eval(fmt.Sprintf(`__mk2('B', %q, %d)`, stream(k.Add(1010*time.Millisecond)), k.Add(1010*time.Millisecond).UnixMilli()), &ok)
	p.Eval(fmt.Sprintf(`__mk2('C', %q, %d)`, stream(k.Add(1770*time.Millisecond)), k.Add(1770*time.Millisecond).UnixMilli()), &ok)
	p.WaitFor("loaded", `A.v.readyState >= 2 && B.v.readyState >= 2 && C.v.readyState >= 2 && A.o.frames.length > 0 && B.o.frames.length > 0 && C.o.frames.length > 0`, 20*time.Second)
	var posters map[string]any
	p.Eval(`({B: __hash(B.v), C: __hash(C.v), Bf: B.o.frames.length, Cf: C.o.frames.length, Bct: B.v.currentTime})`, &posters)
	t.Logf("posters %v", posters)
	p.Eval(`(window.__pB = __hash(B.v), window.__pC = __hash(C.v), true)`, &ok)
	p.Eval(`(A.v.play(), B.v.play(), C.v.play(), true)`, &ok)
	p.WaitFor("played", `A.o.frames.length > 60 && B.o.frames.length > 20 && C.o.frames.length > 20`, 20*time.Second)
	var res map[string]any
	p.Eval(`(() => { const byHash = new Map(A.o.frames.map((f) => [f.h, f.cap]));
	  const cmp = (o) => o.frames.slice(0, 6).map((f) => ({ cap: f.cap, mt: f.mt, capInA: byHash.get(f.h) ?? null }));
	  return { A: A.o.frames.slice(0, 3), B: cmp(B.o), C: cmp(C.o), posterB: byHash.get(window.__pB) ?? null, posterC: byHash.get(window.__pC) ?? null }; })()`, &res)
	b, _ := json.Marshal(res)
	t.Logf("compare: %s", b)
}
