// Package metrics writes the Prometheus text exposition format. Values are
// read from their owners at scrape time, so there is no registry to keep in
// step with the objects being measured.
package metrics

import (
	"bufio"
	"io"
	"math"
	"strconv"
	"strings"
)

// ContentType is the exposition format's media type.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// Writer writes metric families and their samples.
type Writer struct {
	w *bufio.Writer
}

// NewWriter returns a writer on w; call Flush when done.
func NewWriter(w io.Writer) *Writer { return &Writer{w: bufio.NewWriter(w)} }

// Family starts a metric family; typ is counter, gauge or untyped.
func (m *Writer) Family(name, typ, help string) {
	m.w.WriteString("# HELP " + name + " " + strings.ReplaceAll(help, "\n", " ") + "\n")
	m.w.WriteString("# TYPE " + name + " " + typ + "\n")
}

// Sample writes one sample; labels are name, value pairs.
func (m *Writer) Sample(name string, value float64, labels ...string) {
	m.w.WriteString(name)
	if len(labels) > 0 {
		m.w.WriteByte('{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				m.w.WriteByte(',')
			}
			m.w.WriteString(labels[i])
			m.w.WriteString(`="`)
			m.w.WriteString(escape(labels[i+1]))
			m.w.WriteByte('"')
		}
		m.w.WriteByte('}')
	}
	m.w.WriteByte(' ')
	m.w.WriteString(format(value))
	m.w.WriteByte('\n')
}

// Flush writes buffered output.
func (m *Writer) Flush() error { return m.w.Flush() }

var escaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)

func escape(s string) string { return escaper.Replace(s) }

func format(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// Bool is a sample value for a condition: 1 when true, 0 when false.
func Bool(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
