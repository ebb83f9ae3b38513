package server

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"
)

// gqlgen v0.17.92+ dropped its gorilla upgrader for a pluggable websocket
// implementation (coder/websocket by default). This project keeps
// gorilla/websocket, so this is the small adapter between the two: gqlgen
// speaks the GraphQL protocols (graphql-transport-ws and legacy graphql-ws)
// and serialises writes; gorilla does the framing.

// gorillaWebsocket accepts websocket upgrades for gqlgen and remembers the
// open connections so that shutdown can close them with "going away".
type gorillaWebsocket struct {
	checkOrigin func(*http.Request) bool
	// writeTimeout bounds every write: a client that stops reading is
	// disconnected instead of holding its connection's goroutines.
	writeTimeout time.Duration

	mu       sync.Mutex
	conns    map[*gorillaConn]struct{}
	stopping bool
}

var _ transport.WebsocketImplementation = (*gorillaWebsocket)(nil)

func newGorillaWebsocket(checkOrigin func(*http.Request) bool, writeTimeout time.Duration) *gorillaWebsocket {
	return &gorillaWebsocket{checkOrigin: checkOrigin, writeTimeout: writeTimeout, conns: map[*gorillaConn]struct{}{}}
}

var errShuttingDown = errors.New("server is shutting down")

// Accept upgrades the request, negotiating one of gqlgen's subprotocols.
func (g *gorillaWebsocket) Accept(w http.ResponseWriter, r *http.Request, o transport.WebsocketAcceptOptions) (transport.WebsocketConn, error) {
	g.mu.Lock()
	stopping := g.stopping
	g.mu.Unlock()
	if stopping {
		return nil, errShuttingDown
	}
	up := websocket.Upgrader{
		Subprotocols: slices.Clone(o.Subprotocols),
		CheckOrigin:  g.checkOrigin,
		// Reads reuse the HTTP server's buffered reader (ReadBufferSize 0);
		// writes borrow a buffer from the pool only while a message goes
		// out. A subscriber mostly waits: a thousand of them held 8 MB of
		// buffers of their own.
		WriteBufferPool: websocketWriteBuffers,
		// gqlgen answers a failed upgrade itself.
		Error: func(http.ResponseWriter, *http.Request, int, error) {},
	}
	c, err := up.Upgrade(hijacker{w}, r, o.ResponseHeader)
	if err != nil {
		return nil, err
	}
	gc := &gorillaConn{c: c, writeTimeout: g.writeTimeout, owner: g,
		limiter: rate.NewLimiter(websocketMessageRate, websocketMessageBurst),
		active:  map[string]struct{}{}}
	if sess, ok := r.Context().Value(wsSessionKey{}).(*wsSession); ok {
		sess.conn = gc
	}
	g.mu.Lock()
	if g.stopping {
		g.mu.Unlock()
		_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, "server shutting down"), time.Now().Add(time.Second))
		_ = c.Close()
		return nil, errShuttingDown
	}
	g.conns[gc] = struct{}{}
	g.mu.Unlock()
	return gc, nil
}

// shutdown refuses new connections and closes every open one with 1001
// (going away), which tells clients to reconnect elsewhere or later.
func (g *gorillaWebsocket) shutdown() {
	g.mu.Lock()
	g.stopping = true
	conns := make([]*gorillaConn, 0, len(g.conns))
	for c := range g.conns {
		conns = append(conns, c)
	}
	g.mu.Unlock()
	for _, c := range conns {
		_ = c.WriteClose(websocket.CloseGoingAway, "server shutting down")
		_ = c.Close()
	}
}

// hijacker lets gorilla hijack through response-writer wrappers (the
// access-log recorder) that expose Unwrap but not Hijack.
type hijacker struct{ http.ResponseWriter }

func (h hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(h.ResponseWriter).Hijack()
}

// websocketWriteBuffers lends write buffers to websockets (gorilla's
// BufferPool; 4 KiB, gorilla's default size, when the pool is empty).
var websocketWriteBuffers = &sync.Pool{}

// A client may send websocketMessageRate messages a second on one
// websocket, in bursts of websocketMessageBurst (subscribing to a page's
// worth of tasks at once fits); past that the connection is closed with
// 1008 (policy violation), so one client cannot keep the server busy.
const (
	websocketMessageRate  = 20
	websocketMessageBurst = 100
)

// gorillaConn is one websocket as gqlgen sees it.
type gorillaConn struct {
	c            *websocket.Conn
	writeTimeout time.Duration
	owner        *gorillaWebsocket
	once         sync.Once
	limiter      *rate.Limiter

	mu sync.Mutex
	// active holds the ids of the operations the client started and that
	// have not ended (graphql-ws: a second subscribe with a live id closes
	// the socket with 4409).
	active map[string]struct{}
	// keyID is the API key the connection authenticated with (0: none, or
	// auth off); the key watcher closes it with 4403 once the key is revoked.
	keyID int
}

// errMessageRate ends a connection that sends too fast.
var errMessageRate = errors.New("websocket message rate limit exceeded")

var (
	_ transport.WebsocketConn          = (*gorillaConn)(nil)
	_ transport.WebsocketReadLimiter   = (*gorillaConn)(nil)
	_ transport.WebsocketReadDeadliner = (*gorillaConn)(nil)
)

func (g *gorillaConn) NextReader() (int, io.Reader, error) {
	t, r, err := g.c.NextReader()
	if err == nil {
		var raw []byte
		raw, err = io.ReadAll(r)
		r = bytes.NewReader(raw)
		if err == nil {
			err = g.track(raw)
			if err != nil {
				return t, nil, err
			}
		}
	}
	if errors.Is(err, websocket.ErrReadLimit) {
		// gorilla has sent 1009 (message too big); let the client read it.
		g.closeGracefully(websocket.CloseMessageTooBig, "message too big")
		return t, nil, err
	}
	if err != nil {
		_ = g.Close() // the connection is over: release its socket
		if websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway, websocket.CloseNoStatusReceived) {
			return t, nil, transport.ErrWebsocketClosed
		}
		return t, nil, err
	}
	if !g.limiter.Allow() {
		g.closeGracefully(websocket.ClosePolicyViolation, errMessageRate.Error())
		return t, nil, errMessageRate
	}
	return t, r, nil
}

// wsEnvelope is what the adapter reads of a protocol message.
type wsEnvelope struct {
	ID   string `json:"id"`
	Type string `json:"type"`
}

// errDuplicateID ends a connection that starts an operation under an id
// that is still running.
var errDuplicateID = errors.New("duplicate operation id")

// track follows which operation ids are running. A client message that
// starts an operation ("subscribe" in graphql-transport-ws, "start" in the
// legacy graphql-ws) with an id that is still running closes the
// connection with 4409, as graphql-transport-ws prescribes ("Subscriber
// for <id> already exists"): gqlgen would run both and lose the first's
// cancel. A message that does not decode is left to gqlgen to refuse.
func (g *gorillaConn) track(raw []byte) error {
	var m wsEnvelope
	if json.Unmarshal(raw, &m) != nil {
		return nil //nolint:nilerr // gqlgen refuses a message that does not decode
	}
	switch m.Type {
	case "subscribe", "start":
		g.mu.Lock()
		_, dup := g.active[m.ID]
		if !dup {
			g.active[m.ID] = struct{}{}
		}
		g.mu.Unlock()
		if dup {
			g.closeGracefully(4409, "Subscriber for "+truncateID(m.ID)+" already exists")
			return errDuplicateID
		}
	case "complete", "stop":
		g.ended(m.ID)
	}
	return nil
}

func (g *gorillaConn) ended(id string) {
	g.mu.Lock()
	delete(g.active, id)
	g.mu.Unlock()
}

// truncateID bounds a client-chosen id quoted in a close reason (at most
// 123 bytes in all).
func truncateID(id string) string {
	if len(id) > 64 {
		return id[:64] + "..."
	}
	return id
}

// WriteJSON writes one message. gqlgen serialises calls. A write that
// fails (a stalled client past the deadline) closes the connection, which
// ends its read loop and with it every subscription on it. A "complete" or
// "error" message ends its operation, so the client may reuse its id.
func (g *gorillaConn) WriteJSON(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if bytes.Contains(b, []byte(`"complete"`)) || bytes.Contains(b, []byte(`"error"`)) {
		var m wsEnvelope
		if json.Unmarshal(b, &m) == nil && (m.Type == "complete" || m.Type == "error") {
			g.ended(m.ID)
		}
	}
	if err := g.c.SetWriteDeadline(time.Now().Add(g.writeTimeout)); err != nil {
		_ = g.Close()
		return err
	}
	if err := g.c.WriteMessage(websocket.TextMessage, b); err != nil {
		_ = g.Close()
		return err
	}
	return nil
}

func (g *gorillaConn) WriteClose(code int, message string) error {
	return g.c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, message), time.Now().Add(time.Second))
}

// closeGracefully sends a close frame (unless one went already) and
// discards what the client still sends until it hangs up or a second
// passes: closing the socket with unread data would reset the connection
// and lose the close frame, and with it the reason.
func (g *gorillaConn) closeGracefully(code int, reason string) {
	if err := g.WriteClose(code, reason); err != nil && !errors.Is(err, websocket.ErrCloseSent) {
		_ = g.Close() // the peer is gone already
		return
	}
	conn := g.c.NetConn()
	if err := conn.SetReadDeadline(time.Now().Add(time.Second)); err == nil {
		_, _ = io.Copy(io.Discard, conn) // ends at the deadline or when the client hangs up
	}
	_ = g.Close() // tearing down: the peer is told, nothing is left to report
}

func (g *gorillaConn) Close() error {
	var err error
	g.once.Do(func() {
		g.owner.mu.Lock()
		delete(g.owner.conns, g)
		g.owner.mu.Unlock()
		err = g.c.Close()
	})
	return err
}

func (g *gorillaConn) Subprotocol() string               { return g.c.Subprotocol() }
func (g *gorillaConn) SetReadLimit(limit int64)          { g.c.SetReadLimit(limit) }
func (g *gorillaConn) SetReadDeadline(t time.Time) error { return g.c.SetReadDeadline(t) }

// closeWith tells the client why the connection ends (code and reason in
// the close frame) from outside its read loop, and closes the socket a
// second later if the client has not answered the close by then. The
// read loop ends on the client's close or on the closed socket, and with
// it every operation on the connection.
func (g *gorillaConn) closeWith(code int, reason string) {
	if err := g.WriteClose(code, reason); err != nil {
		_ = g.Close() // the peer is gone already
		return
	}
	time.AfterFunc(time.Second, func() { _ = g.Close() })
}
