//go:build !unix

package netlimit

import "errors"

// RaiseFileLimit is not available on this system.
func RaiseFileLimit() (soft, hard uint64, err error) {
	return 0, 0, errors.New("the open-file limit cannot be read or raised on this system")
}

// FileLimit is not available on this system.
func FileLimit() (soft, hard uint64, err error) {
	return 0, 0, errors.New("the open-file limit cannot be read on this system")
}
