package audit

import (
	"fmt"
	"net/http"
	"time"

	"golang.org/x/time/rate"
)

// ActionRateLimited is the action of the event that counts the requests of
// one identity refused over its rate (see Params.Limits).
const ActionRateLimited = "rate-limited"

// Limit bounds the HTTP requests of one identity of a role: Rate a second
// after a burst of Burst, however many connections they come on.
type Limit struct {
	Rate  float64
	Burst int
}

// Bounds of the identities tracked: the refusals are counted and written as
// one summary per identity every anonymousInterval, for the
// limitedSummaries identities with the most, and one for the others.
const (
	limitedSummaries  = 8
	limitedIdentities = 4096
	limitedIdle       = time.Minute
	limitedKey        = 128 // bytes of an identity's name kept as its key
)

// limitedRules bound the requests of the identities of the roles in limits.
func limitedRules(limits map[string]Limit) limitRules {
	return limitRules{
		perKey: func(ev *Event) (rate.Limit, int) {
			lim := limits[ev.Role]
			return rate.Limit(lim.Rate), lim.Burst
		},
		summaries: limitedSummaries, maxKeys: limitedIdentities, idle: limitedIdle,
		key: func(ev *Event) string { return clipTo(ev.Role+" "+ev.Actor, limitedKey) },
		event: func(s summary) Event {
			return limitedSummary(s, limits)
		},
	}
}

// overRate reports whether the request of ev is over the rate of its
// identity's role: it is then refused with 429 and counted for the
// identity's summary instead of having an event of its own.
func (l *Log) overRate(ev *Event) bool {
	if l.limited == nil || ev.Role == "" {
		return false
	}
	if _, ok := l.p.Limits[ev.Role]; !ok {
		return false
	}
	refused := *ev
	refused.Status = http.StatusTooManyRequests
	return !l.limited.admit(&refused)
}

// refuseOverRate answers a request over its identity's rate.
func (l *Log) refuseOverRate(w http.ResponseWriter, ev *Event) {
	lim := l.p.Limits[ev.Role]
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Retry-After", "1")
	w.WriteHeader(http.StatusTooManyRequests)
	fmt.Fprintf(w, "too many requests from %s: a %s token may make %g a second after a burst of %d; slow down and retry\n",
		ev.Actor, ev.Role, lim.Rate, lim.Burst)
}

// limitedSummary is the event of a summary of the requests of one identity
// (or, without key, of several) refused over their rate.
func limitedSummary(s summary, limits map[string]Limit) Event {
	h := s.h
	who, actor := "other identities", ""
	if s.key != "" {
		who, actor = h.actor, h.actor
	}
	return Event{Actor: actor, Role: h.role, Action: ActionRateLimited, Via: "http", Result: "denied",
		Reason: fmt.Sprintf("%d requests of %s refused over the rate of %g a second between %s and %s, last %s %s",
			h.n, who, limits[h.role].Rate, h.since.UTC().Format(time.RFC3339Nano), h.until.UTC().Format(time.RFC3339Nano), h.method, h.path),
		Method: h.method, Path: h.path, Status: h.status, Count: h.n, Refused: h.refused, Since: h.since.UTC(), Until: h.until.UTC()}
}
