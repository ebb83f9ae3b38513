package server_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/llmsched/llm-scheduler/internal/apikeys"
	"github.com/llmsched/llm-scheduler/internal/app"
	"github.com/llmsched/llm-scheduler/internal/apptest"
	"github.com/llmsched/llm-scheduler/internal/config"
)

const allowedOrigin = "https://dash.example.test"

// authEnv is a process with auth on and one key per role.
type authEnv struct {
	*apptest.Env
	keys    map[string]string // role -> key
	keyIDs  map[string]int
	svc     *apikeys.Service
	modelID int
}

func setupAuth(t *testing.T) *authEnv {
	t.Helper()
	sh := apptest.NewShared(t, func(c *config.Config) {
		on := true
		c.Auth.Enabled = &on
		c.Server.CORSOrigins = []string{allowedOrigin}
	})
	e := sh.Start(t, app.RoleAll)
	a := &authEnv{Env: e, keys: map[string]string{}, keyIDs: map[string]int{}, svc: apikeys.New(e.App.Store.Client)}
	for _, role := range []string{"admin", "operator", "submitter", "viewer"} {
		c, err := a.svc.Create(context.Background(), role+" key", role)
		if err != nil {
			t.Fatal(err)
		}
		a.keys[role], a.keyIDs[role] = c.Secret, c.Key.ID
	}
	var out struct {
		Data apptest.Model `json:"data"`
	}
	// An offline model keeps tasks pending, so that cancel has something to do.
	body := map[string]any{"name": "auth-sim", "type": "simulator", "max_workers": 1, "status": "offline",
		"config": map[string]any{"latency_ms": 1}}
	if code := e.Do("POST", "/api/v1/models", body, &out, "Authorization", "Bearer "+a.keys["admin"]); code != http.StatusCreated {
		t.Fatalf("admin creates a model: status %d", code)
	}
	a.modelID = out.Data.ID
	return a
}

// submit creates a pending task with role's key and returns its id.
func (a *authEnv) submit(t *testing.T, role string) int {
	t.Helper()
	var out struct {
		Data apptest.Task `json:"data"`
	}
	body := map[string]any{"model_id": a.modelID, "type": "text-generation", "input": "hi"}
	if code := a.Do("POST", "/api/v1/tasks", body, &out, "Authorization", "Bearer "+a.keys[role]); code != http.StatusCreated {
		t.Fatalf("%s submits: status %d", role, code)
	}
	return out.Data.ID
}

// raw sends a request and returns the status, headers and body.
func raw(t *testing.T, method, url, body string, headers ...string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

func TestRESTRoles(t *testing.T) {
	a := setupAuth(t)
	type endpoint struct {
		method string
		path   func() string // built per call: some need a fresh task
		body   string
		roles  []string // allowed; every other role gets 403
	}
	fixed := func(p string) func() string { return func() string { return p } }
	task := func(suffix string) func() string {
		return func() string { return fmt.Sprintf("/api/v1/tasks/%d%s", a.submit(t, "admin"), suffix) }
	}
	failedTask := func() string {
		id := a.submit(t, "admin")
		if code := a.Do("DELETE", fmt.Sprintf("/api/v1/tasks/%d", id), nil, nil, "Authorization", "Bearer "+a.keys["admin"]); code != http.StatusOK {
			t.Fatalf("cancel: %d", code)
		}
		return fmt.Sprintf("/api/v1/tasks/%d/retry", id)
	}
	all := []string{"admin", "operator", "submitter", "viewer"}
	model := fmt.Sprintf("/api/v1/models/%d", a.modelID)
	taskBody := fmt.Sprintf(`{"model_id": %d, "type": "text-generation", "input": "hello"}`, a.modelID)
	for _, ep := range []endpoint{
		{"POST", fixed("/api/v1/tasks"), taskBody, []string{"admin", "operator", "submitter"}},
		{"GET", fixed("/api/v1/tasks"), "", all},
		{"GET", task(""), "", []string{"admin", "operator", "viewer"}}, // a submitter sees only its own tasks
		{"DELETE", task(""), "", []string{"admin", "operator"}},
		{"POST", task("/cancel"), "", []string{"admin", "operator"}},
		{"POST", failedTask, "", []string{"admin", "operator"}},
		{"GET", fixed("/api/v1/models"), "", all},
		{"GET", fixed(model), "", all},
		{"POST", fixed("/api/v1/models"), `{"name": "x-%s", "type": "simulator", "config": {}}`, []string{"admin"}},
		{"PUT", fixed(model), `{"description": "changed"}`, []string{"admin"}},
		{"PUT", fixed(model + "/status"), `{"status": "offline"}`, []string{"admin", "operator"}},
		{"GET", fixed("/api/v1/stats/dashboard"), "", all},
		{"GET", fixed("/api/v1/stats/tasks/date?days=3"), "", all},
		{"GET", fixed("/metrics"), "", []string{"admin"}},
		{"GET", fixed("/monitoring/"), "", []string{"admin"}},
	} {
		for _, role := range all {
			allowed := false
			for _, r := range ep.roles {
				allowed = allowed || r == role
			}
			path := ep.path()
			name := ep.method + " " + path + " as " + role
			body := ep.body
			if strings.Contains(body, "%s") {
				body = fmt.Sprintf(body, role)
			}
			code, _, resp := raw(t, ep.method, a.URL+path, body, "Authorization", "Bearer "+a.keys[role])
			switch {
			case allowed && (code < 200 || code > 299):
				// Every request here is valid for a role that may make it:
				// a 400 or 404 would hide a refusal as well as a 403 would.
				t.Errorf("%s: status %d, want it allowed (2xx): %s", name, code, resp)
			case !allowed && role == "submitter" && ep.method == "GET" && strings.HasPrefix(path, "/api/v1/tasks/"):
				// Another key's task is hidden from a submitter as not found.
				if code != http.StatusNotFound {
					t.Errorf("%s: status %d, want 404 (another key's task): %s", name, code, resp)
				}
			case !allowed && (code != http.StatusForbidden || !strings.Contains(resp, "FORBIDDEN")):
				t.Errorf("%s: status %d, want 403 FORBIDDEN: %s", name, code, resp)
			}
		}
		// Without a key, and with a wrong one, nothing but health answers.
		for _, hdr := range []string{"", "Bearer lls_not-a-real-key"} {
			code, _, resp := raw(t, ep.method, a.URL+ep.path(), ep.body, "Authorization", hdr)
			if code != http.StatusUnauthorized || !strings.Contains(resp, "UNAUTHENTICATED") {
				t.Errorf("%s %s with Authorization %q: status %d, want 401: %s", ep.method, ep.path(), hdr, code, resp)
			}
		}
	}
	if code, _, _ := raw(t, "GET", a.URL+"/api/v1/system/health", ""); code != http.StatusOK {
		t.Errorf("health without a key: %d, want 200 (load balancers probe it)", code)
	}
}

func TestSubmitterSeesOnlyOwnTasks(t *testing.T) {
	a := setupAuth(t)
	mine := a.submit(t, "submitter")
	theirs := a.submit(t, "operator")
	var list struct {
		Data []apptest.Task `json:"data"`
	}
	if code := a.Do("GET", "/api/v1/tasks", nil, &list, "Authorization", "Bearer "+a.keys["submitter"]); code != http.StatusOK {
		t.Fatalf("list: %d", code)
	}
	if len(list.Data) != 1 || list.Data[0].ID != mine {
		t.Fatalf("submitter lists %+v, want only task %d", list.Data, mine)
	}
	if code := a.Do("GET", fmt.Sprintf("/api/v1/tasks/%d", theirs), nil, nil, "Authorization", "Bearer "+a.keys["submitter"]); code != http.StatusNotFound {
		t.Fatalf("submitter reads another key's task: %d, want 404", code)
	}
	if code := a.Do("GET", "/api/v1/tasks", nil, &list, "Authorization", "Bearer "+a.keys["viewer"]); code != http.StatusOK || len(list.Data) != 2 {
		t.Fatalf("viewer lists %d tasks (status %d), want both", len(list.Data), code)
	}
}

func TestRevokedKeyStopsAtOnce(t *testing.T) {
	a := setupAuth(t)
	auth := "Bearer " + a.keys["operator"]
	if code := a.Do("GET", "/api/v1/tasks", nil, nil, "Authorization", auth); code != http.StatusOK {
		t.Fatalf("before revoke: %d", code)
	}
	if _, err := a.svc.Revoke(context.Background(), a.keyIDs["operator"]); err != nil {
		t.Fatal(err)
	}
	var eb apptest.ErrorBody
	if code := a.Do("GET", "/api/v1/tasks", nil, &eb, "Authorization", auth); code != http.StatusUnauthorized || !strings.Contains(eb.Error.Message, "revoked") {
		t.Fatalf("right after revoke: %d %+v, want 401 revoked", code, eb)
	}
	// The other keys still work.
	if code := a.Do("GET", "/api/v1/tasks", nil, nil, "Authorization", "Bearer "+a.keys["viewer"]); code != http.StatusOK {
		t.Fatalf("another key after revoke: %d", code)
	}
	// GraphQL refuses it too.
	code, _, body := raw(t, "POST", a.URL+"/graphql", `{"query":"{ dashboardStats { totalTasks } }"}`, "Authorization", auth)
	if code != http.StatusOK || !strings.Contains(body, "UNAUTHENTICATED") {
		t.Fatalf("graphql with a revoked key: %d %s", code, body)
	}
}

func TestGraphQLRoles(t *testing.T) {
	a := setupAuth(t)
	query := func(role, q string) string {
		t.Helper()
		_, _, body := raw(t, "POST", a.URL+"/graphql", q, "Authorization", "Bearer "+a.keys[role])
		return body
	}
	read := `{"query":"{ dashboardStats { totalTasks } }"}`
	submit := fmt.Sprintf(`{"query":"mutation { createTask(input: {modelID: \"%d\", type: TEXT_GENERATION, input: \"hi\"}) { id } }"}`, a.modelID)
	create := `{"query":"mutation { createModel(input: {name: \"gql-%s\", type: SIMULATOR, config: {}}) { id } }"}`
	for _, tc := range []struct {
		desc, role, body string
		allowed          bool
	}{
		{"viewer reads", "viewer", read, true},
		{"viewer cannot submit", "viewer", submit, false},
		{"submitter submits", "submitter", submit, true},
		{"operator cannot create a model", "operator", fmt.Sprintf(create, "op"), false},
		{"admin creates a model", "admin", fmt.Sprintf(create, "admin"), true},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			body := query(tc.role, tc.body)
			if tc.allowed == strings.Contains(body, `"errors"`) {
				t.Fatalf("%s: %s", tc.role, body)
			}
			if !tc.allowed && !strings.Contains(body, "FORBIDDEN") {
				t.Fatalf("refusal is not FORBIDDEN: %s", body)
			}
		})
	}
}

func TestAdminSurfacesAcceptBasicAuthForBrowsers(t *testing.T) {
	a := setupAuth(t)
	code, h, _ := raw(t, "GET", a.URL+"/metrics", "")
	if code != http.StatusUnauthorized || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Basic ") {
		t.Fatalf("/metrics without a key: %d, WWW-Authenticate %q", code, h.Get("WWW-Authenticate"))
	}
	basic := func(key string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte("me:"+key))
	}
	if code, _, body := raw(t, "GET", a.URL+"/metrics", "", "Authorization", basic(a.keys["admin"])); code != http.StatusOK || !strings.Contains(body, "llmsched_tasks") {
		t.Fatalf("/metrics with admin Basic auth: %d", code)
	}
	if code, _, _ := raw(t, "GET", a.URL+"/metrics", "", "Authorization", basic(a.keys["operator"])); code != http.StatusForbidden {
		t.Fatalf("/metrics with operator Basic auth: %d, want 403", code)
	}
	// Basic credentials are replayed by browsers: a cross-site write is refused.
	code, _, _ = raw(t, "POST", a.URL+"/metrics", "", "Authorization", basic(a.keys["admin"]), "Origin", "https://evil.example")
	if code != http.StatusForbidden && code != http.StatusMethodNotAllowed {
		t.Fatalf("cross-site POST with Basic auth: %d", code)
	}
}

func TestCORSAllowlist(t *testing.T) {
	a := setupAuth(t)
	for _, tc := range []struct {
		desc, origin string
		allowed      bool
	}{
		{"allowed origin", allowedOrigin, true},
		{"other origin", "https://evil.example", false},
		{"null origin", "null", false},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			code, h, _ := raw(t, "OPTIONS", a.URL+"/api/v1/tasks", "", "Origin", tc.origin,
				"Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "authorization")
			got := h.Get("Access-Control-Allow-Origin")
			if tc.allowed && (got != tc.origin || code != http.StatusNoContent || !strings.Contains(h.Get("Access-Control-Allow-Headers"), "Authorization")) {
				t.Fatalf("preflight from %s: %d, Allow-Origin %q", tc.origin, code, got)
			}
			if !tc.allowed && (got != "" || h.Get("Access-Control-Allow-Methods") != "" || h.Get("Access-Control-Allow-Credentials") != "") {
				t.Fatalf("preflight from %s got CORS headers: %v", tc.origin, h)
			}
			_, h, _ = raw(t, "GET", a.URL+"/api/v1/tasks", "", "Origin", tc.origin, "Authorization", "Bearer "+a.keys["viewer"])
			if got := h.Get("Access-Control-Allow-Origin"); (got != "") != tc.allowed {
				t.Fatalf("GET from %s: Allow-Origin %q", tc.origin, got)
			}
		})
	}
}

func TestWebsocketOriginAllowlist(t *testing.T) {
	a := setupAuth(t)
	wsURL := "ws" + strings.TrimPrefix(a.URL, "http") + "/graphql"
	dial := func(origin string) (*websocket.Conn, *http.Response, error) {
		d := websocket.Dialer{Subprotocols: []string{"graphql-transport-ws"}, HandshakeTimeout: 5 * time.Second}
		return d.Dial(wsURL, http.Header{"Origin": {origin}})
	}
	if c, resp, err := dial("https://evil.example"); err == nil {
		c.Close()
		t.Fatal("a websocket from a disallowed origin was accepted")
	} else if resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("disallowed origin: %v, want a 403 handshake refusal", err)
	}
	c, _, err := dial(allowedOrigin)
	if err != nil {
		t.Fatalf("allowed origin: %v", err)
	}
	defer c.Close()
	// With auth on, connection_init must carry a valid key.
	if err := c.WriteJSON(map[string]any{"type": "connection_init", "payload": map[string]any{"Authorization": "Bearer " + a.keys["viewer"]}}); err != nil {
		t.Fatal(err)
	}
	var ack map[string]any
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if err := c.ReadJSON(&ack); err != nil || ack["type"] != "connection_ack" {
		t.Fatalf("connection_init with a viewer key: %v %v", ack, err)
	}
}

func TestSecurityHeaders(t *testing.T) {
	a := setupAuth(t)
	for _, path := range []string{"/", "/api/v1/system/health"} {
		_, h, _ := raw(t, "GET", a.URL+path, "")
		for k, want := range map[string]string{
			"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
		} {
			if got := h.Get(k); got != want {
				t.Errorf("%s: %s = %q, want %q", path, k, got, want)
			}
		}
		if h.Get("X-Request-ID") == "" {
			t.Errorf("%s: no X-Request-ID", path)
		}
	}
	_, h, _ := raw(t, "GET", a.URL+"/", "")
	csp := h.Get("Content-Security-Policy")
	for _, d := range []string{"default-src 'self'", "script-src 'self'", "frame-ancestors 'none'", "object-src 'none'"} {
		if !strings.Contains(csp, d) {
			t.Errorf("dashboard CSP %q lacks %q", csp, d)
		}
	}
}

func TestAuthOffActsAsAdmin(t *testing.T) {
	e := apptest.New(t, nil) // app.env test: auth off by default
	if code := e.Do("GET", "/metrics", nil, nil); code != http.StatusOK {
		t.Fatalf("/metrics with auth off: %d", code)
	}
	if code := e.Do("POST", "/api/v1/models", map[string]any{"name": "m", "type": "simulator", "config": map[string]any{}}, nil); code != http.StatusCreated {
		t.Fatalf("create model with auth off: %d", code)
	}
}
