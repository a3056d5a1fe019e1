package ingest

import (
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// secretWords mark the parameters of a camera URL that carry a secret: some cameras
// take their credentials in the query (rtsp://host/live?user=admin&password=...) or
// in the path (rtsp://host/user=admin&password=...&channel=1&stream=0.sdp).
var secretWords = []string{"pass", "pwd", "token", "secret", "key", "auth", "sig", "cred"}

func secretParam(name string) bool {
	name = strings.ToLower(name)
	for _, w := range secretWords {
		if strings.Contains(name, w) {
			return true
		}
	}
	return false
}

// RedactURL returns a camera URL with its password, and the values of the
// parameters that carry secrets (password=, token=, ...) in its query or its
// path, replaced by RedactMark:
// rtsp://user:***@host/user=admin&password=***&channel=1?token=***. A URL
// that cannot be parsed is hidden whole.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(the URL cannot be parsed and is hidden)"
	}
	u.RawQuery = redactQuery(u.RawQuery)
	setEscapedPath(u, mapPathSecrets(u.EscapedPath(), markSecret))
	if u.User == nil {
		return u.String()
	}
	user := u.User.Username()
	_, has := u.User.Password()
	u.User = nil
	rest := strings.TrimPrefix(u.String(), u.Scheme+"://")
	cred := url.User(user).String()
	if has {
		cred += ":" + RedactMark
	}
	return u.Scheme + "://" + cred + "@" + rest
}

// redactForLog returns a camera URL without its password, as logs and the
// source list show it.
func redactForLog(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return redactURL(u)
}

func markSecret(string, string) string { return RedactMark }

// redactQuery returns the raw query q with the value of every secret parameter
// replaced by RedactMark, the rest as written.
func redactQuery(q string) string {
	return mapSecrets(q, markSecret)
}

// setEscapedPath gives u the escaped path p, when it differs from u's.
func setEscapedPath(u *url.URL, p string) {
	if p == u.EscapedPath() {
		return
	}
	dec, err := url.PathUnescape(p)
	if err != nil {
		return
	}
	u.Path, u.RawPath = dec, p
}

// secretWalk is mapSecrets or mapPathSecrets: it calls f with the name and raw
// value of each secret of a raw query or an escaped path and puts the raw
// value f returns in its place.
type secretWalk func(s string, f func(name, raw string) string) string

// restoreSecrets returns s, a raw query or an escaped path that walk reads,
// with every secret whose value is RedactMark given the value of the same
// secret in old: the n-th secret of a name takes the n-th of that name in
// old, else the first. It returns how many non-empty values it restored,
// and the name of the first one old has no value for ("" when there is none).
func restoreSecrets(walk secretWalk, s, old string) (out, missing string, restored int) {
	stored := map[string][]string{}
	walk(old, func(name, raw string) string {
		stored[name] = append(stored[name], raw)
		return raw
	})
	seen := map[string]int{}
	out = walk(s, func(name, raw string) string {
		n := seen[name]
		seen[name]++
		if v, err := url.PathUnescape(raw); err != nil || v != RedactMark {
			return raw
		}
		vals := stored[name]
		if len(vals) > 0 {
			v := vals[0]
			if n < len(vals) {
				v = vals[n]
			}
			if v != "" {
				restored++
			}
			return v
		}
		if missing == "" {
			missing = name
		}
		return raw
	})
	return out, missing, restored
}

// mapSecrets calls f with the name and raw value of each secret parameter of the raw
// query q, in order, and puts the raw value f returns in its place.
func mapSecrets(q string, f func(name, raw string) string) string {
	if q == "" {
		return q
	}
	parts := strings.Split(q, "&")
	for i, p := range parts {
		k, v, has := strings.Cut(p, "=")
		name, err := url.QueryUnescape(k)
		if err != nil {
			name = k
		}
		if !has || !secretParam(name) {
			continue
		}
		parts[i] = k + "=" + f(name, v)
	}
	return strings.Join(parts, "&")
}

// mapPathSecrets calls f with the name and raw value of each secret key=value
// pair in the segments of the escaped path p, in order, and puts the raw value
// f returns in its place. The pairs of a segment are separated by & or ;, or
// by _ before the next key, as cameras write them:
// /user=admin&password=pw&channel=1&stream=0.sdp or
// /user=admin_password=pw_channel=1_stream=0.sdp.
func mapPathSecrets(p string, f func(name, raw string) string) string {
	if !strings.Contains(p, "=") {
		return p
	}
	segs := strings.Split(p, "/")
	for i, seg := range segs {
		if strings.Contains(seg, "=") {
			segs[i] = mapPairs(seg, f)
		}
	}
	return strings.Join(segs, "/")
}

// mapPairs is mapPathSecrets for one path segment.
func mapPairs(seg string, f func(name, raw string) string) string {
	var b strings.Builder
	for start := 0; ; {
		end := pairEnd(seg, start)
		pair := seg[start:end]
		k, v, has := strings.Cut(pair, "=")
		name, err := url.PathUnescape(k)
		if err != nil {
			name = k
		}
		if has && secretParam(name) {
			pair = k + "=" + f(name, v)
		}
		b.WriteString(pair)
		if end == len(seg) {
			return b.String()
		}
		b.WriteByte(seg[end])
		start = end + 1
	}
}

// pairEnd returns the index of the separator that ends the pair of seg
// starting at i, or len(seg).
func pairEnd(seg string, i int) int {
	for j := i; j < len(seg); j++ {
		switch seg[j] {
		case '&', ';':
			return j
		case '_':
			if keyFollows(seg[j+1:]) {
				return j
			}
		}
	}
	return len(seg)
}

// keyFollows reports whether s starts with a key and "=": a letter, then
// letters and digits.
func keyFollows(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '=':
			return i > 0
		case 'a' <= c|0x20 && c|0x20 <= 'z':
		case i > 0 && '0' <= c && c <= '9':
		default:
			return false
		}
	}
	return false
}

// destination returns where a camera URL connects: its scheme, host and
// port (the scheme's default port when it gives none), in one spelling.
func destination(u *url.URL) string {
	host := strings.ToLower(u.Hostname())
	if a, err := netip.ParseAddr(host); err == nil {
		host = a.Unmap().String()
	}
	port := u.Port()
	if n, err := strconv.Atoi(port); err == nil {
		port = strconv.Itoa(n)
	}
	if port == "" {
		port = "554"
		if u.Scheme == "rtsps" {
			port = "322"
		}
	}
	return u.Scheme + "://" + net.JoinHostPort(host, port)
}

// addressChange describes a move from destination a to b for a message:
// host:port to host:port, with the schemes when they differ.
func addressChange(a, b string) (string, string) {
	sa, ha, _ := strings.Cut(a, "://")
	sb, hb, _ := strings.Cut(b, "://")
	if sa != sb {
		return a, b
	}
	return ha, hb
}

// HiddenAddress stands for a network address HideAddresses removed.
const HiddenAddress = "(address hidden)"

// urlInText finds URLs in a message.
var urlInText = regexp.MustCompile(`(?i)\b[a-z][a-z0-9+.-]*://[^\s"'<>()]+`)

// HideAddresses returns a state reason with the network addresses in it
// replaced by HiddenAddress: URLs, IP addresses with or without a port,
// host:port, and the hosts of known (camera URLs or host:port addresses the
// reason may name, such as a publisher's remote address). It is the reason
// as shown to those who may not see where a source is:
// "describe: dial tcp (address hidden): connect: connection refused".
func HideAddresses(reason string, known ...string) string {
	if reason == "" {
		return reason
	}
	var hosts []string
	for _, k := range known {
		if k == "" {
			continue
		}
		if u, err := url.Parse(k); err == nil && u.Host != "" {
			hosts = append(hosts, u.Host, u.Hostname())
		} else if h, _, err := net.SplitHostPort(k); err == nil {
			hosts = append(hosts, k, h)
		} else {
			hosts = append(hosts, k)
		}
	}
	reason = urlInText.ReplaceAllString(reason, HiddenAddress)
	var b strings.Builder
	for i := 0; i < len(reason); {
		j := i
		for j < len(reason) && addressByte(reason[j]) {
			j++
		}
		if j == i {
			b.WriteByte(reason[i])
			i++
			continue
		}
		tok := strings.TrimRight(reason[i:j], ".:-_")
		if isAddress(tok, hosts, strings.HasSuffix(reason[:i], "lookup ")) {
			b.WriteString(HiddenAddress)
			b.WriteString(reason[i+len(tok) : j])
		} else {
			b.WriteString(reason[i:j])
		}
		i = j
	}
	return b.String()
}

// addressByte reports whether c may be part of a host, an IP address or a
// port.
func addressByte(c byte) bool {
	switch {
	case 'a' <= c|0x20 && c|0x20 <= 'z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte(".:%[]_-", c) >= 0
}

// isAddress reports whether tok is an IP address, with or without a port, a
// host:port, or one of hosts. A host that could be a word (letters only) is
// one only where a name lookup names it.
func isAddress(tok string, hosts []string, lookup bool) bool {
	if tok == "" {
		return false
	}
	for _, h := range hosts {
		if h != "" && strings.EqualFold(tok, h) && (lookup || strings.Trim(h, lettersOnly) != "") {
			return true
		}
	}
	if _, err := netip.ParseAddrPort(tok); err == nil {
		return true
	}
	if _, err := netip.ParseAddr(strings.Trim(tok, "[]")); err == nil {
		return true
	}
	h, port, err := net.SplitHostPort(tok)
	if err != nil || port == "" || strings.Trim(port, "0123456789") != "" {
		return false
	}
	return h != "" && strings.Trim(h, lettersOnly+"0123456789.-") == "" && strings.Trim(h, "0123456789.-") != ""
}

const lettersOnly = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
