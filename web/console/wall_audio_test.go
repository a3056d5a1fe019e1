package console_test

import (
	"fmt"
	"testing"
	"time"

	"fieldvideo/internal/testkit"
)

// TestWallAudioOnlyWhenUnmuted checks that tiles receive audio only while their sound is on:
// a muted tile's video would otherwise be held in step with audio nobody hears.
func TestWallAudioOnlyWhenUnmuted(t *testing.T) {
	h := startSFU(t)
	h.publish("cam1", true)
	h.publish("cam2", true)
	p := testkit.PooledPage(t)
	defer p.LogConsole()
	p.Open(h.base + "/?token=" + h.wallToken())
	p.WaitPlaying("cam1", 5, 40*time.Second)
	p.WaitPlaying("cam2", 5, 40*time.Second)

	audio := func(name string) string {
		return fmt.Sprintf(`(document.querySelector('video[data-source=%q]').srcObject?.getAudioTracks().length ?? 0)`, name)
	}
	var n int
	for _, name := range []string{"cam1", "cam2"} {
		if p.Eval(audio(name), &n); n != 0 {
			t.Errorf("muted %s receives %d audio tracks, want none", name, n)
		}
	}

	p.Do("click", 5*time.Second, map[string]any{"selector": `[data-tile="cam1"] .sound`})
	p.WaitFor("cam1 with sound", audio("cam1")+` === 1 && `+audio("cam2")+` === 0`, 20*time.Second)
	p.WaitPlaying("cam1", 10, 20*time.Second)

	p.Do("click", 5*time.Second, map[string]any{"selector": `[data-tile="cam2"] .sound`})
	p.WaitFor("the sound moved to cam2", audio("cam2")+` === 1 && `+audio("cam1")+` === 0`, 20*time.Second)
	p.WaitPlaying("cam1", 10, 20*time.Second)
	p.WaitPlaying("cam2", 10, 20*time.Second)
	var muted string
	p.Eval(`[...document.querySelectorAll('video[data-source]')].map((v) => v.dataset.source + ':' + (v.muted ? 'muted' : 'sound')).join(' ')`, &muted)
	if muted != "cam1:muted cam2:sound" {
		t.Errorf("tiles %s, want cam1 muted and cam2 with sound", muted)
	}
	// the sessions the switches replaced were ended.
	h.waitViewers("cam1", 1, 15*time.Second)
	h.waitViewers("cam2", 1, 15*time.Second)
}
