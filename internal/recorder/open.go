package recorder

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"fieldvideo/internal/conf"
	"fieldvideo/internal/store"
)

// openTimeout bounds the check of both stores at start: live video and
// recording to the spool must not wait for a site that does not answer.
const openTimeout = 5 * time.Second

// Open returns the recorder c describes, with its stores opened and
// checked, or nil when recording is off. A store that answers and refuses
// (wrong keys, a missing bucket, a directory that cannot be written) is a
// configuration error; one that cannot be reached is reported as down and
// retried, and recording goes to the spool meanwhile.
func Open(ctx context.Context, c conf.Record, log *slog.Logger) (*Recorder, error) {
	if !c.Enabled {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, openTimeout)
	defer cancel()
	var stores [2]store.Store
	var errs [2]error
	var wg sync.WaitGroup
	for i, sc := range []conf.StoreConf{c.Primary, c.Offsite} {
		wg.Go(func() { stores[i], errs[i] = store.Open(ctx, storeRoles[i], sc) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil && !errors.Is(err, store.ErrUnreachable) {
			return nil, fmt.Errorf("record.%s: %w", storeRoles[i], err)
		}
	}
	r, err := New(Params{
		SpoolDir: c.SpoolDir, MaxSpoolBytes: c.MaxSpoolBytes, Incident: c.Incident,
		SegmentDuration: c.SegmentDuration, PartDuration: c.PartDuration,
		Primary: stores[primary], Offsite: stores[offsite], Log: log,
	})
	if err != nil {
		return nil, err
	}
	for i, err := range errs {
		if err != nil {
			r.log.Warn("a recording site cannot be reached at start; recording goes to the spool and is uploaded when it answers",
				"role", storeRoles[i], "error", err)
			r.ups[i].fail(err)
		}
	}
	return r, nil
}
