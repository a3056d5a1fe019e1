package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"fieldvideo/internal/auth"
	"fieldvideo/internal/recorder"
	"fieldvideo/internal/testkit"
	"fieldvideo/internal/whip"
)

func recording(t *testing.T, base, tok string) recorder.View {
	t.Helper()
	body, err := (&whip.Client{Token: tok}).Get(context.Background(), base+"/v1/recording")
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		Enabled  bool
		Recorder recorder.View
	}
	if err := json.Unmarshal(body, &r); err != nil || !r.Enabled {
		t.Fatalf("recording state %s: %v", body, err)
	}
	return r.Recorder
}

// Ingest records the cameras at the edge, at both sites; the SFU records
// what is published to it directly, and not the cameras again.
func TestRecordingAtTheEdgeAndInTheSFU(t *testing.T) {
	camAddr := fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t))
	startCamera(t, camAddr)
	_, sfu := startSFU(t, "127.0.0.1:0")
	in := startIngest(t, sfu, fmt.Sprintf(`[{name: cam1, url: "rtsp://%s/cam1"}]`, camAddr))
	operator := token(t, auth.RoleOperator, nil, []string{"*"})
	waitState(t, sfu, operator, "cam1", "live", 20*time.Second)

	// A phone-like publisher straight to the SFU.
	api, err := whip.NewAPI(whip.APIParams{LoopbackOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := testkit.LiveStream(t, ctx, "phone1", true)
	pub, err := whip.NewPublisher(whip.PublisherParams{Endpoint: whip.Endpoint(sfu, "phone1", "whip"),
		Client: &whip.Client{Token: token(t, auth.RoleResponder, []string{"phone1"}, nil)}, API: api, Stream: st})
	if err != nil {
		t.Fatal(err)
	}
	go pub.Run(ctx)

	s := storesOf(t)
	testkit.WaitFor(t, 40*time.Second, "two segments of each source at both sites", func() bool {
		return len(testkit.Segments(s.primary, "cam1")) >= 2 && len(testkit.Segments(s.offsite, "cam1")) >= 2 &&
			len(testkit.Segments(s.primary, "phone1")) >= 2 && len(testkit.Segments(s.offsite, "phone1")) >= 2
	})
	for _, seg := range append(testkit.Segments(s.offsite, "cam1")[:1], testkit.Segments(s.offsite, "phone1")[:1]...) {
		streams, err := testkit.Probe(context.Background(), seg, "")
		if err != nil || len(streams) == 0 {
			t.Fatalf("ffprobe %s: %v %+v", seg, err, streams)
		}
	}

	ing := recording(t, "http://"+in.listen["api"], operator)
	if len(ing.Sources) != 1 || ing.Sources[0].Name != "cam1" || ing.RPOSeconds <= 0 || ing.RPOSeconds > 30 {
		t.Fatalf("ingest recording %+v: want cam1 with an RPO of seconds", ing)
	}
	sv := recording(t, sfu, operator)
	if len(sv.Sources) != 1 || sv.Sources[0].Name != "phone1" {
		t.Fatalf("SFU recording %+v: want phone1 only (cam1 is recorded by ingest)", sv)
	}
	t.Logf("RPO: ingest %.1f s, SFU %.1f s", ing.RPOSeconds, sv.RPOSeconds)
}
