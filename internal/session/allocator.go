package session

import (
	"slices"

	"fieldvideo/internal/auth"
)

// Priorities of subscriptions when bandwidth is short, most important
// first: what the subscriber pinned, screens, then by the publisher's role.
// Audio is not ranked: it is always sent, before any video.
const (
	prioPinned = iota
	prioScreen
	prioCommander
	prioOperator
	prioResponder
	prioField
	prioOther
)

func priorityOf(pub *publication, pinned bool) int {
	switch {
	case pinned:
		return prioPinned
	case pub.info.Source == SourceScreen:
		return prioScreen
	case pub.info.Source == SourceField:
		return prioField
	}
	switch pub.role {
	case auth.RoleCommander:
		return prioCommander
	case auth.RoleOperator:
		return prioOperator
	case auth.RoleResponder:
		return prioResponder
	}
	return prioOther
}

// allocation inputs.
const (
	// audioFloor is reserved for an audio track whose rate is not known yet.
	audioFloor = 48_000
	// headroom is the share of the estimate given to media; the rest
	// absorbs retransmissions and estimate noise.
	headroom = 0.9
	// upgradeMargin is how much more than a higher layer's rate must fit
	// before switching up to it, so a layer is not taken and dropped again
	// at every fluctuation of the estimate.
	upgradeMargin = 1.15
)

// allocTrack is one subscription as the allocator sees it.
type allocTrack struct {
	audio    bool
	priority int
	muted    bool
	// rates are the measured bitrates of the layers, lowest first; 0 when
	// a layer is not flowing.
	rates   []int
	current int // layer now forwarded, layerOff when none
}

// allocate chooses a layer for every track within budget bits per second.
// Audio is reserved first whatever the budget. Then, in priority order,
// every video track gets its lowest flowing layer while it fits, and the
// rest is spent raising tracks, again in priority order. A track that does
// not fit even at its lowest layer is paused (layerOff): the lowest
// priorities go first. Layers that have not been measured yet count as
// flowing at their position's share (so a new subscription starts).
func allocate(budget int, tracks []allocTrack) []int {
	out := make([]int, len(tracks))
	left := int(float64(budget) * headroom)
	var video []int
	for i, t := range tracks {
		if t.audio {
			out[i] = 0
			left -= max(audioFloor, rate(t, 0))
			continue
		}
		out[i] = layerOff
		if !t.muted {
			video = append(video, i)
		}
	}
	slices.SortStableFunc(video, func(a, b int) int { return tracks[a].priority - tracks[b].priority })
	for _, i := range video {
		l := lowestFlowing(tracks[i])
		if l == layerOff {
			continue
		}
		if r := rate(tracks[i], l); r <= left {
			out[i] = l
			left -= r
		}
	}
	for _, i := range video {
		t := tracks[i]
		if out[i] == layerOff {
			continue
		}
		for l := len(t.rates) - 1; l > out[i]; l-- {
			r := rate(t, l)
			if r == 0 {
				continue
			}
			cost := r - rate(t, out[i])
			need := cost
			if l > t.current {
				need = int(float64(r)*upgradeMargin) - rate(t, out[i])
			}
			if need <= left {
				left -= cost
				out[i] = l
				break
			}
		}
	}
	return out
}

// rate returns a layer's rate, or a guess when not measured yet: nothing
// has arrived, which for a fresh subscription means "unknown", not "off".
func rate(t allocTrack, l int) int {
	if l < 0 || l >= len(t.rates) {
		return 0
	}
	return t.rates[l]
}

// lowestFlowing returns the lowest layer with a rate, or layer 0 when none
// is measured yet (a subscription that just started).
func lowestFlowing(t allocTrack) int {
	for l, r := range t.rates {
		if r > 0 {
			return l
		}
	}
	if len(t.rates) > 0 {
		return 0
	}
	return layerOff
}
