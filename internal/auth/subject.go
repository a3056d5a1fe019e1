package auth

import (
	"strconv"
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// SubjectPlaceholder in a Publish or View entry stands for the holder's
// subject as SubjectName writes it.
const SubjectPlaceholder = "{sub}"

// subjectNameLen is the most a subject takes of a source name.
const subjectNameLen = 24

// SubjectName writes a token's subject the way it appears in source names
// (the report page's report-<reporter>-<time>): accents dropped, lower case,
// every run of other characters than a-z, 0-9, '.', '_' and '-' one '-',
// none of '.', '_', '-' at either end, at most 24 characters. A subject with
// nothing left (a name in Chinese characters) is 'r' and a hash of it. The
// result never holds a pattern character, so it is matched literally.
func SubjectName(sub string) string {
	var b strings.Builder
	dash := false
	for _, r := range norm.NFKD.String(sub) {
		if r >= 0x300 && r <= 0x36f {
			continue
		}
		r = unicode.ToLower(r)
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '.', r == '_':
			b.WriteRune(r)
			dash = false
		case !dash:
			b.WriteByte('-')
			dash = true
		}
	}
	s := strings.Trim(b.String(), "-._")
	if s != "" {
		return strings.TrimRight(s[:min(len(s), subjectNameLen)], "-._")
	}
	h := uint32(2166136261)
	for _, r := range sub {
		h = (h ^ uint32(r)) * 16777619
	}
	return "r" + strconv.FormatUint(uint64(h), 36)
}
