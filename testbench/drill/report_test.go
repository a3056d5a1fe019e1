package drill

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestSourceRPO(t *testing.T) {
	base := time.Date(2026, 12, 5, 3, 0, 0, 0, time.UTC)
	seg := func(n int) segment {
		return segment{key: string(rune('a' + n)), source: "cam1", start: base.Add(time.Duration(2*n) * time.Second), end: base.Add(time.Duration(2*n+2) * time.Second)}
	}
	cut := base.Add(9 * time.Second) // segment 4 (8–10 s) is being written
	for _, c := range []struct {
		name             string
		primary, offsite []segment
		lost             time.Duration
		missing          int
	}{
		{"all off-site", []segment{seg(0), seg(1), seg(2), seg(3)}, []segment{seg(0), seg(1), seg(2), seg(3)}, time.Second, 0},
		{"newest in flight", []segment{seg(0), seg(1), seg(2), seg(3)}, []segment{seg(0), seg(1), seg(2)}, 3 * time.Second, 1},
		{"a hole counts from its start", []segment{seg(0), seg(1), seg(2), seg(3)}, []segment{seg(0), seg(2), seg(3)}, 7 * time.Second, 1},
		{"off-site ahead of the primary", []segment{seg(0), seg(1)}, []segment{seg(0), seg(1), seg(2), seg(3)}, time.Second, 0},
		{"nothing off-site", []segment{seg(0)}, nil, 9 * time.Second, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := sourceRPO("cam1", c.primary, c.offsite, base, cut)
			if time.Duration(r.Lost) != c.lost || len(r.Missing) != c.missing {
				t.Fatalf("lost %s, missing %v; want %s and %d missing", time.Duration(r.Lost), r.Missing, c.lost, c.missing)
			}
		})
	}
}

func TestReportJudgeAndRender(t *testing.T) {
	r := &Report{Steps: []Step{{Name: "a", OK: true}}, Checks: []Check{{Name: "live | view", OK: true}},
		Objectives: []Objective{NewObjective("RTO", "store", "", 2*time.Second), NewObjective("RPO", "off-site", "", 11*time.Second)}}
	r.Judge()
	if r.Pass {
		t.Fatal("an RPO of 11 s passed our 10 s target")
	}
	if o := r.Objectives[1]; !o.SeedPass || o.OurPass {
		t.Fatalf("RPO 11 s judged %+v: want within the seed's 2 h, not within our 10 s", o)
	}
	md := r.Markdown()
	for _, want := range []string{"# Disaster-recovery drill: FAILED", `live \| view`, "| RPO | off-site | 11s | ≤ 2h0m0s | pass | ≤ 10s | **FAIL** |"} {
		if !strings.Contains(md, want) {
			t.Errorf("the Markdown lacks %q:\n%s", want, md)
		}
	}
	b, err := json.Marshal(r.Objectives[0])
	if err != nil || !strings.Contains(string(b), `"measured_s":2.000`) {
		t.Fatalf("JSON %s, %v: want seconds", b, err)
	}
}
