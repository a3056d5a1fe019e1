package console_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fieldvideo/internal/auth"
	"fieldvideo/internal/testkit"
)

// TestCallTwoBrowsers puts two headless Chromium pages, each with a fake camera (a test
// pattern) and microphone (a beep), in one call through a real SFU, and checks what each
// participant sees and hears of the other: video frames decoding, sound with a level, the
// active speaker, mute states, a shared screen, a signalling connection that breaks (cut,
// silently dead, or gone for longer than the resume window) and recovers, and a participant
// leaving.
func TestCallTwoBrowsers(t *testing.T) {
	h := startCallSFU(t)
	// alice reaches the SFU through a proxy that can cut her signalling connection.
	proxy := startDropProxy(t, h.httpAddr)
	alice := openCall(t, "alice", callURL(proxy.base(), callRoom, h.callToken("alice", auth.RoleCommander, callRoom)))
	bob := openCall(t, "bob", callURL(h.base, callRoom, h.callToken("bob", auth.RoleResponder, callRoom)))

	// Each receives the other's camera: a picture, and frames that keep coming.
	for _, c := range []struct {
		p     *callPage
		other string
	}{{alice, "bob"}, {bob, "alice"}} {
		played := c.p.waitPlaying(c.other+"/camera", 10, 90*time.Second)
		if played.Width == 0 || played.Height == 0 {
			t.Errorf("%s sees %s's camera at %dx%d", c.p.name, c.other, played.Width, played.Height)
		}
		c.p.waitFor(c.other+"'s tile showing video", tileExpr(c.other)+`.state === 'video'`, 10*time.Second)
	}
	if tl := bob.tile("alice"); tl.Name != "alice" || !strings.EqualFold(tl.Role, "commander") || tl.Mic != "on" || tl.Camera != "on" {
		t.Errorf("bob shows alice's tile as %+v, want name alice, role commander, microphone and camera on", tl)
	}
	if tl := alice.tile("bob"); tl.Name != "bob" || !strings.EqualFold(tl.Role, "responder") {
		t.Errorf("alice shows bob's tile as %+v, want name bob, role responder", tl)
	}
	if tl := alice.tile("alice"); tl.Name != "alice (you)" || tl.Camera != "on" {
		t.Errorf("alice's own tile is %+v, want her preview", tl)
	}

	// The call is recorded, and says so: each page shows the badge, and alice's camera (its
	// best simulcast layer, as Chromium encodes it) lands at the off-site store as segments
	// ffprobe reads.
	for _, p := range []*callPage{alice, bob} {
		p.waitFor("the recording badge", `!document.getElementById('rec').hidden`, 5*time.Second)
	}
	const aliceCamera = callRoom + ".alice.camera"
	testkit.WaitFor(t, 40*time.Second, "a recorded segment of alice's camera off-site", func() bool { return len(testkit.Segments(h.recDir, aliceCamera)) > 0 })
	seg := testkit.Segments(h.recDir, aliceCamera)[0]
	if streams, err := testkit.Probe(context.Background(), seg, ""); err != nil || len(streams) != 1 || streams[0].CodecName != "h264" || streams[0].Width == 0 {
		t.Errorf("ffprobe %s: %v %+v; want one H.264 stream with a picture size", seg, err, streams)
	} else {
		t.Logf("alice's camera recorded: %s, %dx%d", filepath.Base(seg), streams[0].Width, streams[0].Height)
	}
	var layer string
	if err := json.Unmarshal(alice.waitFor("bob's layer", tileExpr("bob")+`.layer`, 20*time.Second), &layer); err != nil {
		t.Fatal(err)
	}
	if layer != "q" && layer != "h" && layer != "f" {
		t.Errorf("alice receives bob's camera on layer %q, want one of the simulcast layers q, h, f", layer)
	}

	// Each hears the other: the remote audio track plays, and an AnalyserNode on it reads
	// the beep.
	for _, c := range []struct {
		p     *callPage
		other string
	}{{alice, "bob"}, {bob, "alice"}} {
		c.p.enableSound()
		c.p.waitFor(c.other+"'s sound playing", fmt.Sprintf(`(() => { const a = document.querySelector('audio[data-source="%s/microphone"]');
			return a && !a.paused && a.srcObject && a.srcObject.getAudioTracks()[0]?.readyState === 'live'; })()`, c.other), 20*time.Second)
		c.p.waitFor(c.other+"'s sound level above zero", fmt.Sprintf(`Number(document.querySelector('[data-tile="%s"]').dataset.level) > 0.01`, c.other), 30*time.Second)
	}
	// The active speaker is highlighted. The fake microphone's short beeps sit at the
	// server's speech threshold, so alice's microphone sender plays a steady tone for this
	// check (WebAudio, past the browser's gain control), then gets her microphone back.
	alice.Do("eval", 10*time.Second, map[string]any{"expr": `(async () => {
		const ctx = new AudioContext();
		const osc = ctx.createOscillator();
		const out = ctx.createMediaStreamDestination();
		osc.frequency.value = 300;
		osc.connect(out);
		osc.start();
		window.__tone = ctx;
		await window.fieldvideoCall.publisher.sources.get('microphone').transceiver.sender.replaceTrack(out.stream.getAudioTracks()[0]);
		return true; })()`})
	bob.waitFor("alice highlighted as speaking", `document.querySelector('[data-tile="alice"]').classList.contains('speaking')`, 20*time.Second)
	alice.waitFor("alice's own tile highlighted", `document.querySelector('[data-tile="alice"]').classList.contains('speaking')`, 10*time.Second)
	shot := callShotPath(t, "call-two-participants.png")
	bob.Do("screenshot", 10*time.Second, map[string]any{"path": shot})
	if st, err := os.Stat(shot); err != nil || st.Size() == 0 {
		t.Errorf("screenshot %s: %v", shot, err)
	}
	t.Logf("screenshot of bob's page in the call, alice speaking: %s", shot)
	alice.Do("eval", 10*time.Second, map[string]any{"expr": `(async () => {
		await window.fieldvideoCall.publisher.sources.get('microphone').transceiver.sender.replaceTrack(window.fieldvideoCall.local.audio);
		await window.__tone.close();
		return true; })()`})

	// Mute shows on the other side.
	{
		alice.click("#mic")
		bob.waitFor("alice's microphone muted", tileExpr("alice")+`.mic === 'muted'`, 10*time.Second)
		alice.waitFor("alice's own microphone muted", tileExpr("alice")+`.mic === 'muted'`, 5*time.Second)
		bob.waitFor("alice no longer speaking", `!document.querySelector('[data-tile="alice"]').classList.contains('speaking')`, 10*time.Second)
		alice.click("#camera")
		bob.waitFor("alice's camera off", tileExpr("alice")+`.camera === 'muted'`, 10*time.Second)
		if tl := bob.tile("alice"); tl.State != "placeholder" || !strings.Contains(tl.Reason, "camera off") {
			t.Errorf("bob shows alice's tile with her camera off as %+v, want a placeholder saying camera off", tl)
		}
		alice.click("#mic")
		alice.click("#camera")
		bob.waitFor("alice unmuted", tileExpr("alice")+`.mic === 'on' && `+tileExpr("alice")+`.camera === 'on'`, 10*time.Second)
		bob.waitPlaying("alice/camera", 10, 30*time.Second)
	}

	// Screen sharing: the screen plays as a tile of its own on the other side, and goes
	// away when sharing stops.
	{
		alice.click("#screen")
		played := bob.waitPlaying("alice/screen", 10, 40*time.Second, alice)
		if played.Width == 0 {
			t.Errorf("bob sees alice's screen at %dx%d", played.Width, played.Height)
		}
		alice.waitFor("alice's own screen preview", `!!document.querySelector('[data-tile="alice/screen"] video[data-source="local:screen"]')`, 5*time.Second)
		alice.click("#screen")
		bob.waitFor("alice's screen tile gone", `!document.querySelector('[data-tile="alice/screen"]')`, 15*time.Second)
		alice.waitFor("alice's own screen preview gone", `!document.querySelector('[data-tile="alice/screen"]')`, 5*time.Second)
	}

	// Blocked sound has a button.
	{
		// A browser that refuses sound before a click: the page offers the button, and the
		// click brings the sound back.
		bob.Do("eval", 5*time.Second, map[string]any{"expr": `window.fieldvideoCall.sound.ctx.suspend().then(() => true)`})
		bob.waitFor("the enable-sound button", `!document.getElementById('sound').hidden`, 5*time.Second)
		bob.click("#sound")
		bob.waitFor("sound running again", `document.getElementById('sound').hidden && window.fieldvideoCall.sound.ctx.state === 'running'`, 5*time.Second)
	}

	// Signalling lost and resumed.
	{
		var before []string
		alice.Eval(ufragsExpr, &before)
		proxy.cut()
		// the page resumes its session: the server logs a resume, not a new join.
		testkit.WaitFor(t, 30*time.Second, "alice resuming her session", func() bool { return hasAudit(h, "alice", "resume", callRoom) })
		alice.waitFor("alice back in the call", `document.body.dataset.call === 'in-call'`, 30*time.Second)
		// both connections restarted ICE: the publish offer and the server's subscribe
		// offer carry new credentials.
		var after []string
		raw := alice.waitFor("new ICE credentials on both connections", fmt.Sprintf(`(() => { const a = %s; const b = %s;
			return a[0] && a[1] && a[0] !== b[0] && a[1] !== b[1] && a; })()`, ufragsExpr, mustJSON(before)), 30*time.Second)
		if err := json.Unmarshal(raw, &after); err != nil {
			t.Fatal(err)
		}
		t.Logf("ICE ufrags before %v, after %v", before, after)
		bob.waitPlaying("alice/camera", 10, 30*time.Second)
		alice.waitPlaying("bob/camera", 10, 30*time.Second)
		if tl := bob.tile("alice"); !tl.Present {
			t.Errorf("bob lost alice's tile while she resumed")
		}
	}

	// A network change the browser reports ('online') while signalling works: the page
	// restarts ICE on both connections over the same socket.
	{
		var before []string
		bob.Eval(ufragsExpr, &before)
		bob.Do("eval", 5*time.Second, map[string]any{"expr": `(() => { window.dispatchEvent(new Event('online')); return true; })()`})
		bob.waitFor("bob's new ICE credentials", fmt.Sprintf(`(() => { const a = %s; const b = %s;
			return a[0] && a[1] && a[0] !== b[0] && a[1] !== b[1]; })()`, ufragsExpr, mustJSON(before)), 30*time.Second)
		if n := countAudit(h, "bob", "resume"); n != 0 {
			t.Errorf("bob resumed %d times, want his socket kept", n)
		}
		alice.waitPlaying("bob/camera", 10, 30*time.Second)
		bob.waitPlaying("alice/camera", 10, 30*time.Second)
	}

	// The signalling path goes dead without closing (no FIN, no RST), as when a phone moves
	// to another network: the page notices the silence by its pings, drops the socket and
	// resumes.
	{
		resumes := countAudit(h, "alice", "resume")
		proxy.freeze()
		testkit.WaitFor(t, 40*time.Second, "alice resuming after a silent network change", func() bool { return countAudit(h, "alice", "resume") > resumes })
		alice.waitFor("alice back in the call", `document.body.dataset.call === 'in-call'`, 20*time.Second)
		bob.waitPlaying("alice/camera", 10, 30*time.Second)
	}

	// Away for longer than the resume window: the server ends alice's session; when the
	// network is back her page joins afresh and publishes again.
	{
		joins := countAudit(h, "alice", "join")
		proxy.pause()
		bob.waitFor("alice gone after the resume window", `!document.querySelector('[data-tile="alice"]')`, 40*time.Second)
		alice.waitFor("alice's page reconnecting", `document.body.dataset.call === 'reconnecting'`, 5*time.Second)
		proxy.unpause()
		alice.waitFor("alice back in the call", `document.body.dataset.call === 'in-call'`, 40*time.Second)
		if n := countAudit(h, "alice", "join"); n != joins+1 {
			t.Errorf("alice joined %d times after the long outage, want one fresh join", n-joins)
		}
		bob.waitPlaying("alice/camera", 10, 60*time.Second)
		alice.waitPlaying("bob/camera", 10, 60*time.Second)
	}

	// The room moves to another node (a split cluster healed, and the other side is its
	// home): each page is told so instead of bye, joins again through its own node (here
	// the same one, which holds the room anew) and the two meet again.
	{
		joins := countAudit(h, "alice", "join") + countAudit(h, "bob", "join")
		if n := h.server().MoveRoom(callRoom, "ws://"+h.httpAddr+"/v1/rooms/"+callRoom+"/ws", "the call moved to its home on node sfu-2"); n != 2 {
			t.Fatalf("moved %d participants, want 2", n)
		}
		for _, p := range []*callPage{alice, bob} {
			p.waitFor(p.name+" back in the call after the move", `document.body.dataset.call === 'in-call'`, 30*time.Second)
		}
		testkit.WaitFor(t, 10*time.Second, "both joined again", func() bool { return countAudit(h, "alice", "join")+countAudit(h, "bob", "join") == joins+2 })
		bob.waitPlaying("alice/camera", 10, 60*time.Second)
		alice.waitPlaying("bob/camera", 10, 60*time.Second)
	}

	// Leaving removes the tile.
	{
		bob.click("#leave")
		alice.waitFor("bob's tile gone", `!document.querySelector('[data-tile="bob"]')`, 10*time.Second)
		bob.waitFor("bob's page out of the call", `document.body.dataset.call === 'ended' && document.getElementById('join-reason').textContent.includes('You left')`, 10*time.Second)
		testkit.WaitFor(t, 10*time.Second, "alice alone in the room", func() bool {
			rooms := h.server().Rooms()
			return len(rooms) == 1 && len(rooms[0].Participants) == 1 && rooms[0].Participants[0].ID == "alice"
		})
		var summary string
		alice.Eval(`document.getElementById('summary').textContent`, &summary)
		if summary != "1 in the call" {
			t.Errorf("alice's summary = %q, want 1 in the call", summary)
		}
	}
}

// TestCallFieldCamera pins a field camera (published to the SFU by WHIP) next to the call:
// it plays large on the stage, with its sound on request, the SFU counts the pinned
// subscription, and the stage says so when the camera goes offline.
func TestCallFieldCamera(t *testing.T) {
	h := startCallSFU(t)
	stopCam := h.publish("cam1", true)
	carol := openCall(t, "carol", callURL(h.base, callRoom, h.callToken("carol", auth.RoleCommander, callRoom)))
	pin := `[data-pin="field:cam1/video"]`
	carol.waitFor("cam1 in the field camera list", `!!document.querySelector('`+pin+`') && document.getElementById('fields-count').textContent === '1'`, 15*time.Second)
	carol.click("#fields summary")
	carol.click(pin)
	played := carol.waitPlaying("field:cam1/video", 10, 40*time.Second)
	if played.Width != 640 || played.Height != 360 {
		t.Errorf("the pinned field camera plays at %dx%d, want 640x360", played.Width, played.Height)
	}
	carol.waitFor("the stage showing cam1 next to the call", `!document.getElementById('stage').hidden && document.getElementById('stage').dataset.state === 'video'
		&& document.getElementById('call').classList.contains('has-stage') && !!document.querySelector('[data-tile="carol"]')
		&& document.getElementById('stage-name').textContent === 'cam1'`, 10*time.Second)
	testkit.WaitFor(t, 10*time.Second, "the SFU counting carol's subscription to cam1", func() bool {
		rooms := h.server().Rooms()
		return len(rooms) == 1 && rooms[0].Subscriptions["field:cam1/video"] == 1
	})
	if !hasAudit(h, "carol", "view", "cam1") {
		t.Errorf("the audit log has no view of cam1 by carol")
	}

	// its sound, on request: the 440 Hz tone plays and has a level.
	carol.click("#stage-sound")
	carol.enableSound()
	carol.waitFor("cam1's sound playing", `(() => { const a = document.querySelector('audio[data-source="field:cam1/audio"]');
		return a && !a.paused && window.fieldvideoCall.sound.level('field:cam1/audio') > 0.01; })()`, 20*time.Second)

	shot := callShotPath(t, "call-pinned-field-camera.png")
	carol.Do("screenshot", 10*time.Second, map[string]any{"path": shot})
	t.Logf("screenshot with the pinned field camera: %s", shot)

	// unpinning ends both subscriptions.
	carol.click("#unpin")
	carol.waitFor("the stage gone", `document.getElementById('stage').hidden && !document.querySelector('audio[data-source="field:cam1/audio"]')`, 10*time.Second)
	testkit.WaitFor(t, 10*time.Second, "the SFU ending carol's subscriptions to cam1", func() bool {
		rooms := h.server().Rooms()
		return len(rooms) == 1 && rooms[0].Subscriptions["field:cam1/video"] == 0 && rooms[0].Subscriptions["field:cam1/audio"] == 0
	})

	// pinned again, twice: the subscription reuses the media sections the last one left,
	// so the subscribe connection's description does not grow.
	sections := `(() => { const d = window.fieldvideoCall.subscriber?.pc?.remoteDescription; return d ? d.sdp.split('\nm=').length - 1 : 0; })()`
	var first int
	carol.Eval(sections, &first)
	for round := range 2 {
		if round > 0 {
			carol.click("#unpin")
			carol.waitFor("the stage gone", `document.getElementById('stage').hidden`, 10*time.Second)
		}
		carol.click("#fields summary")
		carol.click(pin)
		carol.waitPlaying("field:cam1/video", 10, 40*time.Second)
	}
	var now int
	carol.Eval(sections, &now)
	t.Logf("media sections of the subscribe connection: %d after the first pin, %d after pinning twice more", first, now)
	if first == 0 || now != first {
		t.Errorf("the subscribe connection has %d media sections after pinning the camera three times, %d after the first", now, first)
	}

	// then the camera goes offline: the stage says so.
	stopCam()
	var note string
	if err := json.Unmarshal(carol.waitFor("the stage saying cam1 went away", `(() => { const r = document.getElementById('stage-reason').textContent;
		return document.getElementById('stage').dataset.state === 'placeholder' && r; })()`, 20*time.Second), &note); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(note, "offline") && !strings.Contains(note, "went away") {
		t.Errorf("the stage says %q when the field camera went offline", note)
	}
	carol.waitFor("cam1 out of the field camera list", `!document.querySelector('`+pin+`') && document.getElementById('fields-count').textContent === '0'`, 10*time.Second)
}

// TestCallRefused checks that a join the server refuses shows the server's reason, and that
// the form then joins with a good token.
func TestCallRefused(t *testing.T) {
	h := startCallSFU(t)
	p := &callPage{Page: testkit.PooledPage(t), t: t, name: "carol"}
	refused := `(() => { const r = document.getElementById('join-reason').textContent;
		return document.body.dataset.call === 'form' && !document.getElementById('join-panel').hidden && r.includes('refused') && r; })()`
	expired, err := auth.Mint(testSecret, auth.Claims{Role: auth.RoleCommander, Room: callRoom, RoomPublish: true, RoomSubscribe: true}, time.Minute, time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	noRoom := h.token(auth.Claims{Role: auth.RoleWall, View: []string{"*"}})
	for _, tc := range []struct {
		name, room, token, want string
	}{
		{"wrong room", "incident-2", h.callToken("carol", auth.RoleOperator, callRoom), `may not join room "incident-2"`},
		{"expired token", callRoom, expired, "expired"},
		{"no room grant", callRoom, noRoom, "its room grant: none"},
		{"not a token", callRoom, "not-a-token", "invalid token"},
	} {
		p.Open(callURL(h.base, tc.room, tc.token))
		var reason string
		if err := json.Unmarshal(p.waitFor("the refusal of a join with "+tc.name, refused, 15*time.Second), &reason); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(reason, tc.want) {
			t.Errorf("%s: reason = %q, want the server's reason (%s)", tc.name, reason, tc.want)
		}
		var tiles int
		p.Eval(`document.querySelectorAll('.tile').length`, &tiles)
		if tiles != 0 {
			t.Errorf("%s: %d tiles after a refused join, want none", tc.name, tiles)
		}
	}
	shot := callShotPath(t, "call-refused.png")
	p.Do("screenshot", 10*time.Second, map[string]any{"path": shot})

	// the form joins with a good token and the room typed in.
	p.Do("fill", 5*time.Second, map[string]any{"selector": "#room-input", "value": callRoom})
	p.Do("fill", 5*time.Second, map[string]any{"selector": "#name-input", "value": "Carol C."})
	p.Do("fill", 5*time.Second, map[string]any{"selector": "#token-input", "value": h.callToken("carol", auth.RoleOperator, callRoom)})
	p.click("#join-submit")
	p.waitFor("in the call", `document.body.dataset.call === 'in-call'`, 20*time.Second)
	if tl := p.tile("carol"); tl.Name != "Carol C. (you)" {
		t.Errorf("own tile named %q, want the name typed in", tl.Name)
	}
	testkit.WaitFor(t, 30*time.Second, "carol's camera published", func() bool {
		rooms := h.server().Rooms()
		if len(rooms) != 1 {
			return false
		}
		for _, tr := range rooms[0].Tracks {
			if tr.ID == "carol/camera" && len(tr.Layers) == 3 {
				return true
			}
		}
		return false
	})
}

// TestCallScriptHelpers runs the call page's pure helpers in node: SDP sections, the publish
// codec order, simulcast layers, labels, and the stall watch on a fake clock.
func TestCallScriptHelpers(t *testing.T) {
	const script = `
import { mediaSections, publishCodecs, SIMULCAST } from './call-media.js';
import { fieldName, initials, layerLabel } from './call-tiles.js';
import { StallWatch } from './call-watch.js';
let clock = 0;
const w = new StallWatch({ stallMs: 6000, retryMs: 15000, now: () => clock });
const r1 = {}, r2 = {};
const stalls = [];
const step = (ms, frames, expecting = true, receiver = r1) => {
  clock += ms;
  stalls.push(w.update([['bob/camera', receiver, frames]], () => expecting).length);
};
step(0, 10); step(2000, 20); step(5000, 20); step(1500, 20); // stalled 6.5 s: once
step(2000, 20); step(8000, 20);                              // within the retry time: not again
step(6000, 20);                                              // 16 s after the retry: again
step(1000, 25, false); step(9000, 25, false);               // not expected (muted): never
step(1000, 25); step(4000, 25); w.reset('bob/camera'); step(2000, 25); // reset restarts the window
step(1000, -1); step(9000, -1);                              // no stats: never
step(1000, 30, true, r2); step(9000, 30, true, r2);          // a new receiver starts anew, then stalls
const sdp = ['v=0', 'm=video 9 UDP/TLS/RTP/SAVPF 102', 'a=mid:0', 'a=sendonly', 'a=msid:bob bob/camera',
  'm=audio 9 UDP/TLS/RTP/SAVPF 111', 'a=mid:1', 'a=inactive', 'm=video 0 UDP/TLS/RTP/SAVPF 96', 'a=mid:2', ''].join('\r\n');
const codecs = publishCodecs([{ mimeType: 'video/H264', sdpFmtpLine: 'packetization-mode=0' }, { mimeType: 'video/rtx' }, { mimeType: 'video/AV1' }, { mimeType: 'video/VP8' }, { mimeType: 'video/H264', sdpFmtpLine: 'level-asymmetry-allowed=1;packetization-mode=1' }]).map((c) => c.mimeType + (/mode=1/.test(c.sdpFmtpLine ?? '') ? '/pm1' : ''));
console.log(JSON.stringify({
  sections: mediaSections(sdp),
  codecs,
  rids: SIMULCAST.map((e) => e.rid),
  scales: SIMULCAST.map((e) => e.scaleResolutionDownBy),
  fields: ['field:cam1/video', 'field:a.b-c/audio', 'alice/camera', 'field:/video'].map(fieldName),
  initials: ['Alice Smith', 'bob', '', 'carol.c'].map(initials),
  stalls,
  layers: [['q', 'started'], ['f', 'bandwidth'], ['off', 'bandwidth'], ['off', 'muted'], ['', 'started']].map(([l, r]) => layerLabel(l, r)),
}));
`
	var res struct {
		Sections []struct {
			Kind, Port, Mid, Direction, Stream, Track string
		} `json:"sections"`
		Codecs   []string  `json:"codecs"`
		RIDs     []string  `json:"rids"`
		Scales   []float64 `json:"scales"`
		Fields   []string  `json:"fields"`
		Stalls   []int     `json:"stalls"`
		Initials []string  `json:"initials"`
		Layers   []struct {
			Text   string `json:"text"`
			Paused bool   `json:"paused"`
		} `json:"layers"`
	}
	runModule(t, script, &res)
	if got := fmt.Sprint(res.Sections); got != "[{video 9 0 sendonly bob bob/camera} {audio 9 1 inactive  } {video 0 2 sendrecv  }]" {
		t.Errorf("mediaSections = %s", got)
	}
	if got := strings.Join(res.Codecs, " "); got != "video/H264/pm1 video/H264 video/VP8 video/AV1 video/rtx" {
		t.Errorf("publishCodecs = %s, want H.264 packetization mode 1 first, then VP8, RTX last", got)
	}
	if got := fmt.Sprint(res.RIDs, res.Scales); got != "[q h f] [4 2 1]" {
		t.Errorf("simulcast layers = %s, want q h f lowest first", got)
	}
	if got := fmt.Sprint(res.Stalls); got != "[0 0 0 1 0 0 1 0 0 0 0 0 0 0 0 1]" {
		t.Errorf("StallWatch reports %s, want [0 0 0 1 0 0 1 0 0 0 0 0 0 0 0 1]", got)
	}
	if got := strings.Join(res.Fields, ","); got != "cam1,a.b-c,," {
		t.Errorf("fieldName = %s", got)
	}
	if got := strings.Join(res.Initials, ","); got != "AS,B,?,CC" {
		t.Errorf("initials = %s", got)
	}
	want := []struct {
		text   string
		paused bool
	}{{"low quality", false}, {"high quality", false}, {"paused: low bandwidth", true}, {"", false}, {"", false}}
	for i, w := range want {
		if i >= len(res.Layers) || res.Layers[i].Text != w.text || res.Layers[i].Paused != w.paused {
			t.Errorf("layerLabel case %d = %+v, want %+v", i, res.Layers, want)
			break
		}
	}
}

// hasAudit tells whether the SFU audited action on a source containing source by actor.
func hasAudit(h *wallSFU, actor, action, source string) bool {
	for _, e := range h.auditEvents() {
		if e.Actor == actor && e.Action == action && strings.Contains(e.Source, source) && e.Result != "denied" {
			return true
		}
	}
	return false
}

// ufragsExpr gives the ICE username fragments of the page's publish offer and of the
// server's subscribe offer: both change with an ICE restart.
const ufragsExpr = `(() => { const c = window.fieldvideoCall; const u = (d) => /a=ice-ufrag:(\S+)/.exec(d?.sdp ?? '')?.[1] ?? '';
	return [u(c.publisher?.pc?.localDescription), u(c.subscriber?.pc?.remoteDescription)]; })()`

// countAudit counts the SFU's audit events of actor doing action.
func countAudit(h *wallSFU, actor, action string) int {
	n := 0
	for _, e := range h.auditEvents() {
		if e.Actor == actor && e.Action == action && e.Result != "denied" {
			n++
		}
	}
	return n
}

func mustJSON(v []string) string {
	b, _ := json.Marshal(v) // a list of strings always encodes
	return string(b)
}
