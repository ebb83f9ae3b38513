package broker

import (
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
