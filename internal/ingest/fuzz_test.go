package ingest

import (
	"bytes"
	"encoding/base64"
	"io"
	"strings"
	"testing"

	"github.com/bluenviron/gortsplib/v5/pkg/base"
	"github.com/bluenviron/gortsplib/v5/pkg/description"
	"github.com/bluenviron/gortsplib/v5/pkg/format"
	"github.com/bluenviron/gortsplib/v5/pkg/sdpunmarshaler"

	"fieldvideo/internal/unit"
)

// FuzzSelectTracks parses an SDP body as an ANNOUNCE or DESCRIBE response
// would be parsed, and runs what ingest derives from it: track selection,
// the RTSP output formats and the parameter-set injectors. Seed corpus in
// testdata/fuzz/FuzzSelectTracks (SDPs as ffmpeg and cameras send them).
func FuzzSelectTracks(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte) {
		orig := bytes.Clone(body)
		ssd, err := sdpunmarshaler.Unmarshal(body)
		if err != nil {
			return
		}
		var desc description.Session
		if err := desc.Unmarshal2(ssd); err != nil {
			return
		}
		in, skipped := selectTracks(&desc)
		for _, it := range in {
			if it.track.ClockRate == 0 || it.track.Kind == 0 {
				t.Fatalf("selected track without clock or kind: %+v", it.track)
			}
			out := outputFormat(it)
			if out == nil {
				t.Fatalf("selected track %s has no RTSP output format", it.track.Codec)
			}
			if back, ok := trackOf(out); !ok || !back.Compatible(it.track) {
				t.Fatalf("output format of %+v maps back to %+v", it.track, back)
			}
			switch f := it.format.(type) {
			case *format.H264:
				newParamInjector(unit.CodecH264, nil, f.SPS, f.PPS)
			case *format.H265:
				newParamInjector(unit.CodecH265, f.VPS, f.SPS, f.PPS)
			}
		}
		for _, s := range skipped {
			if s.Note == "" {
				t.Fatalf("skipped track without a reason: %+v", s)
			}
		}
		_ = trackInfos(in)
		if !bytes.Equal(body, orig) {
			t.Fatal("the SDP body was modified")
		}
	})
}

// FuzzCredentials runs the extraction of a token from an RTSP request (the
// Authorization header and the URL query) and the building of a refusal's
// status line. Seed corpus in testdata/fuzz/FuzzCredentials.
func FuzzCredentials(f *testing.F) {
	f.Fuzz(func(t *testing.T, header, query, reason string) {
		req := &base.Request{Method: base.Announce, Header: base.Header{}}
		if header != "" {
			req.Header["Authorization"] = base.HeaderValue{header}
		}
		tok, how, err := credentials(req, query)
		switch {
		case how == "" && (tok != "" || err != nil):
			t.Fatalf("no credentials but token %q, error %v", tok, err)
		case err != nil && tok != "":
			t.Fatalf("error %v with token %q", err, tok)
		}
		msg := statusMessage(base.StatusUnauthorized, reason)
		if strings.ContainsAny(msg, "\r\n") {
			t.Fatalf("status line %q contains a line break", msg)
		}
		res := &base.Response{StatusCode: base.StatusUnauthorized, StatusMessage: msg}
		if _, err := res.Marshal(); err != nil {
			t.Fatalf("refusal does not marshal: %v", err)
		}
	})
}

// FuzzBase64Stream: whatever a tunnel's POST body holds, the decoder
// returns what each complete group decodes to, in order, or an error;
// never a panic.
func FuzzBase64Stream(f *testing.F) {
	f.Add([]byte("T1BUSU9OUw==\r\nIHJ0c3A6Ly94IFJUU1AvMS4wDQoNCg=="))
	f.Add([]byte("QQ==QUI=QUJD"))
	f.Add([]byte("T1B*"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := io.ReadAll(&base64Stream{r: bytes.NewReader(in)})
		var want []byte
		var clean []byte
		for _, c := range in {
			if c != '\r' && c != '\n' && c != ' ' && c != '\t' {
				clean = append(clean, c)
			}
		}
		for i := 0; i+4 <= len(clean); i += 4 {
			d, derr := base64.StdEncoding.DecodeString(string(clean[i : i+4]))
			if derr != nil {
				if err == nil {
					t.Fatalf("%q: no error for the bad group %q", in, clean[i:i+4])
				}
				break
			}
			want = append(want, d...)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%q: decoded %q, want %q", in, got, want)
		}
	})
}
