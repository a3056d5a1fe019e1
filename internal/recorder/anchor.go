package recorder

import (
	"time"

	"fieldvideo/internal/mp4"
)

// A track's RTP clock is tied to the wall clock at an anchor: a unit's
// capture time (or arrival time, for sources that are not aligned) and the
// media time it stands for. The anchor is checked against every unit and
// moved, between segments only, when it drifts.

const (
	// Re-anchoring: aligned capture times (smooth, from internal/sync) may
	// differ from a track's anchor by this much before it is re-anchored;
	// arrival times re-anchor when a unit arrives earlier than predicted
	// (less network delay than at the anchor) or later by more than
	// reanchorJump.
	reanchorAligned = 5 * time.Millisecond
	reanchorEarly   = 30 * time.Millisecond
	reanchorJump    = 5 * time.Second
	// A track's anchor moves by at most anchorSlew per segment, unless it
	// is off by more than anchorStep.
	anchorSlew = 10 * time.Millisecond
	anchorStep = time.Second
)

// place anchors the track to the wall clock at a unit's first sample. Later
// units check the anchor: when it has drifted from their times, a better one
// is kept pending for the next segment (applyAnchor). Aligned capture times
// are presentation times; arrival times follow decode order.
func (t *recTrack) place(smp *sample, wall int64, aligned bool, trust uint8) {
	if !t.anchored {
		if smp.sync {
			t.reorder = int64(smp.ptsOff)
		}
		t.pendReorder = t.reorder
		t.anchored, t.anchorAlgn, t.anchorTrust = true, aligned, trust
		t.anchorWall, t.anchorRef = wall, t.refOf(smp, aligned, t.reorder)
		return
	}
	// A sample the current anchor puts far from its own time means the RTP
	// clock jumped (a camera restarted its timestamps, or sends garbage):
	// from here on the track is placed at its own time at once, in the
	// segment being written too, and is discontinuous there.
	step := int64(anchorStep)
	if !aligned || !t.anchorAlgn {
		step = int64(reanchorJump)
	}
	if cur := t.anchorWall + int64(mp4.TicksToDuration(t.refOf(smp, aligned, t.reorder)-t.anchorRef, t.clock)) - wall; abs(cur) > step {
		t.pending, t.jumped = false, true
		t.gen++
		t.anchorAlgn, t.anchorTrust, t.anchorWall, t.anchorRef = aligned, trust, wall, t.refOf(smp, aligned, t.reorder)
		return
	}
	aWall, aRef, aAlgn, aTrust := t.anchorWall, t.anchorRef, t.anchorAlgn, t.anchorTrust
	if t.pending {
		aWall, aRef, aAlgn, aTrust = t.pendWall, t.pendRef, t.pendAlgn, t.pendTrust
	}
	if smp.sync && int64(smp.ptsOff) != t.pendReorder {
		// The reorder delay became known (decode times at the start of a
		// stream are a guess); presentation times stay where they were.
		t.pendReorder = int64(smp.ptsOff)
		t.pending, t.pendAlgn, t.pendTrust, t.pendWall, t.pendRef = true, aAlgn, aTrust, aWall, aRef
		return
	}
	ref := t.refOf(smp, aligned, t.pendReorder)
	if aAlgn == aligned && aTrust == trust {
		diff := aWall + int64(mp4.TicksToDuration(ref-aRef, t.clock)) - wall
		if aligned && abs(diff) <= int64(reanchorAligned) {
			return
		}
		if !aligned && diff <= int64(reanchorEarly) && -diff <= int64(reanchorJump) {
			return
		}
	}
	t.pending, t.pendAlgn, t.pendTrust, t.pendWall, t.pendRef = true, aligned, trust, wall, ref
}

// refOf is the media time a unit's wall-clock time stands for: its
// presentation time when it is a capture time, its decode time plus the
// reorder delay when it is an arrival time.
func (t *recTrack) refOf(smp *sample, aligned bool, reorder int64) int64 {
	if aligned {
		return smp.dts + int64(smp.ptsOff)
	}
	return smp.dts + reorder
}

// applyAnchor moves the track's anchor toward a pending one, at the start
// of a segment: by at most anchorSlew, so that consecutive segments' capture
// times join within a fraction of a frame, unless the time base itself
// changed (alignment or trust) or the jump is larger than anchorStep. It
// re-times the samples waiting.
func (t *recTrack) applyAnchor() {
	if !t.pending {
		return
	}
	t.reorder = t.pendReorder
	delta := t.pendWall + int64(mp4.TicksToDuration(t.anchorRef-t.pendRef, t.clock)) - t.anchorWall
	if t.pendAlgn != t.anchorAlgn || t.pendTrust != t.anchorTrust || abs(delta) <= int64(anchorSlew) || abs(delta) > int64(anchorStep) {
		t.pending = false
		t.anchorAlgn, t.anchorTrust, t.anchorWall, t.anchorRef = t.pendAlgn, t.pendTrust, t.pendWall, t.pendRef
	} else if delta > 0 {
		t.anchorWall += int64(anchorSlew)
	} else {
		t.anchorWall -= int64(anchorSlew)
	}
	for _, q := range t.queue {
		q.t = t.timeOf(q)
	}
	if t.held != nil {
		t.held.t = t.timeOf(t.held)
	}
}

// timeOf is a sample's wall-clock time on the track's current anchor; a
// sample from before the RTP clock jumped keeps the time it had.
func (t *recTrack) timeOf(smp *sample) int64 {
	if smp.gen != t.gen {
		return smp.t
	}
	return t.wallOf(smp.dts)
}

// wallOf is the wall-clock time of a sample of the track with decode time
// dts: of its decode time plus the reorder delay.
func (t *recTrack) wallOf(dts int64) int64 {
	return t.anchorWall + int64(mp4.TicksToDuration(dts+t.reorder-t.anchorRef, t.clock))
}

func abs(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}
