package playback

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"fieldvideo/internal/recorder"
	"fieldvideo/internal/store"
	"fieldvideo/internal/testkit"
)

// memStore keeps objects in memory, for benchmarks of what playback does
// with a listing and the bytes it reads (not of a store's network).
type memStore struct {
	name string
	mu   sync.Mutex
	objs map[string][]byte
	keys []string
}

func newMem(name string) *memStore { return &memStore{name: name, objs: map[string][]byte{}} }

func (m *memStore) Name() string { return m.name }

func (m *memStore) Put(_ context.Context, key string, r io.Reader, _ int64, _ string) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.objs[key]; !ok {
		i := sort.SearchStrings(m.keys, key)
		m.keys = append(m.keys, "")
		copy(m.keys[i+1:], m.keys[i:])
		m.keys[i] = key
	}
	m.objs[key] = b
	return nil
}

func (m *memStore) Get(_ context.Context, key string) (io.ReadCloser, store.Info, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.objs[key]
	if !ok {
		return nil, store.Info{}, store.ErrNotFound
	}
	return io.NopCloser(bytes.NewReader(b)), store.Info{Key: key, Size: int64(len(b))}, nil
}

func (m *memStore) Stat(_ context.Context, key string) (store.Info, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.objs[key]
	if !ok {
		return store.Info{}, store.ErrNotFound
	}
	return store.Info{Key: key, Size: int64(len(b))}, nil
}

func (m *memStore) List(_ context.Context, prefix string, fn func(store.Info) error) error {
	m.mu.Lock()
	keys := m.keys[sort.SearchStrings(m.keys, prefix):]
	m.mu.Unlock()
	for _, k := range keys {
		if !strings.HasPrefix(k, prefix) {
			break
		}
		if err := fn(store.Info{Key: k}); err != nil {
			return err
		}
	}
	return nil
}

func (m *memStore) Delete(context.Context, string) error { return nil }

// BenchmarkCoverageDay: a day of eight cameras (4 s segments with their
// manifests: 345,600 keys) listed once, then the coverage of all eight
// over the day, as the review page asks for it.
func BenchmarkCoverageDay(b *testing.B) {
	m := newMem("primary")
	day := time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)
	for c := range 8 {
		src := fmt.Sprintf("cam%d", c+1)
		for i := range 21600 {
			if i%1000 == 999 {
				continue // a gap now and then
			}
			key := recorder.SegmentKey("inc-1", src, day.Add(time.Duration(i)*4*time.Second), 4*time.Second, "0123abcd", uint64(i+1))
			m.keys = append(m.keys, key, recorder.ManifestKey(key))
		}
	}
	sort.Strings(m.keys)
	pb, err := New(Params{Sites: []store.Store{m}, FullRefresh: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	srcs := []string{"cam1", "cam2", "cam3", "cam4", "cam5", "cam6", "cam7", "cam8"}
	began := time.Now()
	if _, _, err := pb.Coverage(context.Background(), "inc-1", srcs, day, day.Add(24*time.Hour)); err != nil {
		b.Fatal(err)
	}
	b.Logf("first answer, listing %d keys: %s", len(m.keys), time.Since(began).Round(time.Millisecond))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		cov, _, err := pb.Coverage(context.Background(), "inc-1", srcs, day, day.Add(24*time.Hour))
		if err != nil || len(cov) != 8 || len(cov[0].Gaps) < 20 {
			b.Fatalf("%v %d", err, len(cov))
		}
	}
}

// BenchmarkStream: stitching recorded H.264 and Opus into one stream;
// reports the server CPU a second of played media costs.
func BenchmarkStream(b *testing.B) {
	prim, off := newMem("primary"), newMem("offsite")
	st := testkit.LiveStream(b, context.Background(), "cam1", true)
	testkit.WaitKeyframes(b, st, 1, 20*time.Second)
	s := startSession(b, prim, off)
	stop, err := s.r.Record("cam1", st)
	if err != nil {
		b.Fatal(err)
	}
	testkit.WaitFor(b, 40*time.Second, "five segments", func() bool { return s.r.Stats().Stores[1].Uploaded >= 5 })
	stop()
	s.stop(b)
	segs := segsOf(b, off, "cam1")
	from, to := segs[0].start.Add(500*time.Millisecond), segs[len(segs)-1].end
	pb, err := New(Params{Sites: []store.Store{prim, off}})
	if err != nil {
		b.Fatal(err)
	}
	var bytesOut int64
	cpu0 := cpuTime()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		var w countWriter
		w.w = io.Discard
		if _, err := pb.Stream(context.Background(), &w, StreamRequest{Incident: incident, Sources: []string{"cam1"}, Start: from, End: to}, func(StreamInfo) {}); err != nil {
			b.Fatal(err)
		}
		bytesOut = w.n
	}
	b.StopTimer()
	media := to.Sub(from).Seconds() * float64(b.N)
	b.ReportMetric((cpuTime()-cpu0).Seconds()*1000/media, "cpu-ms/media-s")
	b.ReportMetric(float64(bytesOut), "bytes/stream")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
