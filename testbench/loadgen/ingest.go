package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"

	"github.com/bluenviron/gortsplib/v5"
	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"

	"fieldvideo/internal/auth"
	"fieldvideo/internal/stream"
	"fieldvideo/testbench/synth"
)

// ingestProcess is the ingest binary running on loopback, publishing every pushed
// camera to the SFU as a field site does.
type ingestProcess struct {
	cmd  *exec.Cmd
	rtsp string // host:port
	api  string // http://host:port
}

func startIngest(ctx context.Context, bin string, sfu *sfuProcess) (*ingestProcess, error) {
	dir, err := os.MkdirTemp("", "loadgen-ingest-")
	if err != nil {
		return nil, err
	}
	cmd, addrs, err := startServer(ctx, bin, "ingest",
		"FV_INGEST_RTSP_ADDRESS=127.0.0.1:0", `FV_INGEST_RTSP_UDP_RTP_ADDRESS=""`, `FV_INGEST_RTSP_UDP_RTCP_ADDRESS=""`,
		"FV_INGEST_API_ADDRESS=127.0.0.1:0", "FV_INGEST_UPLINK_URL="+sfu.base, "FV_INGEST_AUTH_SECRET="+string(sfu.secret),
		"FV_INGEST_AUDIT_FILE="+dir+"/audit.log", "FV_INGEST_AUDIT_SIGNING_KEY_FILE="+dir+"/audit.key",
		"FV_INGEST_AUTH_REVOCATIONS_FILE="+dir+"/revocations.json",
		"FV_INGEST_RECORD_SPOOL_DIR="+dir+"/spool", "FV_INGEST_RECORD_PRIMARY_PATH="+dir+"/primary",
		"FV_INGEST_RECORD_OFFSITE_PATH="+dir+"/offsite", "FV_INGEST_LOG_FORMAT=json", "FV_INGEST_LOG_LEVEL=info")
	if err != nil {
		return nil, err
	}
	return &ingestProcess{cmd: cmd, rtsp: addrs.RTSP, api: "http://" + addrs.API}, nil
}

// cpu returns the process's CPU time from /proc.
func (p *ingestProcess) cpu() (cpuTime, error) { return procCPU(p.cmd.Process.Pid) }

// pushCamera publishes a synthetic camera to ingest by RTSP (ANNOUNCE and RECORD over
// TCP, as a field encoder does) until ctx is done, and returns the camera's stream.
func pushCamera(ctx context.Context, in *ingestProcess, sfu *sfuProcess, name string, cam *synth.Camera) (*stream.Stream, error) {
	medi := &description.Media{Type: description.MediaTypeVideo,
		Formats: []format.Format{&format.H264{PayloadTyp: 96, PacketizationMode: 1}}}
	desc := &description.Session{Medias: []*description.Media{medi}}
	tcp := gortsplib.ProtocolTCP
	c := &gortsplib.Client{Protocol: &tcp}
	tok := sfu.token(auth.RoleCamera, []string{name}, nil)
	if err := c.StartRecording("rtsp://tok:"+tok+"@"+in.rtsp+"/"+name, desc); err != nil {
		return nil, fmt.Errorf("push %s to ingest: %w", name, err)
	}
	st := stream.New(stream.Params{Name: name, Tracks: synth.Tracks(cam.Params())})
	r, err := st.AddReader(stream.ReaderParams{Name: "rtsp-push", QueueSize: 4096, OnUnit: func(d stream.Delivery) {
		for _, p := range d.Unit.Packets {
			_ = c.WritePacketRTP(medi, p)
		}
	}})
	if err != nil {
		c.Close()
		return nil, err
	}
	go func() {
		defer c.Close()
		defer r.Close()
		cam.Run(ctx, st)
	}()
	return st, nil
}

// burn holds one core busy until ctx is done, in a process of its own so that its
// CPU time is neither the server's nor the load generator's.
func burn(ctx context.Context) error {
	cmd := exec.CommandContext(ctx, "sh", "-c", "while :; do :; done")
	return cmd.Start()
}
