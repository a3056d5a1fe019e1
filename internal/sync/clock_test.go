package sync

import (
	"bytes"
	"testing"
	"time"
)

func TestCaptureQualityRoundTrip(t *testing.T) {
	for _, q := range []CaptureQuality{
		{Trust: TrustRefClock, Err: 1200 * time.Microsecond},
		{Trust: TrustArrival, Err: 12 * time.Millisecond},
		{Trust: TrustUnaligned, Err: -1},
		{Trust: TrustSenderReports, Err: time.Hour},
	} {
		b := make([]byte, CaptureQualitySize)
		if _, err := q.MarshalTo(b); err != nil {
			t.Fatal(err)
		}
		got, err := UnmarshalCaptureQuality(b)
		if err != nil {
			t.Fatal(err)
		}
		want := q
		if q.Err > 6*time.Second {
			want.Err = -1
		}
		if got != want {
			t.Errorf("%+v came back as %+v", q, got)
		}
	}
	if _, err := UnmarshalCaptureQuality([]byte{9, 0, 0}); err == nil {
		t.Error("unknown trust accepted")
	}
}

func FuzzUnmarshalCaptureQuality(f *testing.F) {
	f.Add([]byte{2, 0, 12})
	f.Add([]byte{0, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		q, err := UnmarshalCaptureQuality(b)
		if err != nil {
			return
		}
		out := make([]byte, CaptureQualitySize)
		if _, err := q.MarshalTo(out); err != nil || !bytes.Equal(out, b) && !(q.Err < 0) {
			t.Fatalf("%x → %+v → %x", b, q, out)
		}
	})
}
