package sfu

import (
	"bufio"
	"context"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"fieldvideo/internal/auth"
	rooms "fieldvideo/internal/session"
	"fieldvideo/internal/testkit"
	"fieldvideo/internal/whip"
	"fieldvideo/testbench/synth"
)

// A viewer on a link that loses one packet in twenty gets every lost packet
// again from the SFU's history, so what it receives has no gap: with small frames, and
// with keyframes of 80 packets, where the retransmission of a packet lost early in one
// arrives more than 64 packets behind the newest (the viewer's SRTP replay window must
// reach that far back).
func TestViewerLossIsRepaired(t *testing.T) {
	for _, c := range []struct {
		name          string
		fps, perFrame int
		wantCount     int
	}{{"small frames", 30, 6, 600}, {"large keyframes", 15, 20, 1500}} {
		t.Run(c.name, func(t *testing.T) { viewerLossIsRepaired(t, c.fps, c.perFrame, c.wantCount) })
	}
}

func viewerLossIsRepaired(t *testing.T, fps, perFrame, want int) {
	h := startSFU(t)
	h.publish("cam1", synth.Params{FPS: fps, PacketsPerFrame: perFrame})
	link := testkit.NewShim(t, h.srv.UDPAddr())
	link.LoseDown(20)
	var rec received
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := whip.View(ctx, whip.ViewerParams{
		Endpoint: whip.Endpoint(h.base, "cam1", "whep"), Client: &whip.Client{Token: h.token(auth.RoleWall, nil, []string{"cam1"})},
		API: h.api, OnPacket: rec.on, NoAudio: true,
		LocalSDP: link.ClientSDP, RemoteSDP: rooms.RewriteCandidates(h.srv.UDPAddr(), link.Addr()),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })

	h.waitFor("video packets over the lossy link", func() bool { n, _ := rec.counts(); return n > want })
	link.LoseDown(0)
	n, _ := rec.counts()
	// Retransmissions of the last losses are answered within a NACK round.
	h.waitFor("more video after the loss stopped", func() bool { m, _ := rec.counts(); return m > n+want/6 })
	resent := h.metricSum("fv_viewer_packets_retransmitted_total")
	t.Logf("lost %d packets on the link; the SFU resent %.0f, refused %.0f, dropped %.0f units", link.LostDown(), resent,
		h.metricSum("fv_viewer_nacked_packets_refused_total"), h.metricSum("fv_viewer_dropped_units_total"))
	checkContinuous(t, rec.packets())

	if resent == 0 {
		t.Error("the SFU retransmitted nothing")
	}
}

// The uplink from a field site crosses a cell: the publisher's link to the SFU loses one
// packet in twenty and stalls for 300 ms every 1.5 s. The SFU asks the publisher again for
// what was lost and the publisher answers from its own history, so a viewer gets every
// packet; and once the spikes end the viewer is back to live, with no delay left queued.
func TestUplinkLossAndJitterSpikes(t *testing.T) {
	h := startSFU(t)
	link := testkit.NewShim(t, h.srv.UDPAddr())
	link.LoseUp(20)
	h.publishWith("cam1", synth.Params{FPS: 25, GOP: 50, PacketsPerFrame: 6}, func(p *whip.PublisherParams) {
		p.LocalSDP, p.RemoteSDP = link.ClientSDP, rooms.RewriteCandidates(h.srv.UDPAddr(), link.Addr())
	})
	var rec received
	h.view("cam1", h.token(auth.RoleWall, nil, []string{"cam1"}), &rec)
	h.waitFor("video", func() bool { n, _ := rec.counts(); return n > 100 })
	spikes := time.NewTicker(1500 * time.Millisecond)
	for range 4 {
		link.HoldUp(300 * time.Millisecond)
		<-spikes.C
	}
	spikes.Stop()
	link.LoseUp(0)
	n, _ := rec.counts()
	h.waitFor("video after the spikes", func() bool { m, _ := rec.counts(); return m > n+300 })
	t.Logf("lost %d packets on the uplink; the SFU counted %.0f missing upstream", link.LostUp(),
		h.metricSum("fv_source_packets_lost_total"))
	if link.LostUp() == 0 {
		t.Fatal("the shim lost nothing on the uplink")
	}
	checkContinuous(t, rec.packets())
	rec.mu.Lock()
	last := slices.Clone(rec.latency[len(rec.latency)-100:])
	rec.mu.Unlock()
	slices.Sort(last)
	// a spike's packets arrive up to 300 ms late; a second after the last, the median
	// of the last hundred is back to the path's own delay.
	if med := last[len(last)/2]; med > 100*time.Millisecond {
		t.Errorf("median latency of the last 100 packets is %s after the spikes ended, want the path's own (under 100 ms)", med)
	}
}

// metricSum adds up every sample of a metric family.
func (h *harness) metricSum(name string) float64 {
	h.t.Helper()
	req, _ := http.NewRequestWithContext(context.Background(), "GET", h.base+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+h.token(auth.RoleOperator, nil, nil))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer res.Body.Close()
	var sum float64
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		if f, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64); err == nil {
			sum += f
		}
	}
	return sum
}
