package metrics

import (
	"bytes"
	"math"
	"testing"
)

func TestWriter(t *testing.T) {
	var b bytes.Buffer
	m := NewWriter(&b)
	m.Family("fv_packets_total", "counter", "Packets.")
	m.Sample("fv_packets_total", 12, "source", `a"b\c`+"\n")
	m.Sample("fv_up", math.Inf(1))
	if err := m.Flush(); err != nil {
		t.Fatal(err)
	}
	want := "# HELP fv_packets_total Packets.\n# TYPE fv_packets_total counter\n" +
		`fv_packets_total{source="a\"b\\c\n"} 12` + "\nfv_up +Inf\n"
	if b.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", b.String(), want)
	}
}
