package retention

import (
	"strings"
	"testing"
	"time"

	"fieldvideo/internal/conf"
)

func TestConfRetention(t *testing.T) {
	for _, c := range []struct {
		name string
		mod  func(*conf.Record)
		want string // empty: valid
	}{
		{"defaults keep forever", func(*conf.Record) {}, ""},
		{"30 days and a year", func(r *conf.Record) { r.Primary.Retention, r.Offsite.Retention = 720*time.Hour, 8760*time.Hour }, ""},
		{"the minimum", func(r *conf.Record) { r.Offsite.Retention = 10 * time.Minute }, ""},
		{"negative", func(r *conf.Record) { r.Primary.Retention = -time.Hour }, "record.primary.retention -1h0m0s is negative"},
		{"a slip", func(r *conf.Record) { r.Offsite.Retention = 30 * time.Second }, "record.offsite.retention 30s is shorter than the 10m minimum"},
		{"interval too short", func(r *conf.Record) { r.RetentionInterval = time.Second }, "record.retention_interval"},
		{"no interval", func(r *conf.Record) { r.RetentionInterval = 0 }, "record.retention_interval"},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, cfg := range []interface{ Validate() error }{sfuWith(c.mod), ingestWith(c.mod)} {
				err := cfg.Validate()
				switch {
				case c.want == "" && err != nil:
					t.Fatalf("Validate: %v", err)
				case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
					t.Fatalf("Validate: %v, want an error mentioning %q", err, c.want)
				}
			}
		})
	}
	if d := conf.DefaultSFU().Record; d.RetentionInterval != 10*time.Minute || d.Primary.Retention != 0 || d.Offsite.Retention != 0 {
		t.Fatalf("defaults %v %v %v", d.RetentionInterval, d.Primary.Retention, d.Offsite.Retention)
	}
}

func sfuWith(mod func(*conf.Record)) conf.SFU {
	c := conf.DefaultSFU()
	mod(&c.Record)
	return c
}

func ingestWith(mod func(*conf.Record)) conf.Ingest {
	c := conf.DefaultIngest()
	mod(&c.Record)
	return c
}
