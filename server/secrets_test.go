package server_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/llmsched/llm-scheduler/internal/app"
	"github.com/llmsched/llm-scheduler/internal/apptest"
	"github.com/llmsched/llm-scheduler/internal/config"
	"github.com/llmsched/llm-scheduler/internal/secrets"
	"github.com/llmsched/llm-scheduler/server"
)

// startCapturing starts a role-all process whose logs, at debug level, go
// to the returned buffer.
func startCapturing(t *testing.T, mutate func(*config.Config)) (*app.App, *config.Config, string, *apptest.SyncBuffer) {
	t.Helper()
	sh := apptest.NewShared(t, mutate)
	cfg := *sh.Config
	logs := &apptest.SyncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, err := app.New(ctx, &cfg, app.RoleAll, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(ctx, server.New, "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := a.Shutdown(ctx); err != nil {
			t.Logf("shutdown: %v", err)
		}
	})
	return a, &cfg, "http://" + a.Addr(), logs
}

func randomToken(prefix string) string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

func TestProviderSecretsNeverLeak(t *testing.T) {
	a, cfg, url, logs := startCapturing(t, nil)
	rec := &recorder{t: t, url: url}
	apiKey := randomToken("sk-leakcheck-")
	headerToken := randomToken("hdr-leakcheck-")
	modelCfg := map[string]any{"api_key": apiKey, "headers": map[string]any{"Authorization": "Bearer " + headerToken}, "latency_ms": 5}
	created, _ := rec.createModel(map[string]any{"name": "secret-sim", "type": "simulator", "max_workers": 2, "config": modelCfg})
	id := created.ID
	// A refused request that carries the secret does not echo it.
	bad, _ := json.Marshal(map[string]any{"name": "bad-sim", "type": "simulator",
		"config": map[string]any{"api_key": apiKey, "latency_ms": -1}})
	if code, resp := rec.do("POST", "/api/v1/models", string(bad)); code != http.StatusBadRequest {
		t.Fatalf("bad model: %d %s", code, resp)
	}
	// Sending the masked config back (as a form would) keeps the secret.
	upd, _ := json.Marshal(map[string]any{"config": created.Config, "description": "edited"})
	if code, resp := rec.do("PUT", fmt.Sprintf("/api/v1/models/%d", id), string(upd)); code != http.StatusOK {
		t.Fatalf("update model: %d %s", code, resp)
	}
	// Tasks run: the worker opens the config to build the provider.
	var taskIDs []int
	for i := range 2 {
		taskIDs = append(taskIDs, rec.submit(fmt.Sprintf(`{"model_id": %d, "type": "text-generation", "input": "hello"}`, id),
			"X-Request-ID", fmt.Sprintf("req-secret-%d", i)))
	}
	for _, tid := range taskIDs {
		rec.waitStatus(tid, "completed")
	}
	rec.readEverything(id)
	for _, secret := range []string{apiKey, headerToken} {
		if strings.Contains(rec.seen.String(), secret) {
			t.Errorf("a response reveals the secret %q:\n%s", secret, rec.seen.String())
		}
		if strings.Contains(logs.String(), secret) {
			t.Errorf("the logs reveal the secret %q:\n%s", secret, logs.String())
		}
	}

	// The database holds the secret sealed, and the configured key opens it.
	stored := storedConfig(t, a, id)
	if strings.Contains(stored, apiKey) || strings.Contains(stored, headerToken) || strings.Count(stored, secrets.Prefix) != 2 {
		t.Fatalf("stored config is not sealed: %s", stored)
	}
	var row map[string]any
	if err := json.Unmarshal([]byte(stored), &row); err != nil {
		t.Fatal(err)
	}
	opened, err := secrets.OpenModelConfig(cfg, row)
	if err != nil {
		t.Fatal(err)
	}
	if opened["api_key"] != apiKey || opened["headers"].(map[string]any)["Authorization"] != "Bearer "+headerToken {
		t.Fatalf("the stored secrets do not open to the originals after two updates: %v", opened["api_key"] == apiKey)
	}
	assertStateChangesLogged(t, logs, id, taskIDs)
}

// recorder sends raw requests to the server and keeps every response's
// status, headers and body, for the leak checks.
type recorder struct {
	t    *testing.T
	url  string
	seen strings.Builder
}

func (r *recorder) do(method, path, body string, headers ...string) (int, string) {
	r.t.Helper()
	code, h, resp := raw(r.t, method, r.url+path, body, headers...)
	fmt.Fprintf(&r.seen, "%s %s -> %d %v\n%s\n", method, path, code, h, resp)
	return code, resp
}

// createModel creates a model and returns it and the raw response.
func (r *recorder) createModel(model map[string]any) (apptest.Model, string) {
	r.t.Helper()
	body, _ := json.Marshal(model)
	code, resp := r.do("POST", "/api/v1/models", string(body))
	if code != http.StatusCreated {
		r.t.Fatalf("create model: %d %s", code, resp)
	}
	var created struct {
		Data apptest.Model `json:"data"`
	}
	if err := json.Unmarshal([]byte(resp), &created); err != nil {
		r.t.Fatal(err)
	}
	return created.Data, resp
}

// submit submits a task and returns its id.
func (r *recorder) submit(body string, headers ...string) int {
	r.t.Helper()
	code, resp := r.do("POST", "/api/v1/tasks", body, headers...)
	if code != http.StatusCreated {
		r.t.Fatalf("submit: %d %s", code, resp)
	}
	var tk struct {
		Data apptest.Task `json:"data"`
	}
	if err := json.Unmarshal([]byte(resp), &tk); err != nil {
		r.t.Fatal(err)
	}
	return tk.Data.ID
}

// waitStatus reads the task until it has the given status, within 30s,
// and returns the last answer.
func (r *recorder) waitStatus(id int, status string) string {
	r.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, resp := r.do("GET", fmt.Sprintf("/api/v1/tasks/%d", id), "")
		if strings.Contains(resp, `"status":"`+status+`"`) {
			return resp
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("task %d did not reach %s: %s", id, status, resp)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// readEverything reads every REST page and GraphQL query that shows model
// id's config or its tasks, each of which must answer.
func (r *recorder) readEverything(id int) {
	r.t.Helper()
	for _, path := range []string{
		"/api/v1/models", fmt.Sprintf("/api/v1/models/%d", id), "/api/v1/tasks", "/api/v1/stats/dashboard",
		"/api/v1/stats/tasks/date", "/api/v1/system/health", "/api/v1/system/config", "/metrics",
		"/monitoring/api/queues", "/",
	} {
		if code, resp := r.do("GET", path, ""); code != http.StatusOK {
			r.t.Errorf("GET %s: %d %s", path, code, resp)
		}
	}
	for _, q := range []string{
		fmt.Sprintf(`{"query":"{ model(id: \"%d\") { id name config } }"}`, id),
		`{"query":"{ models { edges { node { id config } } } }"}`,
		fmt.Sprintf(`{"query":"mutation { updateModel(id: \"%d\", input: {description: \"via graphql\"}) { config } }"}`, id),
	} {
		code, resp := r.do("POST", "/graphql", q)
		if code != http.StatusOK || strings.Contains(resp, `"errors"`) || !strings.Contains(resp, "api_key") {
			r.t.Errorf("graphql %s: %d %s", q, code, resp)
		}
	}
}

// storedConfig is model id's config column as stored.
func storedConfig(t *testing.T, a *app.App, id int) string {
	t.Helper()
	var stored string
	if err := a.Store.DB.QueryRowContext(context.Background(), "SELECT config FROM models WHERE id = ?", id).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	return stored
}

// assertStateChangesLogged: each state change of a task is logged once at
// info, with its model and, for the change an HTTP request caused (task
// i's creation, request req-secret-i), the request's id.
func assertStateChangesLogged(t *testing.T, logs *apptest.SyncBuffer, modelID int, taskIDs []int) {
	t.Helper()
	for i, tid := range taskIDs {
		re := regexp.MustCompile(fmt.Sprintf(`level=INFO msg="task state change" task_id=%d model_id=%d [^\n]*`, tid, modelID))
		lines := re.FindAllString(logs.String(), -1)
		if len(lines) != 3 {
			t.Fatalf("task %d: %d state change lines, want 3 (pending, running, completed):\n%s", tid, len(lines), strings.Join(lines, "\n"))
		}
		if !strings.Contains(lines[0], "to=pending") || !strings.Contains(lines[0], fmt.Sprintf("request_id=req-secret-%d", i)) {
			t.Fatalf("creation line lacks the request id: %s", lines[0])
		}
	}
}

// TestNestedAndURLCredentialsNeverLeak: credentials outside the old
// naming rules (nested auth.token, openaiApiKey, credentials lists,
// bearer, a numeric key, headers, a password in a URL and ?key= in its
// query) are sealed at rest, masked in every answer, survive an update
// that sends them back masked, and never reach a task's error or the log,
// even from an upstream that echoes the request it got.
func TestNestedAndURLCredentialsNeverLeak(t *testing.T) {
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"error":{"message":"bad request %s auth=%q body=%s"}}`, r.URL.String(), r.Header.Get("X-Token"), body)
	}))
	t.Cleanup(echo.Close)
	a, _, url, logs := startCapturing(t, func(c *config.Config) { c.Queue.MaxRetries = 0 })

	nested := randomToken("nested-")
	camel := randomToken("camel-")
	listed := randomToken("listed-")
	bearerTok := randomToken("bearer-")
	header := randomToken("header-")
	query := randomToken("query")
	password := randomToken("pw")
	numeric := 987654321987654.0
	cfg := map[string]any{
		"url":           strings.Replace(echo.URL, "http://", "http://svc:"+password+"@", 1) + "/gen?key=" + query + "&mode=x",
		"body":          map[string]any{"prompt": "{{prompt}}"},
		"response_path": "text",
		"headers":       map[string]any{"X-Token": header},
		"auth":          map[string]any{"token": nested, "scheme": "basic"},
		"openaiApiKey":  camel,
		"credentials":   []any{map[string]any{"id": "a", "secret": listed}},
		"bearer":        bearerTok,
		"pin_token":     numeric,
	}
	secretsList := []string{nested, camel, listed, bearerTok, header, query, password, "987654321987654"}

	rec := &recorder{t: t, url: url}
	created, resp := rec.createModel(map[string]any{"name": "nested-secrets", "type": "custom", "max_workers": 1, "config": cfg})
	id := created.ID
	if !strings.Contains(resp, "svc:****@") || !strings.Contains(resp, "gen?key=****&mode=x") || !strings.Contains(resp, "mode=x") {
		t.Errorf("the URL is not shown with its credentials masked and the rest kept: %s", resp)
	}
	// Sent back masked (as a form would), everything is kept.
	upd, _ := json.Marshal(map[string]any{"config": created.Config, "description": "edited"})
	if code, resp := rec.do("PUT", fmt.Sprintf("/api/v1/models/%d", id), string(upd)); code != http.StatusOK {
		t.Fatalf("update with the masked config: %d %s", code, resp)
	}
	tid := rec.submit(fmt.Sprintf(`{"model_id": %d, "type": "text-generation", "input": "hi"}`, id))
	if resp := rec.waitStatus(tid, "failed"); !strings.Contains(resp, "[redacted]") {
		t.Errorf("the echoed request should reach the task error redacted: %s", resp)
	}
	rec.do("GET", fmt.Sprintf("/api/v1/models/%d", id), "")
	rec.do("POST", "/graphql", fmt.Sprintf(`{"query":"{ model(id: \"%d\") { config } task(id: \"%d\") { error } }"}`, id, tid))

	stored := storedConfig(t, a, id)
	for _, s := range secretsList {
		if strings.Contains(rec.seen.String(), s) {
			t.Errorf("an answer reveals %q:\n%s", s, rec.seen.String())
		}
		if strings.Contains(logs.String(), s) {
			t.Errorf("the log reveals %q", s)
		}
		if strings.Contains(stored, s) {
			t.Errorf("the stored config holds %q in plaintext: %s", s, stored)
		}
	}
}
