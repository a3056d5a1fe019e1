package ingest

import (
	"net/url"
	"strings"
)

// secretWords mark the query parameters of a camera URL that carry a secret: some
// cameras take their credentials there (rtsp://host/live?user=admin&password=...).
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

// redactQuery returns the raw query q with the value of every secret parameter
// replaced by RedactMark, the rest as written.
func redactQuery(q string) string {
	return mapSecrets(q, func(string, string) string { return RedactMark })
}

// restoreQuery returns the raw query q with every secret parameter whose value is
// RedactMark given its value in old (a raw query too). It fails naming the first
// parameter old has no value for.
func restoreQuery(q, old string) (string, string, bool) {
	stored := map[string]string{}
	mapSecrets(old, func(name, raw string) string {
		if _, ok := stored[name]; !ok {
			stored[name] = raw
		}
		return raw
	})
	missing := ""
	out := mapSecrets(q, func(name, raw string) string {
		if v, err := url.QueryUnescape(raw); err != nil || v != RedactMark {
			return raw
		}
		if s, ok := stored[name]; ok {
			return s
		}
		if missing == "" {
			missing = name
		}
		return raw
	})
	return out, missing, missing == ""
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
