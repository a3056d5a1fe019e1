package audit

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Line kinds. Event lines have no kind.
const (
	kindStart      = "start"      // first line of a new chain
	kindRestart    = "restart"    // a new process continues the chain of an existing file
	kindReopen     = "reopen"     // first line of a new file at the path, continuing the chain
	kindGap        = "gap"        // events that could not be written were refused
	kindCheckpoint = "checkpoint" // signed chain head
)

// formatName identifies the line format in start lines.
const formatName = "fieldvideo-audit-v1"

// maxLine bounds the lines the parser looks into; longer lines are not
// audit lines (events clip their fields well below this).
const maxLine = 1 << 20

// maxField bounds one string field of an event, so that a long request path
// or reason cannot make a line unreasonably large.
const maxField = 2048

// sigSuffixLen is the length of `,"sig":"<128 hex>"}` ending a checkpoint.
const sigSuffixLen = len(`,"sig":""}`) + 2*ed25519.SignatureSize

var zeroHash [32]byte

// marker is the body of a line that is not an event.
type marker struct {
	Kind       string    `json:"kind"`
	Time       time.Time `json:"time"`
	Format     string    `json:"format,omitempty"`
	Key        string    `json:"key,omitempty"` // key id of the signing key
	Reason     string    `json:"reason,omitempty"`
	Lost       int       `json:"lost,omitempty"`
	Since      time.Time `json:"since,omitzero"`
	TornBytes  int       `json:"torn_bytes,omitempty"`
	TornSHA256 string    `json:"torn_sha256,omitempty"`
}

// fields are what the verifier reads from a line besides seq and prev.
type fields struct {
	Kind       string    `json:"kind"`
	Time       time.Time `json:"time"`
	Key        string    `json:"key"`
	Sig        string    `json:"sig"`
	Reason     string    `json:"reason"`
	Lost       int       `json:"lost"`
	TornBytes  int       `json:"torn_bytes"`
	TornSHA256 string    `json:"torn_sha256"`
}

// parsed is one chained line.
type parsed struct {
	seq  uint64
	prev [32]byte
	fields
}

// appendLine appends the line for body (a JSON object) chained after
// (seq-1, prev), without the newline. With key set, the line is a checkpoint
// signed over its own bytes up to the signature.
func appendLine(buf []byte, seq uint64, prev [32]byte, body []byte, key ed25519.PrivateKey) []byte {
	start := len(buf)
	buf = append(buf, `{"seq":`...)
	buf = strconv.AppendUint(buf, seq, 10)
	buf = append(buf, `,"prev":"`...)
	buf = hex.AppendEncode(buf, prev[:])
	buf = append(buf, `",`...)
	buf = append(buf, body[1:]...)
	if key == nil {
		return buf
	}
	sig := ed25519.Sign(key, buf[start:])
	buf = buf[:len(buf)-1]
	buf = append(buf, `,"sig":"`...)
	buf = hex.AppendEncode(buf, sig)
	return append(buf, `"}`...)
}

// markerBody returns the JSON body of m.
func markerBody(m marker) []byte {
	b, err := json.Marshal(m)
	if err != nil {
		panic(err) // marker has only plain fields
	}
	return b
}

// keyID names a public key in checkpoints: the first 8 bytes of its SHA-256.
func keyID(pub ed25519.PublicKey) string {
	h := sha256.Sum256(pub)
	return hex.EncodeToString(h[:8])
}

// parseLine reads a chained line (without its newline). The line must start
// exactly as appendLine writes it: {"seq":N,"prev":"<64 hex>", ...
func parseLine(b []byte) (parsed, error) {
	var p parsed
	rest, ok := bytes.CutPrefix(b, []byte(`{"seq":`))
	if !ok {
		return p, errors.New(`it does not start with {"seq":`)
	}
	n := 0
	for n < len(rest) && n < 21 && rest[n] >= '0' && rest[n] <= '9' {
		n++
	}
	seq, err := strconv.ParseUint(string(rest[:n]), 10, 64)
	if err != nil || seq == 0 || rest[0] == '0' {
		return p, errors.New("its seq is not a number from 1")
	}
	p.seq = seq
	rest, ok = bytes.CutPrefix(rest[n:], []byte(`,"prev":"`))
	if !ok || len(rest) < 66 || rest[64] != '"' || rest[65] != ',' {
		return p, errors.New("its prev is not 64 hex digits")
	}
	if _, err := hex.Decode(p.prev[:], rest[:64]); err != nil || !isLowerHex(rest[:64]) {
		return p, errors.New("its prev is not 64 lower-case hex digits")
	}
	if err := json.Unmarshal(b, &p.fields); err != nil {
		return p, fmt.Errorf("it is not a JSON object: %v", err)
	}
	switch p.Kind {
	case "", kindStart, kindRestart, kindReopen, kindGap, kindCheckpoint:
	default:
		return p, fmt.Errorf("unknown kind %q", p.Kind)
	}
	if p.Kind == kindCheckpoint && len(p.Sig) != 2*ed25519.SignatureSize {
		return p, errors.New("a checkpoint without a signature")
	}
	return p, nil
}

func isLowerHex(b []byte) bool {
	for _, c := range b {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// sigState is the result of checking a checkpoint signature.
type sigState uint8

const (
	sigNone      sigState = iota // not a checkpoint
	sigUnchecked                 // no public key given
	sigValid
	sigInvalid
	sigOtherKey // signed by another key (per its key id)
)

// checkSig verifies the signature of checkpoint line b.
func checkSig(b []byte, p parsed, pub ed25519.PublicKey) sigState {
	if p.Kind != kindCheckpoint {
		return sigNone
	}
	if pub == nil {
		return sigUnchecked
	}
	if p.Key != keyID(pub) {
		return sigOtherKey
	}
	if len(b) < sigSuffixLen {
		return sigInvalid
	}
	suffix := b[len(b)-sigSuffixLen:]
	if !bytes.HasPrefix(suffix, []byte(`,"sig":"`)) || !bytes.HasSuffix(suffix, []byte(`"}`)) {
		return sigInvalid
	}
	sig := make([]byte, ed25519.SignatureSize)
	if _, err := hex.Decode(sig, suffix[len(`,"sig":"`):len(suffix)-2]); err != nil {
		return sigInvalid
	}
	signed := make([]byte, 0, len(b)-sigSuffixLen+1)
	signed = append(append(signed, b[:len(b)-sigSuffixLen]...), '}')
	if !ed25519.Verify(pub, signed, sig) {
		return sigInvalid
	}
	return sigValid
}

// clipTo shortens s to n bytes (on a rune boundary).
func clipTo(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n] + "…(clipped)"
}
