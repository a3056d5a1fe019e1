package ingest

import (
	"slices"
	"sync"
	"testing"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"

	"fieldvideo/internal/auth"
	"fieldvideo/internal/testkit"
)

// TestIdlePushesAreBounded: one publisher pushes under more names than
// Params.MaxIdlePushes, one after the other; once they have left, only the
// most recent stay listed, the others are announced removed (OnRemoved),
// and another publisher's idle push is untouched.
func TestIdlePushesAreBounded(t *testing.T) {
	var mu sync.Mutex
	var removed []string
	env := newTestServer(t, func(p *Params) {
		p.MaxIdlePushes = 2
		p.OnRemoved = func(name string) {
			mu.Lock()
			removed = append(removed, name)
			mu.Unlock()
		}
	})
	video := &description.Media{Type: description.MediaTypeVideo, Formats: []format.Format{
		&format.H264{PayloadTyp: 96, SPS: testSPS, PPS: testPPS, PacketizationMode: 1}}}
	push := func(sub, name string) {
		t.Helper()
		c := auth.Claims{Publish: []string{"report-*"}}
		c.Subject = sub
		pub := &gortsplib.Client{}
		if err := pub.StartRecording(env.basicURL(mint(t, testSecret, c), name), &description.Session{Medias: []*description.Media{video}}); err != nil {
			t.Fatalf("push %s: %v", name, err)
		}
		pub.Close()
		env.waitState(t, name, StateOffline)
	}
	push("other", "report-other-1")
	names := []string{"report-phone-1", "report-phone-2", "report-phone-3", "report-phone-4"}
	for _, n := range names {
		push("phone", n)
	}
	listed := func() []string {
		var out []string
		for _, s := range env.srv.Sources() {
			out = append(out, s.Name)
		}
		slices.Sort(out)
		return out
	}
	testkit.WaitFor(t, waitTimeout, "the oldest idle pushes announced removed", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(removed) == 2
	})
	mu.Lock()
	slices.Sort(removed)
	gone := slices.Clone(removed)
	mu.Unlock()
	if want := names[:2]; !slices.Equal(gone, want) {
		t.Fatalf("removed %v, want the oldest %v", gone, want)
	}
	if got, want := listed(), []string{"report-other-1", "report-phone-3", "report-phone-4"}; !slices.Equal(got, want) {
		t.Fatalf("listed %v, want %v", got, want)
	}
	// a name taken off the list can be pushed again
	push("phone", "report-phone-1")
}
