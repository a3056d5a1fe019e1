package recorder

import (
	"context"
	"fmt"
	"log/slog"

	"fieldvideo/internal/conf"
	"fieldvideo/internal/store"
)

// Open returns the recorder c describes, with its stores opened and
// checked, or nil when recording is off.
func Open(ctx context.Context, c conf.Record, log *slog.Logger) (*Recorder, error) {
	if !c.Enabled {
		return nil, nil
	}
	primary, err := store.Open(ctx, "primary", c.Primary)
	if err != nil {
		return nil, fmt.Errorf("record.primary: %w", err)
	}
	offsite, err := store.Open(ctx, "offsite", c.Offsite)
	if err != nil {
		return nil, fmt.Errorf("record.offsite: %w", err)
	}
	return New(Params{
		SpoolDir: c.SpoolDir, MaxSpoolBytes: c.MaxSpoolBytes, Incident: c.Incident,
		SegmentDuration: c.SegmentDuration, PartDuration: c.PartDuration,
		Primary: primary, Offsite: offsite, Log: log,
	})
}
