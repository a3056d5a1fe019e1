package recorder

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// The spool shares its disk with whatever else runs on the machine, so its
// limit is the lower of max_spool_bytes and what the filesystem has free:
//
//   - New recording pauses (the spool-full alarm) when less than
//     spoolHeadroom would stay free, so that the journal can still record
//     confirmations and evictions, which is how space comes back.
//   - A reserve file of reserveBytes is kept in the spool while the disk has
//     room. When a journal append still finds the disk full (something else
//     filled it), the reserve is given up and the append retried; it is made
//     again once space returns. A restart on a full disk gives it up first,
//     so that recovery can write.
//   - Unconfirmed segments are never deleted to make room.
const (
	spoolHeadroom = 2 << 20
	reserveBytes  = 1 << 20
	reserveName   = "reserve"
)

// freeBytes returns the bytes free for this process on the spool's
// filesystem, or -1 when it cannot tell.
func (s *spool) freeBytes() int64 {
	var st syscall.Statfs_t
	if err := syscall.Statfs(s.dir, &st); err != nil {
		return -1
	}
	return int64(st.Bavail) * int64(st.Bsize)
}

// limit is the spool's limit when it holds used bytes and its disk has
// free bytes (-1 unknown): max_spool_bytes, or less when the disk has less
// free (keeping the headroom). disk reports which one bounds it.
func (s *spool) limit(used, free int64) (limit int64, disk bool) {
	limit = s.max
	if free >= 0 {
		if byDisk := used + free - spoolHeadroom; byDisk < limit {
			return byDisk, true
		}
	}
	return limit, false
}

// reservePath is where the reserve file is.
func (s *spool) reservePath() string { return filepath.Join(s.dir, reserveName) }

// releaseReserve removes the reserve file to make room for the journal, and
// reports whether there was one.
func (s *spool) releaseReserve() bool {
	err := os.Remove(s.reservePath())
	if err != nil {
		return false
	}
	s.mu.Lock()
	s.reserveGone = s.now()
	s.mu.Unlock()
	s.log.Error("ALARM: the spool disk is full; its reserve was given up so that the journal can record confirmations",
		"dir", s.dir, "free_bytes", s.freeBytes())
	return true
}

// keepReserve makes the reserve file when it is missing and the disk has
// room for it beyond the headroom.
func (s *spool) keepReserve() {
	p := s.reservePath()
	if st, err := os.Stat(p); err == nil && st.Size() == reserveBytes {
		return
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return
	}
	if free := s.freeBytes(); free >= 0 && free < spoolHeadroom+2*reserveBytes {
		return
	}
	if err := makeReserve(p); err != nil {
		os.Remove(p)
		return
	}
	s.mu.Lock()
	gone := s.reserveGone
	s.reserveGone = time.Time{}
	s.mu.Unlock()
	if !gone.IsZero() {
		s.log.Warn("the spool disk has room again; its reserve is back", "dir", s.dir, "without_reserve_for", s.now().Sub(gone).Round(time.Second))
	}
}

// makeReserve writes a reserve file of reserveBytes, allocated on disk.
func makeReserve(p string) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	if err := syscall.Fallocate(int(f.Fd()), 0, 0, reserveBytes); err != nil {
		// Filesystems without fallocate get zeros.
		if _, err = f.Write(make([]byte, reserveBytes)); err != nil {
			f.Close()
			return err
		}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// roomAtOpen gives up the reserve when the disk is too full to recover the
// spool at start.
func (s *spool) roomAtOpen() {
	if free := s.freeBytes(); free >= 0 && free < spoolHeadroom {
		if err := os.Remove(s.reservePath()); err == nil {
			s.mu.Lock()
			s.reserveGone = s.now()
			s.mu.Unlock()
			s.log.Error("ALARM: the spool disk is full at start; its reserve was given up so that the spool can be recovered", "dir", s.dir, "free_bytes", free)
		}
	}
}

// isDiskFull reports whether err says that the disk is full.
func isDiskFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// fullMessage says why the spool is full and what to do.
func fullMessage(disk bool) string {
	if disk {
		return "the spool's disk is full: recording is paused until uploads confirm segments (which frees space) or space is freed on that disk"
	}
	return fmt.Sprintf("the spool reached max_spool_bytes with segments not yet confirmed at both sites: recording is paused until uploads free space (check the stores)")
}

// closeLater keeps a segment whose closing failed, to close it from its file
// at the next tend.
func (s *spool) closeLater(g *spoolSeg) {
	s.mu.Lock()
	s.unclosed = append(s.unclosed, g)
	s.mu.Unlock()
}

// tend runs about once a second: it closes the segments whose closing
// failed, and keeps the reserve file.
func (s *spool) tend() {
	s.mu.Lock()
	gs := s.unclosed
	s.unclosed = nil
	s.mu.Unlock()
	for i, g := range gs {
		if err := s.recoverSegment(g, false); err != nil {
			s.mu.Lock()
			s.unclosed = append(s.unclosed, gs[i:]...)
			s.mu.Unlock()
			break
		}
	}
	s.keepReserve()
}
