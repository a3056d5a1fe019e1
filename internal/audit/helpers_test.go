package audit

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

// testSeed is the signing key of the tests and of the fuzz seed corpus.
var testSeed = bytes.Repeat([]byte{7}, ed25519.SeedSize)

func testPub() ed25519.PublicKey {
	return ed25519.NewKeyFromSeed(testSeed).Public().(ed25519.PublicKey)
}

// testKeyFile writes the test signing key to a new directory.
func testKeyFile(t testing.TB) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "audit.key")
	if err := os.WriteFile(file, []byte(hex.EncodeToString(testSeed)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

func openTest(t testing.TB, p Params) *Log {
	t.Helper()
	l, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func writeN(t testing.TB, l *Log, actor string, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		if err := l.Write(Event{Actor: fmt.Sprintf("%s-%d", actor, i), Role: "wall", Action: "view", Source: "cam1", Via: "whep"}); err != nil {
			t.Fatal(err)
		}
	}
}

func closeTest(t testing.TB, l *Log) {
	t.Helper()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

// readLines returns the lines of a file without their newlines.
func readLines(t testing.TB, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return splitLines(b)
}

func splitLines(b []byte) [][]byte {
	lines := bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))
	if len(lines) == 1 && len(lines[0]) == 0 {
		return nil
	}
	return lines
}

func joinLines(lines [][]byte) []byte {
	var b bytes.Buffer
	for _, l := range lines {
		b.Write(l)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// lineJSON decodes a line into a map.
func lineJSON(t testing.TB, line []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil {
		t.Fatalf("line %q: %v", line, err)
	}
	return m
}

// actors returns the actors of the event lines in content.
func actors(t testing.TB, content []byte) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, l := range splitLines(content) {
		m := lineJSON(t, l)
		if a, ok := m["actor"].(string); ok {
			out[a]++
		}
	}
	return out
}

// rechain rewrites lines[from:] so that the chain holds again after an edit,
// as an attacker without the signing key would: checkpoints keep their old
// signature, or are signed with key when it is set.
func rechain(t testing.TB, lines [][]byte, from int, key ed25519.PrivateKey) [][]byte {
	t.Helper()
	out := append([][]byte(nil), lines...)
	prev := zeroHash
	if from > 0 {
		prev = sha256.Sum256(out[from-1])
	}
	for i := from; i < len(out); i++ {
		p, err := parseLine(out[i])
		if err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		head := len(`{"seq":`) + len(strconv.FormatUint(p.seq, 10)) + len(`,"prev":"`) + 64 + len(`",`)
		body := append([]byte("{"), out[i][head:]...)
		var k ed25519.PrivateKey
		if p.Kind == kindCheckpoint && key != nil {
			body = append(body[:len(body)-sigSuffixLen], '}')
			k = key
		}
		out[i] = appendLine(nil, p.seq, prev, body, k)
		prev = sha256.Sum256(out[i])
	}
	return out
}

// logBuffer is a slog handler target that tests can read while the log
// writes to it.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *logBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *logBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

func (w *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// problemOf returns the *Problem in err.
func problemOf(t testing.TB, err error) *Problem {
	t.Helper()
	var p *Problem
	if !errors.As(err, &p) {
		t.Fatalf("want a *Problem, got %v", err)
	}
	return p
}
