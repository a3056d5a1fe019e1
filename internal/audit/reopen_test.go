package audit

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"fieldvideo/internal/testkit"
)

func TestRemovedWhileRunningLosesNothing(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	var logged logBuffer
	l := openTest(t, Params{File: path, KeyFile: testKeyFile(t), Log: logged.logger()})
	writeN(t, l, "a", 3)
	old, err := os.Open(path) // keeps the removed file readable
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	writeN(t, l, "b", 3)
	closeTest(t, l)

	oldContent, err := io.ReadAll(old)
	if err != nil {
		t.Fatal(err)
	}
	newContent, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got := actors(t, append(append([]byte(nil), oldContent...), newContent...))
	for _, a := range []string{"a-0", "a-1", "a-2", "b-0", "b-1", "b-2"} {
		if got[a] == 0 {
			t.Errorf("event %s lost", a)
		}
	}
	first := lineJSON(t, splitLines(newContent)[0])
	if first["kind"] != kindReopen || !strings.Contains(first["reason"].(string), "was removed") || first["seq"].(float64) != 5 {
		t.Fatalf("first line of the new file: %v", first)
	}
	if !strings.Contains(logged.String(), "audit log reopened") {
		t.Errorf("reopen not logged: %s", logged.String())
	}
	oldPath := filepath.Join(dir, "removed.log")
	if err := os.WriteFile(oldPath, oldContent, 0o640); err != nil {
		t.Fatal(err)
	}
	if rep, err := VerifyFiles([]string{oldPath, path}, testPub()); err != nil || rep.Reopens != 1 {
		t.Fatalf("report %+v, %v", rep, err)
	}
}

func TestRemovedUnderConcurrentWritesLosesNothing(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	l := openTest(t, Params{File: path, KeyFile: testKeyFile(t)})
	const writers, each = 4, 100
	var written atomic.Int64
	var wg sync.WaitGroup
	acked := make([][]string, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				a := fmt.Sprintf("w%d-%d", w, i)
				if err := l.Write(Event{Actor: a, Action: "view", Via: "whep"}); err == nil {
					acked[w] = append(acked[w], a)
				}
				written.Add(1)
			}
		}()
	}
	var captured [][]byte
	for _, at := range []int64{writers * each / 4, writers * each / 2, writers * each * 3 / 4} {
		waitFor(t, "writes", func() bool { return written.Load() >= at })
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		defer func() {
			b, _ := io.ReadAll(f)
			captured = append(captured, b)
			f.Close()
		}()
	}
	wg.Wait()
	closeTest(t, l)
	content, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	check := func() {
		all := append([]byte(nil), content...)
		for _, c := range captured {
			all = append(all, c...)
		}
		got := actors(t, all)
		n := 0
		for _, as := range acked {
			for _, a := range as {
				n++
				if got[a] == 0 {
					t.Errorf("acknowledged event %s lost", a)
				}
			}
		}
		if n != writers*each {
			t.Errorf("%d of %d writes succeeded", n, writers*each)
		}
	}
	t.Cleanup(check) // after the deferred reads of the removed files
}

func TestRotatedByRename(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l := openTest(t, Params{File: path, KeyFile: testKeyFile(t)})
	writeN(t, l, "a", 2)
	for i := 1; i <= 2; i++ {
		if err := os.Rename(path, fmt.Sprintf("%s.%d", path, i)); err != nil {
			t.Fatal(err)
		}
		writeN(t, l, fmt.Sprintf("r%d", i), 2)
	}
	closeTest(t, l)
	first := lineJSON(t, readLines(t, path)[0])
	if first["kind"] != kindReopen || !strings.Contains(first["reason"].(string), "renamed") {
		t.Fatalf("first line %v", first)
	}
	rep, err := VerifyFiles([]string{path + ".1", path + ".2", path}, testPub())
	if err != nil || rep.Reopens != 2 || rep.LastSeq != 10 {
		t.Fatalf("report %+v, %v", rep, err)
	}
}

func TestRotatedByCopyTruncate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l := openTest(t, Params{File: path, KeyFile: testKeyFile(t)})
	writeN(t, l, "a", 3)
	b, _ := os.ReadFile(path)
	if err := os.WriteFile(path+".1", b, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	writeN(t, l, "b", 2)
	closeTest(t, l)
	first := lineJSON(t, readLines(t, path)[0])
	if first["kind"] != kindReopen || !strings.Contains(first["reason"].(string), "truncated") {
		t.Fatalf("first line %v", first)
	}
	if rep, err := VerifyFiles([]string{path + ".1", path}, testPub()); err != nil || rep.Reopens != 1 {
		t.Fatalf("report %+v, %v", rep, err)
	}
}

func TestEditedInPlaceIsReopenedAndDetected(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	l := openTest(t, Params{File: path, KeyFile: testKeyFile(t)})
	writeN(t, l, "a", 5)
	// What sed -i does: write an edited copy, rename it over the file.
	b, _ := os.ReadFile(path)
	tmp := filepath.Join(dir, "sedXYZ")
	if err := os.WriteFile(tmp, bytes.Replace(b, []byte(`"actor":"a-2"`), []byte(`"actor":"nobody"`), 1), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	writeN(t, l, "b", 2)
	closeTest(t, l)
	lines := readLines(t, path)
	reopen := lineJSON(t, lines[6])
	if reopen["kind"] != kindReopen || !strings.Contains(reopen["reason"].(string), "replaced") {
		t.Fatalf("line 7: %v", reopen)
	}
	_, err := VerifyFiles([]string{path}, testPub())
	if p := problemOf(t, err); p.Line != 4 || p.Kind != "altered" {
		t.Fatalf("got %v, want line 4 altered", err)
	}
}

// TestFullDisk fills a small tmpfs: writes fail with an error that says
// what to do, and succeed again once space is freed.
func TestFullDisk(t *testing.T) {
	mnt := testkit.SmallDisk(t, 64<<10)
	path := filepath.Join(mnt, "audit.log")
	var logged logBuffer
	l := openTest(t, Params{File: path, KeyFile: testKeyFile(t), Log: logged.logger()})
	defer l.Close()
	writeN(t, l, "before", 3)

	filler := testkit.FillDisk(t, mnt)
	var werr error
	refused := 0
	for i := 0; i < 100; i++ {
		if werr = l.Write(Event{Actor: fmt.Sprintf("full-%d", i), Action: "view", Via: "whep"}); werr != nil {
			refused++
			break
		}
	}
	if werr == nil {
		t.Fatal("100 writes to a full disk succeeded")
	}
	for i := 0; i < 2; i++ {
		if err := l.Write(Event{Actor: "refused", Action: "view", Via: "whep"}); err == nil {
			t.Fatal("write to a full disk succeeded")
		}
		refused++
	}
	msg := werr.Error()
	if !errors.Is(werr, syscall.ENOSPC) || !strings.Contains(msg, "audit log "+path+" cannot be written (no space left on device)") ||
		!strings.Contains(msg, "access is refused until it can: free space on its disk") {
		t.Fatalf("error %q", msg)
	}
	if l.Healthy() == nil || l.Errors() != refused {
		t.Fatalf("healthy %v, errors %d (want %d)", l.Healthy(), l.Errors(), refused)
	}
	if n := strings.Count(logged.String(), "ALARM: audit log"); n != 1 {
		t.Errorf("%d ALARM lines (want 1, rate-limited):\n%s", n, logged.String())
	}
	before, _ := os.ReadFile(path)
	if bytes.Contains(before, []byte("refused")) {
		t.Fatal("a refused event is in the file")
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	writeN(t, l, "after", 2)
	if l.Healthy() != nil {
		t.Fatalf("still unhealthy: %v", l.Healthy())
	}
	if !strings.Contains(logged.String(), "audit log is writable again") {
		t.Errorf("recovery not logged:\n%s", logged.String())
	}
	closeTest(t, l)
	rep, err := VerifyFiles([]string{path}, testPub())
	if err != nil || rep.Gaps != 1 {
		t.Fatalf("report %+v, %v", rep, err)
	}
	gap := strings.Join(rep.Notes, "\n")
	if !strings.Contains(gap, fmt.Sprintf("gap: %d event(s) refused", refused)) || !strings.Contains(gap, "no space left on device") {
		t.Fatalf("notes %q", gap)
	}
}
