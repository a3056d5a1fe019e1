package sync

import (
	"bytes"
	"testing"
	"time"

	"github.com/pion/rtp"
)

func TestAbsCaptureTimeRoundTrip(t *testing.T) {
	capture := time.Date(2025, 6, 1, 12, 0, 0, 123456789, time.UTC)
	for _, tc := range []struct {
		name string
		act  AbsCaptureTime
		size int
	}{
		{"timestamp only", AbsCaptureTime{Timestamp: UnixNanoToNTP(capture.UnixNano())}, 8},
		{"with offset", AbsCaptureTime{Timestamp: UnixNanoToNTP(capture.UnixNano()),
			Offset: DurationToQ32(-1500 * time.Millisecond), HasOffset: true}, 16},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := MarshalAbsCaptureTime(tc.act)
			if len(b) != tc.size {
				t.Fatalf("marshalled %d bytes, want %d", len(b), tc.size)
			}
			got, err := UnmarshalAbsCaptureTime(b)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.act {
				t.Fatalf("round trip gave %+v, want %+v", got, tc.act)
			}
			if !got.Time(capture).Equal(capture) {
				t.Fatalf("Time() = %v, want %v", got.Time(capture), capture)
			}
			// pion's decoder must agree on the wire format.
			var p rtp.AbsCaptureTimeExtension
			if err := p.Unmarshal(b); err != nil {
				t.Fatal(err)
			}
			if p.Timestamp != tc.act.Timestamp || (p.EstimatedCaptureClockOffset != nil) != tc.act.HasOffset {
				t.Fatalf("pion decoded %+v from %x", p, b)
			}
			if tc.act.HasOffset {
				if *p.EstimatedCaptureClockOffset != tc.act.Offset {
					t.Fatalf("pion offset %d, want %d", *p.EstimatedCaptureClockOffset, tc.act.Offset)
				}
				want := capture.Add(-1500 * time.Millisecond)
				if d := got.SenderTime(capture).Sub(want); d.Abs() > time.Nanosecond {
					t.Fatalf("SenderTime off by %v", d)
				}
			}
		})
	}
}

func TestAbsCaptureTimeErrors(t *testing.T) {
	for _, n := range []int{0, 7, 9, 15, 17} {
		if _, err := UnmarshalAbsCaptureTime(make([]byte, n)); err == nil {
			t.Errorf("%d bytes: no error", n)
		}
	}
	if _, err := (AbsCaptureTime{HasOffset: true}).MarshalTo(make([]byte, 8)); err == nil {
		t.Error("MarshalTo into a short buffer: no error")
	}
}

func TestUnmarshalDoesNotModifyInput(t *testing.T) {
	b := []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	c := bytes.Clone(b)
	if _, err := UnmarshalAbsCaptureTime(b); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, c) {
		t.Fatal("input modified")
	}
}

func TestNTPConversion(t *testing.T) {
	for _, tm := range []time.Time{
		time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2025, 6, 1, 12, 0, 0, 999999999, time.UTC),
		time.Date(2036, 2, 7, 6, 28, 15, 0, time.UTC), // NTP era 0 ends
		time.Date(2036, 2, 7, 6, 28, 17, 500000000, time.UTC),
		time.Date(2100, 1, 1, 0, 0, 0, 1, time.UTC),
	} {
		ntp := UnixNanoToNTP(tm.UnixNano())
		if got := NTPToUnixNano(ntp, tm.UnixNano()+int64(time.Hour)); got != tm.UnixNano() {
			t.Errorf("%v: round trip gave %v", tm, time.Unix(0, got).UTC())
		}
	}
	// A known value: 2025-06-01T12:00:00Z is 3957768000 s after 1900.
	if got := UnixNanoToNTP(time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC).UnixNano()); got>>32 != 3957768000 {
		t.Errorf("NTP seconds %d, want 3957768000", got>>32)
	}
	for _, d := range []time.Duration{0, time.Millisecond, -time.Millisecond, 90 * time.Second, -3 * time.Hour} {
		if got := q32ToDuration(DurationToQ32(d)); (got - d).Abs() > time.Nanosecond {
			t.Errorf("Q32.32 round trip of %v gave %v", d, got)
		}
	}
}
