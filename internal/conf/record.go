package conf

import (
	"fmt"
	"net"
	"path/filepath"
	"time"
)

// Record configures recording to two stores through a local spool.
type Record struct {
	Enabled bool `yaml:"enabled"`
	// Incident names the recordings' top folder in the stores.
	Incident string `yaml:"incident"`
	// SpoolDir holds segments until both sites confirm them; one process
	// per directory.
	SpoolDir      string `yaml:"spool_dir"`
	MaxSpoolBytes int64  `yaml:"max_spool_bytes"`
	// SegmentDuration is the target segment length (cut at the next
	// keyframe); PartDuration how much is gathered before it is fsynced —
	// at most that much is lost if the process dies.
	SegmentDuration time.Duration `yaml:"segment_duration"`
	PartDuration    time.Duration `yaml:"part_duration"`
	Primary         StoreConf     `yaml:"primary"`
	Offsite         StoreConf     `yaml:"offsite"`
	// RetentionInterval is how often a retention pass runs at each site
	// whose retention is set (and once at start).
	RetentionInterval time.Duration `yaml:"retention_interval"`
	// StopGrace is how long a graceful stop (SIGINT, SIGTERM) waits for the
	// segments being written to be closed and uploaded to both sites; what
	// is left stays in the spool and is uploaded at the next start.
	StopGrace time.Duration `yaml:"stop_grace"`
	// ExportSigningKeyFile holds the ed25519 key that signs evidence
	// exports (created on first use; its public key is beside it, .pub).
	ExportSigningKeyFile string `yaml:"export_signing_key_file"`
	// PlaybackMaxRange bounds the time range of one playback answer.
	PlaybackMaxRange time.Duration `yaml:"playback_max_range"`
}

// StoreConf names a store: a directory, or an S3 bucket.
type StoreConf struct {
	Type string `yaml:"type"` // fs or s3
	Path string `yaml:"path"` // fs: the directory
	S3   S3     `yaml:"s3"`
	// Retention is how long recordings are kept at this site, counted from
	// their capture end; 0 keeps them forever. Evidence holds override it,
	// and a site deletes a recording only when the other site holds a
	// verified copy or its retention has passed there too.
	Retention time.Duration `yaml:"retention"`
}

// MinRetention is the shortest retention a site accepts (0 aside): a slip
// such as 30s for 30d must not wipe a site.
const MinRetention = 10 * time.Minute

// S3 is an S3-compatible endpoint and bucket.
type S3 struct {
	Endpoint           string `yaml:"endpoint"` // host:port
	Bucket             string `yaml:"bucket"`
	Region             string `yaml:"region"`
	AccessKey          string `yaml:"access_key"`
	SecretKey          string `yaml:"secret_key"`
	TLS                bool   `yaml:"tls"`
	CAFile             string `yaml:"ca_file"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
	Prefix             string `yaml:"prefix"`
}

func defaultRecord(spool string) Record {
	return Record{
		Enabled: true, Incident: "incident", SpoolDir: spool, MaxSpoolBytes: 8 << 30,
		SegmentDuration: 4 * time.Second, PartDuration: time.Second,
		Primary:              StoreConf{Type: "fs", Path: "data/recordings/primary"},
		Offsite:              StoreConf{Type: "fs", Path: "data/recordings/offsite"},
		RetentionInterval:    10 * time.Minute,
		StopGrace:            15 * time.Second,
		ExportSigningKeyFile: "data/export.key",
		PlaybackMaxRange:     24 * time.Hour,
	}
}

func (r Record) validate() error {
	if !r.Enabled {
		return nil
	}
	if !SourceName.MatchString(r.Incident) {
		return fmt.Errorf("record.incident %q: use 1-64 letters, digits, '.', '_' or '-'", r.Incident)
	}
	if r.SpoolDir == "" {
		return fmt.Errorf("record.spool_dir is empty")
	}
	if r.MaxSpoolBytes < 64<<20 {
		return fmt.Errorf("record.max_spool_bytes %d is too small; give the spool at least 64 MiB (it rides out storage outages)", r.MaxSpoolBytes)
	}
	if r.SegmentDuration < time.Second || r.PartDuration <= 0 || r.PartDuration > r.SegmentDuration {
		return fmt.Errorf("record: need segment_duration >= 1s and 0 < part_duration <= segment_duration (have %s and %s)", r.SegmentDuration, r.PartDuration)
	}
	for _, s := range []struct {
		key string
		c   StoreConf
	}{{"record.primary", r.Primary}, {"record.offsite", r.Offsite}} {
		if err := s.c.validate(s.key); err != nil {
			return err
		}
	}
	if r.StopGrace < 0 || r.StopGrace > 10*time.Minute {
		return fmt.Errorf("record.stop_grace %s: use between 0 and 10m (15s is usual)", r.StopGrace)
	}
	if r.ExportSigningKeyFile == "" {
		return fmt.Errorf("record.export_signing_key_file is empty: exports must be signed; use a path such as data/export.key (created on first use)")
	}
	if r.PlaybackMaxRange < time.Minute || r.PlaybackMaxRange > 31*24*time.Hour {
		return fmt.Errorf("record.playback_max_range %s: use between 1m and 744h (24h is usual)", r.PlaybackMaxRange)
	}
	if r.RetentionInterval < time.Minute || r.RetentionInterval > 24*time.Hour {
		return fmt.Errorf("record.retention_interval %s: use between 1m and 24h (10m is usual)", r.RetentionInterval)
	}
	if r.Primary.Type == "fs" && r.Offsite.Type == "fs" && filepath.Clean(r.Primary.Path) == filepath.Clean(r.Offsite.Path) {
		return fmt.Errorf("record.primary and record.offsite are the same directory; the off-site copy must be elsewhere")
	}
	return nil
}

func (c StoreConf) validate(key string) error {
	switch {
	case c.Retention < 0:
		return fmt.Errorf("%s.retention %s is negative; use 0 to keep recordings forever, or a duration such as 720h (30 days)", key, c.Retention)
	case c.Retention > 0 && c.Retention < MinRetention:
		return fmt.Errorf("%s.retention %s is shorter than the 10m minimum, so that a slip cannot wipe a site; use 0 to keep recordings forever, or a duration such as 720h (30 days)", key, c.Retention)
	}
	switch c.Type {
	case "fs":
		if c.Path == "" {
			return fmt.Errorf("%s.path is empty: name the directory for recordings", key)
		}
	case "s3":
		if _, _, err := net.SplitHostPort(c.S3.Endpoint); err != nil {
			return fmt.Errorf("%s.s3.endpoint %q: use host:port", key, c.S3.Endpoint)
		}
		if c.S3.Bucket == "" {
			return fmt.Errorf("%s.s3.bucket is empty", key)
		}
		if c.S3.AccessKey == "" || c.S3.SecretKey == "" {
			return fmt.Errorf("%s.s3: set access_key and secret_key", key)
		}
	default:
		return fmt.Errorf("%s.type %q: use fs or s3", key, c.Type)
	}
	return nil
}
