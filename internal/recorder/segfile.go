package recorder

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"fieldvideo/internal/store"
)

// segFile is a segment file being written in the spool. Parts are appended
// and fsynced one at a time, so after a crash the file holds every part that
// was complete, and at most a torn tail that recovery cuts off.
type segFile struct {
	f    *os.File
	path string
	size int64 // bytes durably written (through the last fsync)
	h    hash.Hash
	torn bool // a write failed: the file must be cut back to size
}

// createSegFile creates a new segment file and makes its directory entry
// durable.
func createSegFile(path string) (*segFile, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return nil, err
	}
	if err := store.SyncDir(filepath.Dir(path)); err != nil {
		f.Close()
		return nil, err
	}
	return &segFile{f: f, path: path, h: sha256.New()}, nil
}

// append writes b and fsyncs the file.
func (s *segFile) append(b []byte) error {
	if s.torn {
		return fmt.Errorf("segment file %s: an earlier write failed", s.path)
	}
	n, err := s.f.Write(b)
	if err == nil {
		err = s.f.Sync()
	}
	if err != nil {
		s.torn = n > 0
		return fmt.Errorf("write segment %s: %w; check the spool disk", s.path, err)
	}
	s.h.Write(b)
	s.size += int64(n)
	return nil
}

// finish closes the file and returns its size and SHA-256. After a failed
// write the torn tail is cut off and the hash computed from the file.
func (s *segFile) finish() (int64, string, error) {
	if s.torn {
		if err := s.f.Truncate(s.size); err != nil {
			s.f.Close()
			return 0, "", err
		}
		if err := s.f.Sync(); err != nil {
			s.f.Close()
			return 0, "", err
		}
	}
	if err := s.f.Close(); err != nil {
		return 0, "", err
	}
	if s.torn {
		size, sum, err := store.HashFile(s.path)
		return size, sum, err
	}
	return s.size, hex.EncodeToString(s.h.Sum(nil)), nil
}

// abandon closes the file without finishing it.
func (s *segFile) abandon() { s.f.Close() }

// Spool file names: seg/<source>/<id>-<start-unix-ns>-<a|u>.mp4, with the
// manifest as .json beside it. The name alone says what the file is, so a
// segment whose journal records were lost can still be adopted.

func spoolFileName(source string, id uint64, startNS int64, aligned bool) string {
	a := "u"
	if aligned {
		a = "a"
	}
	return filepath.ToSlash(filepath.Join("seg", source, fmt.Sprintf("%d-%d-%s.mp4", id, startNS, a)))
}

// parseSpoolFileName reads a segment file name made by spoolFileName.
func parseSpoolFileName(rel string) (source string, id uint64, startNS int64, aligned bool, ok bool) {
	parts := strings.Split(filepath.ToSlash(rel), "/")
	if len(parts) != 3 || parts[0] != "seg" || !strings.HasSuffix(parts[2], ".mp4") {
		return "", 0, 0, false, false
	}
	f := strings.Split(strings.TrimSuffix(parts[2], ".mp4"), "-")
	if len(f) != 3 || (f[2] != "a" && f[2] != "u") {
		return "", 0, 0, false, false
	}
	id, err1 := strconv.ParseUint(f[0], 10, 64)
	startNS, err2 := strconv.ParseInt(f[1], 10, 64)
	if err1 != nil || err2 != nil || id == 0 {
		return "", 0, 0, false, false
	}
	return parts[1], id, startNS, f[2] == "a", true
}

func manifestFileName(rel string) string { return strings.TrimSuffix(rel, ".mp4") + ".json" }

func sha256Hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}
