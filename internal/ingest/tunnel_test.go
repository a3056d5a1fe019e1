package ingest

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"fieldvideo/internal/auth"
	"fieldvideo/internal/testkit"
)

// tunnelHalf opens one half of an RTSP-over-HTTP tunnel.
func openTunnelHalf(t *testing.T, host, method, cookie string) net.Conn {
	t.Helper()
	nc, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	h := "Accept: " + tunnelMime
	if method == http.MethodPost {
		h = "Content-Type: " + tunnelMime + "\r\nContent-Length: 32767"
	}
	if _, err := fmt.Fprintf(nc, "%s /cam HTTP/1.1\r\nHost: %s\r\nX-Sessioncookie: %s\r\n%s\r\n\r\n", method, host, cookie, h); err != nil {
		t.Fatal(err)
	}
	return nc
}

// TestHTTPTunnelPostFirst: the tunnel's halves pair in either order; a
// player whose POST gets in before its GET is served.
func TestHTTPTunnelPostFirst(t *testing.T) {
	testkit.RequireBinary(t, testkit.FFmpegPath)
	env := newTestServer(t, func(p *Params) { p.RTSP.RequestTimeout = 2 * time.Second })
	tok := mint(t, testSecret, auth.Claims{Publish: []string{"cam"}, View: []string{"cam"}})
	testkit.StartPush(t, t.Context(), testkit.PushParams{URL: env.url(tok, "cam")})
	env.waitState(t, "cam", StateLive)

	for _, postFirst := range []bool{true, false} {
		t.Run(fmt.Sprintf("post_first=%v", postFirst), func(t *testing.T) {
			cookie := fmt.Sprintf("c%v%d", postFirst, time.Now().UnixNano())
			var get, post net.Conn
			if postFirst {
				post = openTunnelHalf(t, env.host, http.MethodPost, cookie)
				get = openTunnelHalf(t, env.host, http.MethodGet, cookie)
			} else {
				get = openTunnelHalf(t, env.host, http.MethodGet, cookie)
				post = openTunnelHalf(t, env.host, http.MethodPost, cookie)
			}
			_ = get.SetReadDeadline(time.Now().Add(waitTimeout))
			br := bufio.NewReader(get)
			res, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("the GET half's answer: %v", err)
			}
			if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != tunnelMime {
				t.Fatalf("GET half: %d %q", res.StatusCode, res.Header.Get("Content-Type"))
			}
			// Each request written in its own padded base64 piece, split
			// across writes, as players do.
			req := fmt.Sprintf("DESCRIBE rtsp://%s/cam?token=%s RTSP/1.0\r\nCSeq: 1\r\n\r\n", env.host, tok)
			enc := base64.StdEncoding.EncodeToString([]byte(req[:7])) + "\r\n" + base64.StdEncoding.EncodeToString([]byte(req[7:]))
			for i := 0; i < len(enc); i += 13 {
				if _, err := io.WriteString(post, enc[i:min(i+13, len(enc))]); err != nil {
					t.Fatal(err)
				}
			}
			status, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("DESCRIBE over the tunnel: %v", err)
			}
			if !strings.HasPrefix(status, "RTSP/1.0 200") {
				t.Fatalf("DESCRIBE over the tunnel: %q", status)
			}
		})
	}
}

// TestHTTPTunnelUnpaired: a GET half with no POST is closed after the
// request timeout, and counted as such; so is a POST half with no GET.
func TestHTTPTunnelUnpaired(t *testing.T) {
	const timeout = 300 * time.Millisecond
	env := newTestServer(t, func(p *Params) { p.RTSP.RequestTimeout = timeout })
	for _, m := range []string{http.MethodGet, http.MethodPost} {
		t.Run(m, func(t *testing.T) {
			nc := openTunnelHalf(t, env.host, m, "lonely-"+m)
			_ = nc.SetReadDeadline(time.Now().Add(waitTimeout))
			b, err := io.ReadAll(nc)
			if err != nil {
				t.Fatalf("the half stayed open: %v", err)
			}
			if m == http.MethodGet && !bytes.HasPrefix(b, []byte("HTTP/1.1 200 OK")) {
				t.Fatalf("GET half got %q", b)
			}
			testkit.WaitFor(t, waitTimeout, "the listener to count the half closed", func() bool {
				return env.srv.Connections().Open == 0
			})
		})
	}
}

// TestBase64Stream: pieces padded on their own and broken by line ends
// decode as one stream; a byte outside base64 is an error naming it.
func TestBase64Stream(t *testing.T) {
	in := base64.StdEncoding.EncodeToString([]byte("OPTIONS")) + "\r\n" + base64.StdEncoding.EncodeToString([]byte(" rtsp://x RTSP/1.0\r\n\r\n"))
	got, err := io.ReadAll(&base64Stream{r: iotestHalf(strings.NewReader(in))})
	if err != nil || string(got) != "OPTIONS rtsp://x RTSP/1.0\r\n\r\n" {
		t.Fatalf("decoded %q, %v", got, err)
	}
	_, err = io.ReadAll(&base64Stream{r: strings.NewReader("T1BU*ONT")})
	if err == nil || !strings.Contains(err.Error(), "not base64") {
		t.Fatalf("bad byte: %v", err)
	}
}

// iotestHalf returns a reader that hands out one byte per read.
func iotestHalf(r io.Reader) io.Reader { return &oneByte{r} }

type oneByte struct{ r io.Reader }

func (o *oneByte) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	return o.r.Read(p[:1])
}
