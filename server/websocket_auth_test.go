package server_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/llmsched/llm-scheduler/ent/model"
)

// dialWithKey opens a graphql-transport-ws connection authenticated with
// key and acknowledges it.
func dialWithKey(t *testing.T, a *authEnv, key string) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{Subprotocols: []string{"graphql-transport-ws"}}
	c, resp, err := d.Dial("ws"+strings.TrimPrefix(a.URL, "http")+"/graphql", http.Header{})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	resp.Body.Close()
	t.Cleanup(func() { c.Close() })
	if err := c.WriteJSON(map[string]any{"type": "connection_init", "payload": map[string]any{"authToken": key}}); err != nil {
		t.Fatal(err)
	}
	var ack map[string]any
	if err := c.ReadJSON(&ack); err != nil || ack["type"] != "connection_ack" {
		t.Fatalf("ack: %v %v", ack, err)
	}
	return c
}

// closeFrame reads until the server closes the connection and returns the
// close error (code and reason), failing if none comes within 15 seconds.
func closeFrame(t *testing.T, c *websocket.Conn) *websocket.CloseError {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(15 * time.Second))
	for {
		if _, _, err := c.ReadMessage(); err != nil {
			if ce := new(websocket.CloseError); errors.As(err, &ce) {
				return ce
			}
			t.Fatalf("connection ended without a close frame: %v", err)
		}
	}
}

// TestRevokedKeyClosesItsWebsockets: a key revoked while its websocket is
// open loses it. A subscription that sends nothing more is closed with
// 4403 and the reason by the key watcher; an operation sent after the
// revocation is refused before it runs (the model it would create does
// not exist) and closes the connection too. Another key's connection
// stays open.
func TestRevokedKeyClosesItsWebsockets(t *testing.T) {
	a := setupAuth(t)
	ctx := context.Background()

	idle := dialWithKey(t, a, a.keys["operator"])
	if err := idle.WriteJSON(map[string]any{"id": "1", "type": "subscribe",
		"payload": map[string]any{"query": "subscription { taskEvents { taskID } }"}}); err != nil {
		t.Fatal(err)
	}
	other := dialWithKey(t, a, a.keys["viewer"])

	admin2, err := a.svc.Create(ctx, "second admin", "admin")
	if err != nil {
		t.Fatal(err)
	}
	busy := dialWithKey(t, a, admin2.Secret)

	if _, err := a.svc.Revoke(ctx, a.keyIDs["operator"]); err != nil {
		t.Fatal(err)
	}
	if _, err := a.svc.Revoke(ctx, admin2.Key.ID); err != nil {
		t.Fatal(err)
	}

	// Right after the revocation, before any watcher round: a mutation.
	if err := busy.WriteJSON(map[string]any{"id": "m", "type": "subscribe", "payload": map[string]any{
		"query": `mutation { createModel(input: {name: "after-revoke", type: SIMULATOR}) { id } }`}}); err != nil {
		t.Fatal(err)
	}
	if ce := closeFrame(t, busy); ce.Code != 4403 || !strings.Contains(ce.Text, "revoked") {
		t.Fatalf("connection that sent a mutation after revocation closed with %d %q, want 4403 naming the revocation", ce.Code, ce.Text)
	}
	if n, err := a.App.Store.Client.Model.Query().Where(model.Name("after-revoke")).Count(ctx); err != nil || n != 0 {
		t.Fatalf("models created by a revoked key's websocket: %d (%v), want 0", n, err)
	}

	if ce := closeFrame(t, idle); ce.Code != 4403 || !strings.Contains(ce.Text, "revoked") {
		t.Fatalf("idle subscription of a revoked key closed with %d %q, want 4403 naming the revocation", ce.Code, ce.Text)
	}

	// The viewer's connection still answers.
	if err := other.WriteJSON(map[string]any{"id": "q", "type": "subscribe",
		"payload": map[string]any{"query": "{ systemHealth { status } }"}}); err != nil {
		t.Fatal(err)
	}
	var msg map[string]any
	_ = other.SetReadDeadline(time.Now().Add(10 * time.Second))
	if err := other.ReadJSON(&msg); err != nil || msg["type"] != "next" {
		t.Fatalf("another key's connection after the revocation: %v %v, want a next message", msg, err)
	}
}

// TestDuplicateOperationIDClosesWith4409: graphql-transport-ws says a
// subscribe with the id of a running operation closes the socket with
// 4409 "Subscriber for <id> already exists". Once an operation has
// completed its id may be used again.
func TestDuplicateOperationIDClosesWith4409(t *testing.T) {
	a := setupAuth(t)
	c := dialWithKey(t, a, a.keys["viewer"])
	query := func(id, q string) {
		t.Helper()
		if err := c.WriteJSON(map[string]any{"id": id, "type": "subscribe", "payload": map[string]any{"query": q}}); err != nil {
			t.Fatal(err)
		}
	}
	// A query completes; its id is free again.
	for range 2 {
		query("q", "{ systemHealth { status } }")
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			var msg map[string]any
			if err := c.ReadJSON(&msg); err != nil {
				t.Fatalf("query: %v", err)
			}
			if msg["type"] == "complete" {
				break
			}
		}
	}
	query("s", "subscription { taskEvents { taskID } }")
	query("s", "subscription { taskEvents { taskID } }")
	if ce := closeFrame(t, c); ce.Code != 4409 || ce.Text != "Subscriber for s already exists" {
		t.Fatalf("duplicate id closed with %d %q, want 4409 \"Subscriber for s already exists\"", ce.Code, ce.Text)
	}
}
