package auth

import (
	"regexp"
	"strconv"
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// SubjectPlaceholder in a Publish or View entry stands for the holder's
// subject as SubjectName writes it.
const SubjectPlaceholder = "{sub}"

// plainSubject is a subject SubjectName keeps as it is.
var plainSubject = regexp.MustCompile(`^[a-z0-9][a-z0-9.]{0,23}$`)

// subjectStemLen is how much of another subject SubjectName keeps before the
// hash.
const subjectStemLen = 12

// SubjectName writes a token's subject the way it appears in source names
// (report-<subject>-<time>), one name per subject and never holding '-', so
// that "report-{sub}-*" of one subject matches no other subject's names:
//
//   - a subject of up to 24 lower-case letters, digits and dots, starting
//     with a letter or digit, as it is ("alice", "unit.7");
//   - any other, up to 12 characters of it (accents dropped, lower case,
//     every other run of characters a dot) and '_' and a hash of the whole
//     subject ("Alice" is "alice_1x0b2k", "李安娜" is "_ab12cd").
//
// The result holds no pattern character, so it is matched literally.
func SubjectName(sub string) string {
	if plainSubject.MatchString(sub) {
		return sub
	}
	var b strings.Builder
	dot := false
	for _, r := range norm.NFKD.String(sub) {
		if r >= 0x300 && r <= 0x36f {
			continue
		}
		r = unicode.ToLower(r)
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
			dot = false
		case !dot:
			b.WriteByte('.')
			dot = true
		}
	}
	stem := strings.Trim(b.String(), ".")
	stem = strings.TrimRight(stem[:min(len(stem), subjectStemLen)], ".")
	h := uint32(2166136261)
	for _, r := range sub {
		h = (h ^ uint32(r)) * 16777619
	}
	return stem + "_" + strconv.FormatUint(uint64(h), 36)
}
