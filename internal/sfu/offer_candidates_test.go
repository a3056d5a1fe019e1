package sfu

import (
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"fieldvideo/internal/auth"
	"fieldvideo/internal/testkit"
	"fieldvideo/internal/whip"
	"fieldvideo/testbench/synth"
)

// TestOfferedCandidatesDrawNoTraffic offers, besides the viewer's own
// candidates, candidates of another host (a UDP socket standing for a victim)
// with the highest priority: the SFU sends nothing to an address an offer
// names; it learns the viewer's from the viewer's own checks, and it plays.
func TestOfferedCandidatesDrawNoTraffic(t *testing.T) {
	h := startSFU(t)
	h.publish("cam1", synth.Params{Audio: true, FPS: 25, GOP: 50})
	victim, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer victim.Close()
	var hit atomic.Int64
	go func() {
		b := make([]byte, 1500)
		for {
			if _, _, err := victim.ReadFrom(b); err != nil {
				return
			}
			hit.Add(1)
		}
	}()
	port := victim.LocalAddr().(*net.UDPAddr).Port
	inject := func(sdp string) string {
		var out strings.Builder
		for _, line := range strings.SplitAfter(sdp, "\r\n") {
			out.WriteString(line)
			if strings.HasPrefix(line, "a=mid:") {
				for i := range 8 {
					fmt.Fprintf(&out, "a=candidate:v%d 1 udp %d 127.0.0.1 %d typ host\r\n", i, 2130706431-i, port)
				}
			}
		}
		return out.String()
	}
	got := foreignViewEdited(t, foreignAPI(t, nil), whip.Endpoint(h.base, "cam1", "whep"),
		h.token(auth.RoleWall, nil, []string{"cam1"}), inject)
	testkit.WaitFor(t, 10*time.Second, "the viewer playing", func() bool { return got.count(106) > 50 })
	if n := hit.Load(); n != 0 {
		t.Fatalf("the SFU sent %d datagrams to an address a viewer's offer named", n)
	}
}
