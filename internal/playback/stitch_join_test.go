package playback

import (
	"bytes"
	"context"
	"testing"
	"time"

	"fieldvideo/internal/mp4"
)

// Video segments that join a little early — the recorder moves a drifting anchor by up to
// 10 ms at each segment start — are stitched whole and stay on their capture times; a
// segment that overlaps by more than half a frame waits for its next keyframe.
func TestStitchJoins(t *testing.T) {
	const clock, frame, perSeg = 90000, 3600, 50 // 25 fps, a keyframe per 2 s segment
	ms := time.Millisecond
	for _, tc := range []struct {
		name   string
		early  []time.Duration // how early each segment joins the one before
		placed []int           // frames written of each segment
	}{
		{"joins on time", []time.Duration{0, 0, 0, 0}, []int{50, 50, 50, 50}},
		{"anchor slewing 10 ms a segment", []time.Duration{0, 10 * ms, 10 * ms, 10 * ms, 10 * ms, 10 * ms, 10 * ms}, []int{50, 50, 50, 50, 50, 50, 50}},
		{"half a frame early", []time.Duration{0, 20 * ms, 20 * ms, 20 * ms}, []int{50, 50, 50, 50}},
		{"a whole frame early", []time.Duration{0, 40 * ms}, []int{50, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs0 := time.Unix(1796472223, 354e6)
			st := &stitcher{ctx: context.Background(), w: &bytes.Buffer{}, info: &StreamInfo{},
				req: StreamRequest{Start: cs0, End: cs0.Add(time.Hour)}}
			ot := &outTrack{id: 1, ts: clock, video: true, origin: cs0}
			st.tracks = []*outTrack{ot}
			tr := mp4.Track{ID: 1, TimeScale: clock, Handler: "vide"}
			in := &input{source: "cam1", out: map[uint32]*outTrack{1: ot}}
			cs := cs0
			for n, early := range tc.early {
				if n > 0 {
					cs = cs.Add(perSeg*40*ms - early)
					ot.waitSync = true // as compatible leaves it for every further segment
				}
				ss := make([]mp4.Sample, perSeg)
				for k := range ss {
					ss[k] = mp4.Sample{DTS: uint64(k * frame), Duration: frame, Sync: k == 0, Data: []byte{1}}
				}
				in.cur = &loaded{cs: cs, sc: &mp4.Segment{Tracks: []mp4.Track{tr}}, samples: map[uint32][]mp4.Sample{1: ss}, pos: map[uint32]int{}}
				placed := 0
				for range ss {
					before := ot.next
					if err := st.place(in, &tr); err != nil {
						t.Fatal(err)
					}
					if ot.next != before {
						placed++
					}
				}
				if placed != tc.placed[n] {
					t.Errorf("segment %d (%s early): %d frames written, want %d", n, early, placed, tc.placed[n])
				}
				if placed == perSeg {
					// the track ends where the segment's capture time does
					if got, want := mp4.TicksToDuration(ot.next, clock), cs.Add(perSeg*40*ms).Sub(cs0); got != want {
						t.Errorf("segment %d: the track ends at %s, its capture at %s", n, got, want)
					}
				}
			}
			if err := st.flush(); err != nil {
				t.Fatal(err)
			}
		})
	}
}
