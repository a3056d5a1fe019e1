package whip

import (
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
)

// The media socket gets the buffers asked for, as far as the kernel allows.
func TestSizeSocketBuffers(t *testing.T) {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	read, write := SizeSocketBuffers(c)
	limit := func(name string) int {
		b, err := os.ReadFile("/proc/sys/net/core/" + name)
		if err != nil {
			t.Skipf("no %s here: %v", name, err)
		}
		n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		return n
	}
	// Linux keeps twice what it grants; it grants at most the sysctl's limit.
	if want := 2 * min(SocketBuffer, limit("rmem_max")); read != want {
		t.Errorf("receive buffer %d bytes, want %d", read, want)
	}
	if want := 2 * min(SocketBuffer, limit("wmem_max")); write != want {
		t.Errorf("send buffer %d bytes, want %d", write, want)
	}
}
