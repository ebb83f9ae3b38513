package broker

import (
	"io"
	"net"
	"testing"

	"golang.org/x/net/nettest"
)

// TestMemPipeIsANetConn runs golang.org/x/net's conformance tests for
// net.Conn implementations on memPipe: reads, writes, close and
// deadlines, concurrently.
func TestMemPipeIsANetConn(t *testing.T) {
	nettest.TestConn(t, func() (net.Conn, net.Conn, func(), error) {
		c1, c2 := memPipe()
		return c1, c2, func() { _ = c1.Close(); _ = c2.Close() }, nil
	})
}

// TestMemPipeForgetsWhatWasRead: a reader that stays a little behind a
// steady writer, never emptying the buffer, holds only what it has not
// read, not everything that went through.
func TestMemPipeForgetsWhatWasRead(t *testing.T) {
	c1, c2 := memPipe()
	defer c1.Close()
	defer c2.Close()
	chunk := make([]byte, 1024)
	if _, err := c1.Write(chunk); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(chunk))
	for range 10_000 { // 10 MB through, one chunk always unread
		if _, err := c1.Write(chunk); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c2, got); err != nil {
			t.Fatal(err)
		}
	}
	buf := c1.(*memConn).out
	buf.mu.Lock()
	unread, held := len(buf.data)-buf.off, cap(buf.data)
	buf.mu.Unlock()
	if unread != len(chunk) {
		t.Fatalf("%d bytes unread, want %d", unread, len(chunk))
	}
	if held > 16*len(chunk) {
		t.Fatalf("the buffer holds %d bytes for %d unread", held, unread)
	}
}
