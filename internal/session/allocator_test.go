package session

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pion/sdp/v3"
)

func TestAllocate(t *testing.T) {
	sim := func(prio, current int) allocTrack {
		return allocTrack{priority: prio, rates: []int{50_000, 250_000, 800_000}, current: current}
	}
	audio := allocTrack{audio: true, rates: []int{40_000}}
	for _, c := range []struct {
		name   string
		budget int
		tracks []allocTrack
		want   []int
	}{
		{"plenty", 5_000_000, []allocTrack{audio, sim(prioCommander, 2), sim(prioOther, 2)}, []int{0, 2, 2}},
		{"the commander keeps the full layer", 1_400_000, []allocTrack{audio, sim(prioOther, 2), sim(prioCommander, 2)}, []int{0, 1, 2}},
		{"pinned beats commander", 1_300_000, []allocTrack{sim(prioCommander, 2), sim(prioPinned, 2)}, []int{1, 2}},
		{"everyone at the lowest", 200_000, []allocTrack{audio, sim(prioCommander, 0), sim(prioOther, 0)}, []int{0, 0, 0}},
		{"lowest priority paused first", 120_000, []allocTrack{audio, sim(prioCommander, 0), sim(prioOther, 0)}, []int{0, 0, layerOff}},
		{"audio never starves", 10_000, []allocTrack{audio, sim(prioPinned, 0)}, []int{0, layerOff}},
		{"muted video takes nothing", 400_000, []allocTrack{{priority: prioPinned, muted: true, rates: []int{50_000, 250_000, 800_000}}, sim(prioOther, 1)}, []int{layerOff, 1}},
		// Going up needs a margin over the layer's rate; staying does not.
		{"no upgrade without margin", 1_000_000, []allocTrack{sim(prioOther, 1)}, []int{1}},
		{"keeps a layer it has", 1_000_000, []allocTrack{sim(prioOther, 2)}, []int{2}},
		{"a layer that stopped is skipped", 5_000_000, []allocTrack{{rates: []int{50_000, 250_000, 0}, current: 2}}, []int{1}},
		{"unmeasured starts at the lowest", 5_000_000, []allocTrack{{rates: []int{0, 0, 0}}}, []int{0}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := allocate(c.budget, c.tracks); !slices.Equal(got, c.want) {
				t.Fatalf("allocate(%d) = %v, want %v", c.budget, got, c.want)
			}
		})
	}
}

// A pinned camera paused because the estimate (still near its start) is below its rate is
// probed for, although every other track has its top layer; while the estimate follows,
// probes go on back to back.
func TestProbePausedTrack(t *testing.T) {
	in := []allocTrack{
		{audio: true, rates: []int{40_000}},
		{priority: prioPinned, rates: []int{900_000}, current: layerOff},
		{priority: prioOperator, rates: []int{45_000, 224_000, 448_000}, current: 2},
	}
	const est = 800_000
	if got := allocate(est, in); !slices.Equal(got, []int{0, layerOff, 2}) {
		t.Fatalf("allocate(%d) = %v, want the pinned camera paused", est, got)
	}
	p := &participant{}
	now := time.Unix(1_800_000_000, 0)
	budget := p.probe(now, est, in)
	if budget <= est {
		t.Fatalf("no probe for a paused pinned camera: budget %d at estimate %d", budget, est)
	}
	if got := allocate(budget, in); got[1] != 0 || got[2] == layerOff {
		t.Fatalf("during the probe allocate(%d) = %v, want the pinned camera and the participant playing", budget, got)
	}
	// the estimate follows: when the probe ends the next begins at once.
	now = now.Add(probeFor)
	if b := p.probe(now, est*6/5, in); b <= est*6/5 {
		t.Fatalf("no probe right after one the estimate followed: budget %d", b)
	}
	// it does not follow: the probe stops and the next waits.
	now = now.Add(time.Second)
	if b := p.probe(now, est/2, in); b != est/2 {
		t.Fatalf("budget %d after the estimate fell to %d, want no probe", b, est/2)
	}
	if b := p.probe(now.Add(probeEvery), est, in); b != est {
		t.Fatalf("budget %d a probe interval after a failed probe, want none yet", b)
	}
}

func TestRIDsOfSDP(t *testing.T) {
	for _, c := range []struct {
		attrs []string
		want  []string
	}{
		{[]string{"rid:q send", "rid:h send", "rid:f send", "simulcast:send q;h;f"}, []string{"q", "h", "f"}},
		{[]string{"simulcast:send ~q;h,x;f"}, []string{"q", "h", "f"}},
		{[]string{"rid:a send", "rid:b send"}, []string{"a", "b"}},
		{nil, []string{""}},
	} {
		m := mediaWith(c.attrs...)
		if got := ridsOf(m); !slices.Equal(got, c.want) {
			t.Errorf("ridsOf(%v) = %q, want %q", c.attrs, got, c.want)
		}
	}
}

func mediaWith(attrs ...string) *sdp.MediaDescription {
	m := &sdp.MediaDescription{}
	for _, a := range attrs {
		k, v, _ := strings.Cut(a, ":")
		m.Attributes = append(m.Attributes, sdp.Attribute{Key: k, Value: v})
	}
	return m
}
