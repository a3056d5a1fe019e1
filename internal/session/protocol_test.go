package session

import (
	"bytes"
	"strings"
	"testing"
)

func TestParseRequest(t *testing.T) {
	for _, c := range []struct {
		name, in string
		want     string // error substring; empty: accepted
	}{
		{"join", `{"type":"join","id":1,"token":"abc","auto_subscribe":true}`, ""},
		{"join without token", `{"type":"join"}`, "token is empty"},
		{"join with a name", `{"type":"join","token":"abc","name":"Anna Lee (EOC) 李安娜"}`, ""},
		{"name with a line break", `{"type":"join","token":"abc","name":"Anna\nCommander"}`, "control characters"},
		{"name reversed", `{"type":"join","token":"abc","name":"Anna \u202egnp.exe"}`, "text-direction"},
		{"name with NUL", `{"type":"join","token":"abc","name":"A\u0000"}`, "control characters"},
		{"offer", `{"type":"offer","id":2,"pc":"publish","sdp":"v=0\r\n","tracks":[{"mid":"0","source":"camera"}]}`, ""},
		{"offer on subscribe", `{"type":"offer","pc":"subscribe","sdp":"v=0"}`, "clients offer on the publish connection only"},
		{"offer bad source", `{"type":"offer","pc":"publish","sdp":"v=0","tracks":[{"mid":"0","source":"radio"}]}`, "track source"},
		{"offer twice the mid", `{"type":"offer","pc":"publish","sdp":"v=0","tracks":[{"mid":"0","source":"camera"},{"mid":"0","source":"screen"}]}`, "listed twice"},
		{"offer not sdp", `{"type":"offer","pc":"publish","sdp":"hello"}`, "v=0"},
		{"answer", `{"type":"answer","pc":"subscribe","sdp":"v=0"}`, ""},
		{"answer on publish", `{"type":"answer","pc":"publish","sdp":"v=0"}`, "offers only on the subscribe"},
		{"candidate", `{"type":"candidate","pc":"publish","candidate":"candidate:1 1 udp 1 1.2.3.4 5 typ host","sdp_mid":"0"}`, ""},
		{"subscribe", `{"type":"subscribe","track":"alice/camera","pinned":true}`, ""},
		{"subscribe no track", `{"type":"subscribe"}`, "track is empty"},
		{"mute", `{"type":"mute","track":"alice/microphone","muted":true}`, ""},
		{"leave", `{"type":"leave"}`, ""},
		{"renew", `{"type":"renew","id":4,"token":"a.b.c"}`, ""},
		{"renew without token", `{"type":"renew","id":4}`, "token is empty"},
		{"unknown", `{"type":"dance"}`, `unknown message type "dance"`},
		{"no type", `{"id":1}`, `no "type"`},
		{"negative id", `{"type":"ping","id":-1}`, "negative"},
		{"wrong field type", `{"type":"mute","track":"a","muted":"yes"}`, "mute message"},
		{"not json", `[1,2]`, "not a JSON object"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseRequest([]byte(c.in))
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("got %v, want an error mentioning %q", err, c.want)
			}
		})
	}
	big := `{"type":"join","token":"` + strings.Repeat("a", MaxMessageBytes) + `"}`
	if _, err := ParseRequest([]byte(big)); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Fatalf("oversized message: %v", err)
	}
}

func FuzzParseRequest(f *testing.F) {
	f.Add([]byte(`{"type":"join","id":1,"token":"x.y.z"}`))
	f.Add([]byte(`{"type":"offer","id":2,"pc":"publish","sdp":"v=0\r\n","tracks":[{"mid":"0","source":"camera"}]}`))
	f.Add([]byte(`{"type":"candidate","pc":"subscribe","candidate":"","sdp_mline_index":0}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		in := bytes.Clone(b)
		r, err := ParseRequest(b)
		if !bytes.Equal(in, b) {
			t.Fatal("the parser modified its input")
		}
		if err == nil && r == nil {
			t.Fatal("no request and no error")
		}
		if err != nil && r != nil {
			t.Fatal("both a request and an error")
		}
	})
}
