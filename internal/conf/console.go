package conf

import (
	"fmt"
	"net/url"
	"strings"
)

// Console configures what the SFU tells the web console's pages.
type Console struct {
	// MapTiles is the tile URL template of the map page, such as
	// https://tiles.example.org/{z}/{x}/{y}.png or /tiles/{z}/{x}/{y}.png
	// (this server's host, behind a reverse proxy). Empty draws a plain
	// background with a latitude/longitude grid: the page then needs no
	// other host.
	MapTiles string `yaml:"map_tiles"`
	// MapAttribution is the credit the tile server asks for, shown as text
	// in the map's corner.
	MapAttribution string `yaml:"map_attribution"`
}

func defaultConsole() Console { return Console{} }

// tilePlaceholders are what a tile template may hold besides a plain URL.
var tilePlaceholders = []string{"{z}", "{x}", "{y}", "{r}"}

func (c Console) validate() error {
	if _, err := TileOrigin(c.MapTiles); err != nil {
		return err
	}
	if len(c.MapAttribution) > 300 || strings.ContainsAny(c.MapAttribution, "\r\n") {
		return fmt.Errorf("console.map_attribution: use one line of at most 300 characters")
	}
	return nil
}

// TileOrigin returns the origin (scheme://host[:port]) the map tiles of
// template come from: "" when template is empty or names this server (a
// path), else the origin the map page's Content-Security-Policy must allow.
func TileOrigin(template string) (string, error) {
	if template == "" {
		return "", nil
	}
	bad := func(why string) error {
		return fmt.Errorf("console.map_tiles %q: %s; use a template such as https://tiles.example.org/{z}/{x}/{y}.png, or empty for the plain grid", template, why)
	}
	if strings.ContainsAny(template, " \t\r\n;,'\"<>\\`") {
		return "", bad("it holds a space, quote, comma, semicolon, angle bracket or backslash")
	}
	for _, p := range tilePlaceholders[:3] {
		if !strings.Contains(template, p) {
			return "", bad("it lacks " + p)
		}
	}
	plain := template
	for _, p := range tilePlaceholders {
		plain = strings.ReplaceAll(plain, p, "0")
	}
	if strings.ContainsAny(plain, "{}") {
		return "", bad("only {z}, {x}, {y} and {r} may stand in braces (one host: no {s} subdomains)")
	}
	u, err := url.Parse(plain)
	if err != nil {
		return "", bad(err.Error())
	}
	if u.Scheme == "" && u.Host == "" {
		if !strings.HasPrefix(plain, "/") || strings.HasPrefix(plain, "//") {
			return "", bad("a template without a host must be a path on this server starting with /")
		}
		return "", nil
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
		return "", bad("use http:// or https:// with a host and no user name")
	}
	return u.Scheme + "://" + u.Host, nil
}
