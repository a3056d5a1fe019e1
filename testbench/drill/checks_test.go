package drill

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"fieldvideo/internal/auth"
	"fieldvideo/internal/mp4"
	"fieldvideo/internal/recorder"
	"fieldvideo/internal/session"
	"fieldvideo/internal/testkit"
	"fieldvideo/internal/whip"
	"fieldvideo/testbench/democam/truth"
)

// segment is a recorded segment as its key describes it.
type segment struct {
	key, source string
	start, end  time.Time
}

func (g segment) String() string {
	return fmt.Sprintf("%s %s–%s", g.source, g.start.UTC().Format("15:04:05.000"), g.end.UTC().Format("15:04:05.000"))
}

// segments lists the drill's segments at a store, by source, in capture
// order.
func segments(srv *testkit.S3Server) (map[string][]segment, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out := map[string][]segment{}
	for o := range srv.Client().ListObjects(ctx, srv.Bucket, minio.ListObjectsOptions{Prefix: "rec/" + incident + "/", Recursive: true}) {
		if o.Err != nil {
			return nil, fmt.Errorf("list %s: %w", srv.Kind, o.Err)
		}
		k, err := recorder.ParseKey(o.Key)
		if err != nil || k.Manifest {
			continue
		}
		out[k.Source] = append(out[k.Source], segment{key: o.Key, source: k.Source, start: k.Start, end: k.Start.Add(k.Duration)})
	}
	for _, segs := range out {
		sort.Slice(segs, func(i, j int) bool { return segs[i].start.Before(segs[j].start) })
	}
	return out, nil
}

// keys returns the set of the segments' keys.
func keys(segs []segment) map[string]bool {
	m := map[string]bool{}
	for _, g := range segs {
		m[g.key] = true
	}
	return m
}

// played is what a playback stream of a known segment held.
type played struct {
	site   string
	bytes  int
	frames int // video frames ffprobe decoded
	codec  string
	width  int
	height int
	// truthFirst and truthLast are the true capture times (SEI) of the
	// first and last video frames; alignMax the largest difference between
	// a frame's capture time on the stream's timeline and its true one.
	truthFirst, truthLast time.Time
	truthFrames           int
	alignMax              time.Duration
}

func (p played) String() string {
	return fmt.Sprintf("%d bytes from %s: %d %s frames %dx%d decoded; true capture times %s–%s in %d frames, timeline within %s of them",
		p.bytes, p.site, p.frames, p.codec, p.width, p.height, p.truthFirst.UTC().Format("15:04:05.000"),
		p.truthLast.UTC().Format("15:04:05.000"), p.truthFrames, p.alignMax.Round(time.Microsecond))
}

// play streams a known segment through the playback API at base, and checks
// that ffprobe decodes it and that its frames are the ones captured in the
// segment's time (the demo cameras' true capture times, in SEI).
func (s *system) play(base, tok string, g segment) (played, error) {
	// A key holds its segment's start truncated to the millisecond: the segment's first
	// keyframe was captured up to 1 ms later, and at the key's instant the screen still
	// shows the previous segment's last frame (playback would start at that segment's
	// keyframe). Ask from the end of that millisecond.
	q := url.Values{"incident": {incident}, "source": {g.source},
		"start": {strconv.FormatInt(g.start.UnixMilli()+1, 10)}, "end": {strconv.FormatInt(g.end.UnixMilli(), 10)}}
	a, err := s.get(base+"/v1/recordings/stream?"+q.Encode(), tok)
	if err != nil {
		return played{}, err
	}
	p := played{site: a.header.Get("X-Playback-Site"), bytes: len(a.body)}
	if a.status != http.StatusOK {
		return p, fmt.Errorf("HTTP %d: %s", a.status, strings.TrimSpace(string(a.body)))
	}
	if sk := a.header.Get("X-Playback-Skipped"); sk != "" {
		return p, fmt.Errorf("segments left out: %s", sk)
	}
	if err := s.probe(a.body, &p); err != nil {
		return p, err
	}
	keyframe, err := time.Parse(time.RFC3339Nano, a.header.Get("X-Capture-Keyframe"))
	if err != nil {
		return p, fmt.Errorf("X-Capture-Keyframe: %w", err)
	}
	if err := checkTruth(a.body, keyframe, &p); err != nil {
		return p, err
	}
	const slack = 500 * time.Millisecond
	if p.truthFirst.Before(g.start.Add(-slack)) || p.truthLast.After(g.end.Add(slack)) {
		return p, fmt.Errorf("the frames were captured %s–%s, not in the segment's %s", p.truthFirst.UTC().Format(time.RFC3339Nano),
			p.truthLast.UTC().Format(time.RFC3339Nano), g)
	}
	return p, nil
}

// probe has ffprobe decode the stream's video.
func (s *system) probe(b []byte, p *played) error {
	f := filepath.Join(s.dir, "played.mp4")
	if err := os.WriteFile(f, b, 0o600); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, testkit.FFprobePath, "-v", "error", "-count_frames", "-select_streams", "v:0",
		"-show_entries", "stream=codec_name,width,height,nb_read_frames", "-of", "json", f).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ffprobe: %w: %s", err, out)
	}
	var r struct {
		Streams []struct {
			CodecName    string `json:"codec_name"`
			Width        int    `json:"width"`
			Height       int    `json:"height"`
			NbReadFrames string `json:"nb_read_frames"`
		} `json:"streams"`
	}
	if err := json.Unmarshal(out, &r); err != nil || len(r.Streams) == 0 {
		return fmt.Errorf("ffprobe found no video: %s", out)
	}
	st := r.Streams[0]
	p.codec, p.width, p.height = st.CodecName, st.Width, st.Height
	p.frames, _ = strconv.Atoi(st.NbReadFrames)
	if p.frames == 0 {
		return fmt.Errorf("ffprobe decoded no video frame: %s", out)
	}
	return nil
}

// checkTruth reads the true capture time of each video frame of a stream
// and compares it with the frame's place on the stream's timeline, which
// starts at keyframe (the capture time of the first video sample).
func checkTruth(b []byte, keyframe time.Time, p *played) error {
	seg, err := mp4.Scan(b)
	if err != nil {
		return err
	}
	samples, err := mp4.ReadSamples(b, seg)
	if err != nil {
		return err
	}
	for _, tr := range seg.Tracks {
		if tr.Handler != "vide" {
			continue
		}
		ss := samples[tr.ID]
		for _, sm := range ss {
			at, ok := sampleTruth(sm.Data)
			if !ok {
				continue
			}
			placed := keyframe.Add(mp4.TicksToDuration(int64(sm.DTS-ss[0].DTS), tr.TimeScale))
			if d := placed.Sub(at).Abs(); d > p.alignMax {
				p.alignMax = d
			}
			if p.truthFrames == 0 {
				p.truthFirst = at
			}
			p.truthLast = at
			p.truthFrames++
		}
	}
	if p.truthFrames == 0 {
		return errors.New("no video frame carries its true capture time (democam -sei)")
	}
	return nil
}

// sampleTruth finds the capture-time SEI in an H.264 sample of 4-byte
// length-prefixed NAL units.
func sampleTruth(b []byte) (time.Time, bool) {
	for len(b) >= 4 {
		n := int(binary.BigEndian.Uint32(b))
		if n <= 0 || n > len(b)-4 {
			return time.Time{}, false
		}
		if at, found, _ := truth.ParseSEI(b[4 : 4+n]); found {
			return at, true
		}
		b = b[4+n:]
	}
	return time.Time{}, false
}

// watchLive opens a WHEP viewer of source at the SFU and waits until it has
// received a keyframe; it returns how long that took.
func watchLive(sfu, tok, source string, timeout time.Duration) (time.Duration, error) {
	api, err := whip.NewAPI(whip.APIParams{LoopbackOnly: true})
	if err != nil {
		return 0, err
	}
	var (
		mu      sync.Mutex
		idrs    int
		packets int
	)
	keyframe := make(chan struct{})
	var once sync.Once
	onPacket := func(kind webrtc.RTPCodecType, _ string, p *rtp.Packet, _ time.Time) {
		if kind != webrtc.RTPCodecTypeVideo || len(p.Payload) < 2 {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		packets++
		t := p.Payload[0] & 0x1f
		if t == 5 || (t == 28 && p.Payload[1]&0x80 != 0 && p.Payload[1]&0x1f == 5) || (t == 24 && stapHasIDR(p.Payload[1:])) {
			idrs++
			once.Do(func() { close(keyframe) })
		}
	}
	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	v, err := whip.View(ctx, whip.ViewerParams{Endpoint: whip.Endpoint(sfu, source, "whep"), Client: &whip.Client{Token: tok}, API: api, NoAudio: true, OnPacket: onPacket})
	if err != nil {
		return 0, fmt.Errorf("WHEP view of %s: %w", source, err)
	}
	defer v.Close()
	select {
	case <-keyframe:
		return time.Since(began), nil
	case <-ctx.Done():
		mu.Lock()
		defer mu.Unlock()
		return 0, fmt.Errorf("no keyframe of %s within %s (%d video packets)", source, timeout, packets)
	}
}

// stapHasIDR reports whether a STAP-A payload (after its header) holds an
// IDR NAL unit.
func stapHasIDR(b []byte) bool {
	for len(b) > 2 {
		n := int(b[0])<<8 | int(b[1])
		if n == 0 || len(b) < 2+n {
			return false
		}
		if b[2]&0x1f == 5 {
			return true
		}
		b = b[2+n:]
	}
	return false
}

// joinCall has a commander and an operator join a call room at the SFU;
// each must be told of the other.
func joinCall(sfu, room string, tokFor func(auth.Role) string) (time.Duration, string, error) {
	api, err := session.NewAPI(session.APIParams{LoopbackOnly: true})
	if err != nil {
		return 0, "", err
	}
	ws := "ws" + strings.TrimPrefix(sfu, "http") + "/v1/rooms/" + room + "/ws"
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	began := time.Now()
	a, err := session.Dial(ctx, session.ClientParams{URL: ws, Token: tokFor(auth.RoleCommander), API: api, Name: "drill commander"})
	if err != nil {
		return 0, "", fmt.Errorf("commander joining %s: %w", room, err)
	}
	defer a.Close()
	b, err := session.Dial(ctx, session.ClientParams{URL: ws, Token: tokFor(auth.RoleOperator), API: api, Name: "drill EOC"})
	if err != nil {
		return 0, "", fmt.Errorf("EOC joining %s: %w", room, err)
	}
	defer b.Close()
	took := time.Since(began)
	ja, jb := a.Joined(), b.Joined()
	seen := false
	for _, p := range jb.Participants {
		seen = seen || p.ID == ja.Participant.ID
	}
	if !seen {
		return took, "", fmt.Errorf("the second participant's join lists %d others, not the commander %s", len(jb.Participants), ja.Participant.ID)
	}
	if _, err := a.WaitFor(ctx, func(m session.Message) bool { return m.Type == session.TypeParticipantJoin }); err != nil {
		return took, "", fmt.Errorf("the commander was not told of the EOC joining: %w", err)
	}
	return took, fmt.Sprintf("room %s: commander %s and EOC %s joined in %s and saw each other; recorded=%v",
		ja.Room, ja.Participant.ID, jb.Participant.ID, took.Round(time.Millisecond), ja.Recorded), nil
}
