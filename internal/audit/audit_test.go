package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestChainContinuesAcrossOpen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a", "audit.log")
	key := testKeyFile(t)
	for run := 0; run < 3; run++ {
		l := openTest(t, Params{File: path, KeyFile: key})
		writeN(t, l, "run"+string(rune('0'+run)), 3)
		if err := l.Write(Event{Actor: "x", Action: "publish", Source: "cam1", Via: "whip", Result: "denied", Reason: "expired",
			Method: "POST", Path: "/cam1/whip", Status: 403}); err != nil {
			t.Fatal(err)
		}
		closeTest(t, l)
	}
	lines := readLines(t, path)
	// start, 4 events, checkpoint; then twice restart, 4 events, checkpoint.
	if len(lines) != 18 {
		t.Fatalf("%d lines:\n%s", len(lines), joinLines(lines))
	}
	for i, line := range lines {
		p, err := parseLine(line)
		if err != nil || p.seq != uint64(i+1) {
			t.Fatalf("line %d: seq %d, %v", i+1, p.seq, err)
		}
	}
	kinds := []string{kindStart, "", "", "", "", kindCheckpoint, kindRestart}
	for i, k := range kinds {
		if got := lineJSON(t, lines[i])["kind"]; (got == nil && k != "") || (got != nil && got != k) {
			t.Errorf("line %d: kind %v, want %q", i+1, got, k)
		}
	}
	var e Event
	if err := json.Unmarshal(lines[4], &e); err != nil || e.Result != "denied" || e.Status != 403 || e.Path != "/cam1/whip" || e.Time.IsZero() {
		t.Fatalf("event %+v, %v", e, err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rep, err := Verify(f, testPub())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Lines != 18 || rep.FirstSeq != 1 || rep.LastSeq != 18 || rep.Checkpoints != 3 || rep.Restarts != 2 ||
		rep.Unsigned != 0 || rep.LastSigned.Seq != 18 {
		t.Fatalf("report %+v", rep)
	}
}

func TestSigningKeyCreated(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "keys", "audit.key")
	var logged logBuffer
	l := openTest(t, Params{File: filepath.Join(dir, "audit.log"), KeyFile: key, Log: logged.logger()})
	closeTest(t, l)
	fi, err := os.Stat(key)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v, want 0600", fi.Mode().Perm())
	}
	pub, err := ReadPublicKey(PublicKeyFile(key))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyFiles([]string{filepath.Join(dir, "audit.log")}, pub); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logged.String(), "created a new audit signing key") {
		t.Errorf("key creation not logged: %s", logged.String())
	}
	before, _ := os.ReadFile(key)
	closeTest(t, openTest(t, Params{File: filepath.Join(dir, "audit.log"), KeyFile: key}))
	after, _ := os.ReadFile(key)
	if !bytes.Equal(before, after) {
		t.Fatal("the key changed when the log was opened again")
	}

	if err := os.WriteFile(key, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Open(Params{File: filepath.Join(dir, "audit.log"), KeyFile: key})
	if err == nil || !strings.Contains(err.Error(), "is not 64 hex digits") || !strings.Contains(err.Error(), "restore it from backup") {
		t.Fatalf("bad key: %v", err)
	}
}

func TestConcurrentWritersShareCommits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l := openTest(t, Params{File: path, KeyFile: testKeyFile(t)})
	const writers, each = 8, 50
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if err := l.Write(Event{Actor: "w", Action: "view", Via: "whep"}); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	closeTest(t, l)
	content, _ := os.ReadFile(path)
	if n := actors(t, content)["w"]; n != writers*each {
		t.Fatalf("%d events in the file, want %d", n, writers*each)
	}
	rep, err := Verify(bytes.NewReader(content), testPub())
	if err != nil {
		t.Fatal(err)
	}
	if rep.LastSeq != writers*each+2 {
		t.Fatalf("report %+v", rep)
	}
}

func TestWriteAfterClose(t *testing.T) {
	l := openTest(t, Params{File: filepath.Join(t.TempDir(), "audit.log")})
	closeTest(t, l)
	if err := l.Write(Event{Actor: "late"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("write after close: %v", err)
	}
	if l.Errors() != 1 {
		t.Fatalf("errors %d", l.Errors())
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}

func TestCheckpointEveryInterval(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l := openTest(t, Params{File: path, KeyFile: testKeyFile(t), CheckpointInterval: 20 * time.Millisecond})
	defer closeTest(t, l)
	writeN(t, l, "a", 2)
	waitFor(t, "a checkpoint", func() bool {
		b, _ := os.ReadFile(path)
		return bytes.Contains(b, []byte(`"kind":"checkpoint"`))
	})
	rep, err := VerifyFiles([]string{path}, testPub())
	if err != nil || rep.Checkpoints == 0 {
		t.Fatalf("report %+v, %v", rep, err)
	}
}

func TestCheckpointOnlyWhenUnsigned(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l := openTest(t, Params{File: path, KeyFile: testKeyFile(t)})
	writeN(t, l, "a", 1)
	for i := 0; i < 3; i++ {
		if err := l.Checkpoint(); err != nil {
			t.Fatal(err)
		}
	}
	closeTest(t, l)
	if n := bytes.Count(joinLines(readLines(t, path)), []byte(`"kind":"checkpoint"`)); n != 1 {
		t.Fatalf("%d checkpoints, want 1", n)
	}
}

func TestTornLastLineIsMarked(t *testing.T) {
	tests := []struct {
		name string
		tail []byte // appended after the good lines; nil: remove the last newline
		torn bool
	}{
		{"half a line", []byte(`{"seq":6,"prev":"ab`), true},
		{"all but the newline", nil, false},
		{"garbage line ended by a newline", []byte("\x00\x00\x00\n"), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.log")
			key := testKeyFile(t)
			l := openTest(t, Params{File: path, KeyFile: key})
			writeN(t, l, "a", 3)
			closeTest(t, l) // start, 3 events, checkpoint
			content, _ := os.ReadFile(path)
			if tc.tail != nil {
				content = append(content, tc.tail...)
			} else {
				content = bytes.TrimSuffix(content, []byte("\n"))
			}
			if err := os.WriteFile(path, content, 0o640); err != nil {
				t.Fatal(err)
			}
			if !bytes.HasSuffix(content, []byte("\n")) {
				// Before the restart a torn line is the last: noted, not a problem.
				rep, err := VerifyFiles([]string{path}, testPub())
				if err != nil {
					t.Fatalf("before restart: %v", err)
				}
				if tc.torn && len(rep.Notes) == 0 {
					t.Errorf("torn last line not noted: %+v", rep)
				}
			}

			l = openTest(t, Params{File: path, KeyFile: key})
			writeN(t, l, "b", 1)
			closeTest(t, l)
			lines := readLines(t, path)
			if len(lines) != 8+btoi(tc.torn) {
				t.Fatalf("%d lines:\n%s", len(lines), joinLines(lines))
			}
			restart := lineJSON(t, lines[len(lines)-3])
			if restart["kind"] != kindRestart || (restart["torn_bytes"] != nil) != tc.torn {
				t.Fatalf("restart line %v", restart)
			}
			rep, err := VerifyFiles([]string{path}, testPub())
			if err != nil {
				t.Fatal(err)
			}
			noted := strings.Contains(strings.Join(rep.Notes, "\n"), "torn")
			if noted != tc.torn || rep.LastSeq != 8 || rep.Unsigned != 0 {
				t.Fatalf("report %+v", rep)
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestOlderFormatFileGetsNewChain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	old := `{"time":"2024-05-01T10:00:00Z","actor":"a","action":"view","via":"whep","result":"ok"}` + "\n" +
		`{"time":"2024-05-01T10:01:00Z","actor":"b","action":"view","via":"whep","result":"ok"}` + "\n"
	if err := os.WriteFile(path, []byte(old), 0o640); err != nil {
		t.Fatal(err)
	}
	l := openTest(t, Params{File: path, KeyFile: testKeyFile(t)})
	writeN(t, l, "c", 2)
	closeTest(t, l)
	rep, err := VerifyFiles([]string{path}, testPub())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Unchained != 2 || rep.FirstSeq != 1 || rep.LastSeq != 4 || rep.Checkpoints != 1 {
		t.Fatalf("report %+v", rep)
	}
}

func TestDiscard(t *testing.T) {
	l := Discard()
	if err := l.Write(Event{Actor: "a"}); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil || l.Errors() != 0 || l.Healthy() != nil {
		t.Fatal("discard log not healthy")
	}
}

func TestStandardErrorChains(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	saved := os.Stderr
	os.Stderr = f
	l, err := Open(Params{File: "-", KeyFile: testKeyFile(t)})
	os.Stderr = saved
	if err != nil {
		t.Fatal(err)
	}
	writeN(t, l, "a", 2)
	closeTest(t, l)
	rep, err := VerifyFiles([]string{f.Name()}, testPub())
	if err != nil || rep.LastSeq != 4 || rep.Checkpoints != 1 {
		t.Fatalf("report %+v, %v", rep, err)
	}
}

func TestLongFieldsAreClipped(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l := openTest(t, Params{File: path})
	if err := l.Write(Event{Actor: "a", Action: "view", Path: "/" + strings.Repeat("é", 5000)}); err != nil {
		t.Fatal(err)
	}
	closeTest(t, l)
	lines := readLines(t, path)
	var e Event
	if err := json.Unmarshal(lines[1], &e); err != nil {
		t.Fatal(err)
	}
	if len(e.Path) > maxField+32 || !strings.HasSuffix(e.Path, "…(clipped)") {
		t.Fatalf("path of %d bytes: %q...", len(e.Path), e.Path[:20])
	}
}
