// Package console embeds the web console: static pages the SFU serves.
package console

import (
	"embed"
	"io/fs"
)

//go:embed static
var files embed.FS

// FS returns the console's files, rooted at the site's top.
func FS() fs.FS {
	sub, err := fs.Sub(files, "static")
	if err != nil {
		panic(err) // the embedded tree always has static/
	}
	return sub
}
