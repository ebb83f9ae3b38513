package server_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/llmsched/llm-scheduler/internal/apptest"
	"github.com/llmsched/llm-scheduler/internal/config"
)

// timeoutEnv is a process with short HTTP timeouts.
func timeoutEnv(t *testing.T) *apptest.Env {
	return apptest.New(t, func(c *config.Config) {
		c.Server.ReadHeaderTimeout = config.Duration(time.Second)
		c.Server.ReadTimeout = config.Duration(time.Second)
		c.Server.IdleTimeout = config.Duration(time.Second)
	})
}

// dialRaw opens a TCP connection to the server; reads give up after 20 s
// so that a server that never closes fails the test instead of hanging it.
func dialRaw(t *testing.T, e *apptest.Env) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(e.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	return c
}

// TestSlowClientsAreCut: a body sent a byte at a time is cut at
// server.read_timeout with 408 TIMEOUT and the connection closed;
// headers sent slowly are cut at server.read_header_timeout; an idle
// keep-alive connection is closed at server.idle_timeout.
func TestSlowClientsAreCut(t *testing.T) {
	e := timeoutEnv(t)

	t.Run("slow body", func(t *testing.T) {
		c := dialRaw(t, e)
		head := "POST /api/v1/models HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
		if _, err := io.WriteString(c, head); err != nil {
			t.Fatal(err)
		}
		// Nothing more is sent: the server must answer and close by itself.
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("no answer to a stalled body: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(body), `"TIMEOUT"`) || !strings.Contains(string(body), "read_timeout") {
			t.Fatalf("stalled body: %d %s, want 408 TIMEOUT naming server.read_timeout", resp.StatusCode, body)
		}
	})

	t.Run("slow headers", func(t *testing.T) {
		c := dialRaw(t, e)
		if _, err := io.WriteString(c, "GET /api/v1/models HTTP/1.1\r\nHost: x\r\n"); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadAll(c); err != nil {
			t.Fatalf("stalled headers: the connection stayed open: %v", err)
		}
	})

	t.Run("idle keep-alive", func(t *testing.T) {
		// net/http falls back to ReadTimeout without an IdleTimeout: here
		// the read timeout is longer than the test waits.
		e := apptest.New(t, func(c *config.Config) { c.Server.IdleTimeout = config.Duration(time.Second) })
		c := dialRaw(t, e)
		if _, err := io.WriteString(c, "GET /api/v1/system/health HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.Close {
			t.Fatal("the server did not keep the connection alive")
		}
		if _, err := io.ReadAll(br); err != nil {
			t.Fatalf("idle keep-alive connection stayed open: %v", err)
		}
	})
}

// TestLongStreamsOutliveTheReadTimeout: the body deadline is the body's
// only. A streamed answer that takes longer than server.read_timeout
// after its body was read goes on to the end (a server-wide ReadTimeout
// would cancel it: net/http's background read fails and cancels the
// request), and so does a websocket.
func TestLongStreamsOutliveTheReadTimeout(t *testing.T) {
	e := timeoutEnv(t)
	e.Simulator("slow-stream", 1, map[string]any{"latency_ms": 2500, "tokens_per_second": 4, "output_tokens": 6})
	code, _, body := raw(t, "POST", e.URL+"/v1/chat/completions",
		`{"model":"slow-stream","stream":true,"messages":[{"role":"user","content":"take your time"}]}`)
	if code != http.StatusOK || !strings.Contains(body, "data: [DONE]") {
		t.Fatalf("streamed answer slower than the body timeout: %d %q, want it whole, ending in [DONE]", code, body)
	}

	ws := dialGraphQL(t, e)
	time.Sleep(2 * time.Second) // longer than every timeout of the server
	if err := ws.WriteJSON(map[string]any{"id": "1", "type": "subscribe",
		"payload": map[string]any{"query": "{ systemHealth { status } }"}}); err != nil {
		t.Fatal(err)
	}
	var msg map[string]any
	if err := ws.ReadJSON(&msg); err != nil || msg["type"] != "next" {
		t.Fatalf("websocket after the timeouts: %v %v", msg, err)
	}
}

// TestGraphQLTimeBudget: a query past server.graphql_timeout answers a
// TIMEOUT error (here a budget of 1 ns that no query meets); a
// subscription is not bounded by it.
func TestGraphQLTimeBudget(t *testing.T) {
	e := apptest.New(t, func(c *config.Config) { c.Server.GraphQLTimeout = 1 })
	code, _, body := raw(t, "POST", e.URL+"/graphql", `{"query":"{ models { totalCount } }"}`)
	if code != http.StatusOK || !strings.Contains(body, `"TIMEOUT"`) || !strings.Contains(body, "server.graphql_timeout") {
		t.Fatalf("query past its budget: %d %s, want a TIMEOUT error naming server.graphql_timeout", code, body)
	}
	ws := dialGraphQL(t, e)
	if err := ws.WriteJSON(map[string]any{"id": "s", "type": "subscribe",
		"payload": map[string]any{"query": "subscription { taskEvents { taskID } }"}}); err != nil {
		t.Fatal(err)
	}
	m := e.Simulator("budget-sim", 1, map[string]any{"latency_ms": 1, "output_tokens": 1})
	task := e.Submit(map[string]any{"model_id": m.ID, "type": "text-generation", "input": "hi"})
	_ = ws.SetReadDeadline(time.Now().Add(20 * time.Second))
	var msg struct {
		Type    string         `json:"type"`
		Payload map[string]any `json:"payload"`
	}
	if err := ws.ReadJSON(&msg); err != nil || msg.Type != "next" || msg.Payload["errors"] != nil {
		t.Fatalf("subscription under a 1 ns budget: %+v %v, want task %d's events", msg, err, task.ID)
	}
}
