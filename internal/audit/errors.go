package audit

import (
	"errors"
	"fmt"
	"syscall"
)

// Error says that the audit log cannot be written, why, and what to do.
// Errors.Is sees the cause (e.g. syscall.ENOSPC).
type Error struct {
	File string // the audit file
	Op   string // what failed: "written", "opened", "reopened", "read", "checked"
	Err  error
}

func (e *Error) Error() string {
	file := e.File
	if file == "-" {
		file = "on standard error"
	}
	return fmt.Sprintf("audit log %s cannot be %s (%s); access is refused until it can: %s", file, e.Op, cause(e.Err), remedy(e.Err))
}

func (e *Error) Unwrap() error { return e.Err }

// cause is the short reason of err: the system error text when there is one.
func cause(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	if err == nil {
		return "unknown error"
	}
	return err.Error()
}

// remedy says what an operator can do about err.
func remedy(err error) string {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return "check the disk, and the permissions of the file and its directory"
	}
	switch errno {
	case syscall.ENOSPC:
		return "free space on its disk"
	case syscall.EDQUOT:
		return "free space, or raise the disk quota of the server's user"
	case syscall.EROFS:
		return "remount its file system read-write, or point audit.file at a writable disk"
	case syscall.EACCES, syscall.EPERM:
		return "give the server's user write access to the file and its directory"
	case syscall.EIO:
		return "check the disk (I/O error), or point audit.file at a healthy disk"
	case syscall.ENOENT, syscall.ENOTDIR:
		return "recreate its directory"
	case syscall.EMFILE, syscall.ENFILE:
		return "raise the open-file limit of the server"
	default:
		return "check the disk, and the permissions of the file and its directory"
	}
}
