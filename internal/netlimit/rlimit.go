//go:build unix

package netlimit

import (
	"fmt"
	"syscall"
)

// RaiseFileLimit raises the soft limit on open files (RLIMIT_NOFILE) to the
// hard limit, and returns both as they are afterwards. Every connection and
// file costs a descriptor; the soft limit is often 1024 while the hard one
// is far higher. The Go runtime already does this at start-up on Linux;
// calling it again reports the limits, and covers a process whose limit
// was lowered since.
func RaiseFileLimit() (soft, hard uint64, err error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, 0, fmt.Errorf("read the open-file limit (RLIMIT_NOFILE): %w", err)
	}
	if lim.Cur >= lim.Max {
		return uint64(lim.Cur), uint64(lim.Max), nil
	}
	want := lim
	want.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
		return uint64(lim.Cur), uint64(lim.Max), fmt.Errorf("raise the open-file limit from %d to the hard limit %d: %w; "+
			"raise it before start (ulimit -n, or LimitNOFILE= in the systemd unit)", lim.Cur, lim.Max, err)
	}
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return uint64(want.Cur), uint64(want.Max), nil
	}
	return uint64(lim.Cur), uint64(lim.Max), nil
}

// FileLimit returns the soft and hard limits on open files.
func FileLimit() (soft, hard uint64, err error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, 0, fmt.Errorf("read the open-file limit (RLIMIT_NOFILE): %w", err)
	}
	return uint64(lim.Cur), uint64(lim.Max), nil
}
