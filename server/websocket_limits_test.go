package server_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/llmsched/llm-scheduler/internal/apptest"
	"github.com/llmsched/llm-scheduler/internal/config"
)

// dialGraphQL opens a graphql-transport-ws connection and acknowledges it.
func dialGraphQL(t *testing.T, e *apptest.Env) *websocket.Conn {
	t.Helper()
	// A write buffer larger than any test message: a message goes out in
	// one write, so the server closing on an oversized one cannot reset
	// the connection halfway through the client's write.
	d := websocket.Dialer{Subprotocols: []string{"graphql-transport-ws"}, WriteBufferSize: 64 << 10}
	c, resp, err := d.Dial("ws"+strings.TrimPrefix(e.URL, "http")+"/graphql", http.Header{})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	resp.Body.Close()
	t.Cleanup(func() { c.Close() })
	if err := c.WriteJSON(map[string]any{"type": "connection_init"}); err != nil {
		t.Fatal(err)
	}
	var ack map[string]any
	if err := c.ReadJSON(&ack); err != nil || ack["type"] != "connection_ack" {
		t.Fatalf("ack: %v %v", ack, err)
	}
	return c
}

// closeCode reads until the server closes the connection and returns the
// close code it sent.
func closeCode(t *testing.T, c *websocket.Conn) int {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		if _, _, err := c.ReadMessage(); err != nil {
			if ce := new(websocket.CloseError); errors.As(err, &ce) {
				return ce.Code
			}
			t.Fatalf("connection ended without a close frame: %v", err)
		}
	}
}

func TestWebsocketMessageRateLimit(t *testing.T) {
	e := apptest.New(t, nil)
	c := dialGraphQL(t, e)
	// Far more pings than the burst allows, as fast as the client can.
	for range 400 {
		if err := c.WriteJSON(map[string]any{"type": "ping"}); err != nil {
			break // the server already closed it
		}
	}
	if code := closeCode(t, c); code != websocket.ClosePolicyViolation {
		t.Fatalf("close code = %d, want %d (policy violation)", code, websocket.ClosePolicyViolation)
	}
	// A client within the limits keeps its connection.
	ok := dialGraphQL(t, e)
	for range 10 {
		if err := ok.WriteJSON(map[string]any{"type": "ping"}); err != nil {
			t.Fatal(err)
		}
		var pong map[string]any
		if err := ok.ReadJSON(&pong); err != nil || pong["type"] != "pong" {
			t.Fatalf("pong: %v %v", pong, err)
		}
	}
}

func TestWebsocketMessageSizeLimit(t *testing.T) {
	e := apptest.New(t, func(c *config.Config) { c.Server.MaxBodyBytes = 4096 })
	c := dialGraphQL(t, e)
	big := map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{
		"query": "subscription { taskEvents { taskID } } #" + strings.Repeat("x", 8192),
	}}
	if err := c.WriteJSON(big); err != nil {
		t.Fatal(err)
	}
	if code := closeCode(t, c); code != websocket.CloseMessageTooBig {
		t.Fatalf("close code = %d, want %d (message too big)", code, websocket.CloseMessageTooBig)
	}
}
