package sync

import (
	"strings"
	"testing"

	"github.com/pion/sdp/v3"
)

func TestParseTSRefClk(t *testing.T) {
	for _, tc := range []struct {
		in     string
		want   RefClock
		locked bool
	}{
		{"ntp=/traceable/", RefClock{Source: ClockNTP, Traceable: true}, true},
		{"ntp=pool.ntp.org", RefClock{Source: ClockNTP, Server: "pool.ntp.org"}, true},
		{"ntp=203.0.113.10:123", RefClock{Source: ClockNTP, Server: "203.0.113.10:123"}, true},
		{"ntp=[2001:db8::1]:123", RefClock{Source: ClockNTP, Server: "[2001:db8::1]:123"}, true},
		{"ptp=IEEE1588-2008:39-A7-94-FF-FE-07-CB-D0:0", RefClock{Source: ClockPTP, PTPVersion: "IEEE1588-2008",
			PTPGrandmaster: "39-A7-94-FF-FE-07-CB-D0", PTPDomain: "0"}, true},
		{"ptp=IEEE1588-2008:traceable", RefClock{Source: ClockPTP, PTPVersion: "IEEE1588-2008", Traceable: true}, true},
		{"ptp=IEEE802.1AS-2011:39-A7-94-FF-FE-07-CB-D0", RefClock{Source: ClockPTP, PTPVersion: "IEEE802.1AS-2011",
			PTPGrandmaster: "39-A7-94-FF-FE-07-CB-D0"}, true},
		{"ptp=IEEE1588-2002:39-A7-94-FF-FE-07-CB-D0:domain-name=FOO", RefClock{Source: ClockPTP,
			PTPVersion: "IEEE1588-2002", PTPGrandmaster: "39-A7-94-FF-FE-07-CB-D0", PTPDomain: "domain-name=FOO"}, true},
		{"gps", RefClock{Source: ClockGPS}, true},
		{"gal", RefClock{Source: ClockGalileo}, true},
		{"glonass", RefClock{Source: ClockGLONASS}, true},
		{"local", RefClock{Source: ClockLocal}, false},
		{"private", RefClock{Source: ClockPrivate}, false},
		{"private:traceable", RefClock{Source: ClockPrivate, Traceable: true}, true},
		{"localmac=7C-E9-D3-1B-9A-AF", RefClock{Source: ClockLocalMAC, Ext: "7C-E9-D3-1B-9A-AF"}, false},
		{"foo=bar", RefClock{Source: ClockOther, Ext: "foo=bar"}, false},
	} {
		got, err := ParseTSRefClk(tc.in)
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if got != tc.want {
			t.Errorf("%q: got %+v, want %+v", tc.in, got, tc.want)
		}
		if got.Locked() != tc.locked {
			t.Errorf("%q: Locked() = %v", tc.in, got.Locked())
		}
	}
	for _, in := range []string{"", "ntp", "ntp=", "ntp=bad host", "ntp=host:0", "ptp", "ptp=IEEE1588-2008:zz",
		"ptp=IEEE1588-2008:39-A7-94-FF-FE-07-CB-D0:999", "ptp=IEEE1588-2008:traceable:1", "gps=1",
		"localmac=1-2-3", "what", "private=1", "ptp=IEEE1588-2008:39-A7-94-FF-FE-07-CB-D0:domain-name="} {
		_, err := ParseTSRefClk(in)
		if err == nil {
			t.Errorf("%q: no error", in)
			continue
		}
		if !strings.Contains(err.Error(), "ts-refclk") {
			t.Errorf("%q: error %q does not name the attribute", in, err)
		}
	}
}

func TestParseMediaClk(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want MediaClock
	}{
		{"direct", MediaClock{Kind: MediaClockDirect}},
		{"direct=963214424", MediaClock{Kind: MediaClockDirect, Offset: 963214424}},
		{"direct=0 rate=1000/1001", MediaClock{Kind: MediaClockDirect, RateNum: 1000, RateDen: 1001}},
		{"id=MDA6NjA6MmI6MjA6MTI6MWY= direct=0", MediaClock{Kind: MediaClockDirect, ID: "MDA6NjA6MmI6MjA6MTI6MWY="}},
		{"sender", MediaClock{Kind: MediaClockSender}},
		{"IEEE1722=38-D6-6D-8E-D2-78-13-2F", MediaClock{Kind: MediaClockStream, StreamID: "38-D6-6D-8E-D2-78-13-2F"}},
		{"future=1", MediaClock{Kind: MediaClockOther}},
	} {
		got, err := ParseMediaClk(tc.in)
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if got != tc.want {
			t.Errorf("%q: got %+v, want %+v", tc.in, got, tc.want)
		}
	}
	for _, in := range []string{"", "id=", "id=x", "direct=x", "direct=1 rate=0/1", "direct=1 rate=1", "direct foo",
		"sender=1", "IEEE1722=12", "sender extra", "direct=1 rate=1/1 extra", "(bad"} {
		if _, err := ParseMediaClk(in); err == nil {
			t.Errorf("%q: no error", in)
		}
	}
}

func TestParseRefClockLevels(t *testing.T) {
	session := []sdp.Attribute{{Key: "ts-refclk", Value: "ntp=/traceable/"}, {Key: "mediaclk", Value: "sender"}}
	media := []sdp.Attribute{{Key: "ts-refclk", Value: "bogus"}, {Key: "ts-refclk", Value: "ptp=IEEE1588-2008:traceable"},
		{Key: "ts-refclk", Value: "gps"}}
	rc, err := ParseRefClock(session, media)
	if err == nil || !strings.Contains(err.Error(), "bogus") {
		t.Errorf("error %v does not name the bad attribute", err)
	}
	if rc.Source != ClockPTP || rc.MediaClock.Kind != MediaClockSender {
		t.Errorf("got %+v: want media-level PTP (first valid) and session-level mediaclk", rc)
	}
	rc, err = ParseRefClock(session, nil)
	if err != nil || rc.Source != ClockNTP || !rc.Traceable {
		t.Errorf("session level only: %+v, %v", rc, err)
	}
	if rc, err := ParseRefClock(nil, nil); err != nil || rc != (RefClock{}) || rc.Locked() {
		t.Errorf("no attributes: %+v, %v", rc, err)
	}
}

func TestRefClocksFromSDP(t *testing.T) {
	body := "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=cam\r\nt=0 0\r\na=ts-refclk:local\r\n" +
		"m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=ts-refclk:ntp=pool.ntp.org\r\na=mediaclk:direct=0\r\n" +
		"m=audio 0 RTP/AVP 97\r\na=rtpmap:97 opus/48000/2\r\n"
	rcs, err := RefClocksFromSDP([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if len(rcs) != 2 || rcs[0].Source != ClockNTP || rcs[0].MediaClock.Kind != MediaClockDirect || rcs[1].Source != ClockLocal {
		t.Fatalf("got %+v", rcs)
	}
	if _, err := RefClocksFromSDP([]byte("not sdp")); err == nil || !strings.Contains(err.Error(), "SDP") {
		t.Fatalf("invalid SDP: error %v", err)
	}
}
