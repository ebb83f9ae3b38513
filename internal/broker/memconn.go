package broker

import (
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// The embedded Redis runs in this process, and its clients reach it over
// in-memory connections instead of TCP on the loopback: a command and its
// reply are a copy and a goroutine wake-up each, not four system calls and
// two trips through the network poller (in a profile of the embedded bench
// run, socket reads and writes were 9% of the CPU: this traffic and the
// bench clients' HTTP requests).
//
// The buffers are unbounded, on purpose. A client writes a whole pipeline
// before it reads a reply, while miniredis writes each reply on its own as
// it goes: with any bound on what is in flight (socket pairs charge every
// small write a whole buffer slot, net.Pipe holds nothing), a pipeline of a
// thousand commands fills the reply side while the request side is still
// being written, and both ends block for good. TCP on the loopback only
// avoids that by coalescing the small replies. What a buffer holds is
// what the other end has not read yet: a write that would grow it first
// drops what was read, and a drained buffer lets go of a large backing
// array.

// memPipe returns the two ends of an in-memory connection.
func memPipe() (client, server net.Conn) {
	a, b := newMemBuf(), newMemBuf()
	return &memConn{in: a, out: b, rd: newDeadline()}, &memConn{in: b, out: a, rd: newDeadline()}
}

// memAddr is the address of both ends of a memPipe.
type memAddr struct{}

func (memAddr) Network() string { return "memory" }
func (memAddr) String() string  { return "embedded" }

// memConn is one end of a memPipe: it reads in and writes out, the other
// end the reverse.
type memConn struct {
	in, out *memBuf
	rd      *deadline
	// wd is the write deadline (Unix nanoseconds, 0 for none). A write
	// never blocks, so it only fails once the deadline has passed.
	wd atomic.Int64
}

var _ net.Conn = (*memConn)(nil)

// Read implements net.Conn.
func (c *memConn) Read(p []byte) (int, error) { return c.in.read(p, c.rd) }

// Write implements net.Conn.
func (c *memConn) Write(p []byte) (int, error) {
	if wd := c.wd.Load(); wd != 0 && time.Now().UnixNano() >= wd {
		return 0, os.ErrDeadlineExceeded
	}
	return c.out.write(p)
}

// Close implements net.Conn: this end reads and writes no more, and the
// other end reads what was written before and then io.EOF, and cannot
// write.
func (c *memConn) Close() error {
	c.in.close()
	c.out.close()
	return nil
}

// LocalAddr implements net.Conn.
func (c *memConn) LocalAddr() net.Addr { return memAddr{} }

// RemoteAddr implements net.Conn.
func (c *memConn) RemoteAddr() net.Addr { return memAddr{} }

// SetDeadline implements net.Conn.
func (c *memConn) SetDeadline(t time.Time) error {
	c.rd.set(t)
	return c.SetWriteDeadline(t)
}

// SetReadDeadline implements net.Conn.
func (c *memConn) SetReadDeadline(t time.Time) error {
	c.rd.set(t)
	return nil
}

// SetWriteDeadline implements net.Conn.
func (c *memConn) SetWriteDeadline(t time.Time) error {
	var n int64
	if !t.IsZero() {
		n = t.UnixNano()
	}
	c.wd.Store(n)
	return nil
}

// memBuf is what one end has written and the other not read yet.
type memBuf struct {
	mu     sync.Mutex
	data   []byte
	off    int // data[off:] is unread
	closed bool
	// ready holds a token after a write or a close: a reader that found
	// nothing waits for it, then looks again.
	ready chan struct{}
}

// memKeep is the largest backing array a drained buffer keeps for reuse.
const memKeep = 64 << 10

func newMemBuf() *memBuf { return &memBuf{ready: make(chan struct{}, 1)} }

func (b *memBuf) write(p []byte) (int, error) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return 0, net.ErrClosed
	}
	if b.off > 0 && len(b.data)+len(p) > cap(b.data) {
		// Before growing, drop what was read: a reader that never quite
		// catches up (a subscriber under a steady stream) would otherwise
		// keep, and copy on every growth, all that went through.
		n := copy(b.data, b.data[b.off:])
		b.data, b.off = b.data[:n], 0
	}
	b.data = append(b.data, p...)
	b.mu.Unlock()
	b.signal()
	return len(p), nil
}

func (b *memBuf) read(p []byte, rd *deadline) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		b.mu.Lock()
		if b.off < len(b.data) {
			n := copy(p, b.data[b.off:])
			b.off += n
			if b.off == len(b.data) {
				if cap(b.data) > memKeep {
					b.data = nil
				} else {
					b.data = b.data[:0]
				}
				b.off = 0
			}
			b.mu.Unlock()
			return n, nil
		}
		closed := b.closed
		b.mu.Unlock()
		if closed {
			return 0, io.EOF
		}
		select {
		case <-b.ready:
		case <-rd.done():
			return 0, os.ErrDeadlineExceeded
		}
	}
}

func (b *memBuf) close() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.signal()
}

func (b *memBuf) signal() {
	select {
	case b.ready <- struct{}{}:
	default: // a token is already there
	}
}

// deadline is a read deadline that can move while a read waits: the
// channel done returns is closed once the deadline has passed.
type deadline struct {
	mu     sync.Mutex
	timer  *time.Timer
	passed chan struct{}
}

func newDeadline() *deadline { return &deadline{passed: make(chan struct{})} }

// set moves the deadline to t (zero: none).
func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil && !d.timer.Stop() {
		// The timer fired: wait for its function to have closed passed.
		<-d.passed
	}
	d.timer = nil
	closed := isClosed(d.passed)
	if t.IsZero() {
		if closed {
			d.passed = make(chan struct{})
		}
		return
	}
	if wait := time.Until(t); wait > 0 {
		if closed {
			d.passed = make(chan struct{})
		}
		passed := d.passed
		d.timer = time.AfterFunc(wait, func() { close(passed) })
		return
	}
	if !closed {
		close(d.passed)
	}
}

// done is closed once the deadline has passed.
func (d *deadline) done() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.passed
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
