package testkit

import (
	"os"
	"path/filepath"
	"strings"
)

// Segments lists the recorded segment files of source under a filesystem
// store's directory, in path order (which is capture-time order).
func Segments(dir, source string) []string {
	var out []string
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".mp4") && strings.Contains(p, "/"+source+"/") {
			out = append(out, p)
		}
		return nil
	})
	return out
}
