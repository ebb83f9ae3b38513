package graph_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/llmsched/llm-scheduler/internal/apikeys"
	"github.com/llmsched/llm-scheduler/internal/apptest"
	"github.com/llmsched/llm-scheduler/internal/domain"
)

// gid is a GraphQL ID as the API documents it (docs/graphql.md): base64
// (standard, padded) of "Type:number". Decoding fails on any other form.
type gid struct {
	Type string
	N    int
}

func (g *gid) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return fmt.Errorf("id %q is not base64: %w", s, err)
	}
	typ, num, ok := strings.Cut(string(raw), ":")
	if !ok || typ == "" {
		return fmt.Errorf("id %q decodes to %q, want Type:number", s, raw)
	}
	n, err := strconv.Atoi(num)
	if err != nil {
		return fmt.Errorf("id %q decodes to %q, want Type:number", s, raw)
	}
	*g = gid{Type: typ, N: n}
	return nil
}

// MarshalJSON sends the opaque form back.
func (g gid) MarshalJSON() ([]byte, error) { return json.Marshal(g.opaque()) }

func (g gid) opaque() string {
	return base64.StdEncoding.EncodeToString([]byte(g.Type + ":" + strconv.Itoa(g.N)))
}

// String is the readable form, for failure messages.
func (g gid) String() string { return g.Type + ":" + strconv.Itoa(g.N) }

// taskGID and modelGID are the ids of rows known by number.
func taskGID(n int) gid  { return gid{"Task", n} }
func modelGID(n int) gid { return gid{"Model", n} }

// gqlError is one entry of a response's errors.
type gqlError struct {
	Message    string         `json:"message"`
	Path       []any          `json:"path"`
	Extensions map[string]any `json:"extensions"`
}

func (e gqlError) code() string { s, _ := e.Extensions["code"].(string); return s }

type gqlResponse struct {
	Data   json.RawMessage `json:"data"`
	Errors []gqlError      `json:"errors"`
}

// post sends one operation over HTTP POST to the real server.
func post(t testing.TB, env *apptest.Env, token, query string, vars map[string]any) gqlResponse {
	t.Helper()
	return postBody(t, env, token, map[string]any{"query": query, "variables": vars})
}

func postBody(t testing.TB, env *apptest.Env, token string, body map[string]any) gqlResponse {
	t.Helper()
	_, out := postStatus(t, env, token, body)
	return out
}

// postStatus is postBody with the HTTP status.
func postStatus(t testing.TB, env *apptest.Env, token string, body map[string]any) (int, gqlResponse) {
	t.Helper()
	raw, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, env.URL+"/graphql", bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := env.HTTP.Do(req)
	if err != nil {
		t.Fatalf("POST /graphql: %v", err)
	}
	defer resp.Body.Close()
	var out gqlResponse
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("decode response (status %d): %v", resp.StatusCode, err)
	}
	return resp.StatusCode, out
}

// mustData runs an operation that must succeed and decodes its data.
func mustData(t testing.TB, env *apptest.Env, token, query string, vars map[string]any, out any) {
	t.Helper()
	r := post(t, env, token, query, vars)
	if len(r.Errors) > 0 {
		t.Fatalf("unexpected errors: %+v\nquery: %s", r.Errors, query)
	}
	if out != nil {
		if err := json.Unmarshal(r.Data, out); err != nil {
			t.Fatalf("decode data %s: %v", r.Data, err)
		}
	}
}

// wantCode runs an operation that must fail with extensions.code.
func wantCode(t testing.TB, env *apptest.Env, token, query string, vars map[string]any, code string) gqlError {
	t.Helper()
	r := post(t, env, token, query, vars)
	if len(r.Errors) == 0 {
		t.Fatalf("want error %s, got data %s\nquery: %s", code, r.Data, query)
	}
	if got := r.Errors[0].code(); got != code {
		t.Fatalf("want code %s, got %s (%q)", code, got, r.Errors[0].Message)
	}
	return r.Errors[0]
}

// addKey stores an API key with a role and returns the key.
func addKey(t testing.TB, env *apptest.Env, role domain.Role) (string, int) {
	t.Helper()
	key := fmt.Sprintf("test-%s-%d", role, time.Now().UnixNano())
	k, err := env.App.Store.Client.APIKey.Create().SetName(string(role)).SetRole(role).
		SetPrefix(key[:8]).SetHash(apikeys.Hash(key)).Save(context.Background())
	if err != nil {
		t.Fatalf("create key: %v", err)
	}
	return key, k.ID
}

// wsMsg is one websocket protocol message.
type wsMsg struct {
	ID      string          `json:"id,omitempty"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// wsClient speaks graphql-transport-ws or the legacy graphql-ws protocol.
type wsClient struct {
	t      testing.TB
	c      *websocket.Conn
	legacy bool
}

const (
	protoTransport = "graphql-transport-ws"
	protoLegacy    = "graphql-ws"
)

func wsURL(env *apptest.Env) string { return "ws" + strings.TrimPrefix(env.URL, "http") + "/graphql" }

// dialWS connects and completes connection_init; it returns the close or
// connection error when the server refuses.
func dialWS(t testing.TB, env *apptest.Env, proto string, init map[string]any) (*wsClient, error) {
	t.Helper()
	d := websocket.Dialer{Subprotocols: []string{proto}, HandshakeTimeout: 10 * time.Second}
	c, _, err := d.Dial(wsURL(env), nil)
	if err != nil {
		return nil, err
	}
	w := &wsClient{t: t, c: c, legacy: proto == protoLegacy}
	if init == nil {
		init = map[string]any{}
	}
	if err := c.WriteJSON(map[string]any{"type": "connection_init", "payload": init}); err != nil {
		c.Close()
		return nil, err
	}
	for {
		m, err := w.read(10 * time.Second)
		if err != nil {
			c.Close()
			return nil, err
		}
		switch m.Type {
		case "connection_ack":
			return w, nil
		case "ka":
		case "connection_error":
			c.Close()
			return nil, fmt.Errorf("connection_error: %s", m.Payload)
		default:
			c.Close()
			return nil, fmt.Errorf("unexpected %s before ack", m.Type)
		}
	}
}

func mustDialWS(t testing.TB, env *apptest.Env, proto string, init map[string]any) *wsClient {
	t.Helper()
	w, err := dialWS(t, env, proto, init)
	if err != nil {
		t.Fatalf("websocket: %v", err)
	}
	t.Cleanup(func() { w.c.Close() })
	return w
}

func (w *wsClient) read(timeout time.Duration) (wsMsg, error) {
	var m wsMsg
	if err := w.c.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return m, err
	}
	err := w.c.ReadJSON(&m)
	return m, err
}

func (w *wsClient) subscribe(id, query string, vars map[string]any) {
	w.t.Helper()
	typ := "subscribe"
	if w.legacy {
		typ = "start"
	}
	if err := w.c.WriteJSON(map[string]any{"id": id, "type": typ, "payload": map[string]any{"query": query, "variables": vars}}); err != nil {
		w.t.Fatalf("subscribe: %v", err)
	}
}

// next returns the next message of an operation: data (as gqlResponse),
// "complete", or "error"; it answers pings and skips keep-alives.
func (w *wsClient) next(timeout time.Duration) (string, gqlResponse) {
	w.t.Helper()
	for {
		m, err := w.read(timeout)
		if err != nil {
			w.t.Fatalf("read websocket: %v", err)
		}
		switch m.Type {
		case "ka", "pong":
			continue
		case "ping":
			if err := w.c.WriteJSON(map[string]any{"type": "pong"}); err != nil {
				w.t.Fatalf("pong: %v", err)
			}
			continue
		case "next", "data":
			var r gqlResponse
			if err := json.Unmarshal(m.Payload, &r); err != nil {
				w.t.Fatalf("decode %s: %v", m.Payload, err)
			}
			return "next", r
		case "error":
			// transport-ws sends a list of errors, legacy one error object.
			var r gqlResponse
			if err := json.Unmarshal(m.Payload, &r.Errors); err != nil {
				var one gqlError
				if err := json.Unmarshal(m.Payload, &one); err != nil {
					w.t.Fatalf("decode error %s: %v", m.Payload, err)
				}
				r.Errors = []gqlError{one}
			}
			return "error", r
		case "complete":
			return "complete", gqlResponse{}
		default:
			w.t.Fatalf("unexpected message %s: %s", m.Type, m.Payload)
		}
	}
}

// nextData returns the next data message, failing on anything else.
func (w *wsClient) nextData(timeout time.Duration, out any) {
	w.t.Helper()
	kind, r := w.next(timeout)
	if kind != "next" {
		w.t.Fatalf("want data, got %s %+v", kind, r.Errors)
	}
	if len(r.Errors) > 0 {
		w.t.Fatalf("errors in data: %+v", r.Errors)
	}
	if err := json.Unmarshal(r.Data, out); err != nil {
		w.t.Fatalf("decode %s: %v", r.Data, err)
	}
}

// Operations used across the tests.
const (
	createModelOp = `mutation($in: CreateModelInput!) { createModel(input: $in) { id name type status maxWorkers config } }`
	createTaskOp  = `mutation($in: CreateTaskInput!) { createTask(input: $in) { id status type input priority modelID } }`
	setStatusOp   = `mutation($id: ID!, $s: ModelStatus!) { setModelStatus(id: $id, status: $s) { id status } }`
)

type modelView struct {
	ID         gid            `json:"id"`
	Name       string         `json:"name"`
	Type       string         `json:"type"`
	Status     string         `json:"status"`
	MaxWorkers int            `json:"maxWorkers"`
	Config     map[string]any `json:"config"`
}

type taskView struct {
	ID       gid    `json:"id"`
	Status   string `json:"status"`
	Type     string `json:"type"`
	Input    string `json:"input"`
	Priority int    `json:"priority"`
	ModelID  gid    `json:"modelID"`
	Output   string `json:"output"`
}

func createModel(t testing.TB, env *apptest.Env, token string, in map[string]any) modelView {
	t.Helper()
	var out struct{ CreateModel modelView }
	mustData(t, env, token, createModelOp, map[string]any{"in": in}, &out)
	return out.CreateModel
}

func simulator(t testing.TB, env *apptest.Env, name, status string, cfg map[string]any) modelView {
	t.Helper()
	return createModel(t, env, "", map[string]any{"name": name, "type": "SIMULATOR", "status": status, "maxWorkers": 2, "config": cfg})
}

func createTask(t testing.TB, env *apptest.Env, token string, in map[string]any) taskView {
	t.Helper()
	var out struct{ CreateTask taskView }
	mustData(t, env, token, createTaskOp, map[string]any{"in": in}, &out)
	return out.CreateTask
}
