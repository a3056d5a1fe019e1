package testkit

import (
	"context"
	"testing"
	"time"
)

func TestLiveStream(t *testing.T) {
	st := LiveStream(t, context.Background(), "x", true)
	WaitKeyframes(t, st, 1, 10*time.Second)
	WaitFor(t, 5*time.Second, "audio", func() bool { return st.Stats().Units > 100 })
}
