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
	apiKey := randomToken("sk-leakcheck-")
	headerToken := randomToken("hdr-leakcheck-")
	var seen strings.Builder // every response body and header
	do := func(method, path, body string, headers ...string) (int, string) {
		t.Helper()
		code, h, resp := raw(t, method, url+path, body, headers...)
		fmt.Fprintf(&seen, "%s %s -> %d %v\n%s\n", method, path, code, h, resp)
		return code, resp
	}
	modelCfg := map[string]any{"api_key": apiKey, "headers": map[string]any{"Authorization": "Bearer " + headerToken}, "latency_ms": 5}
	body, _ := json.Marshal(map[string]any{"name": "secret-sim", "type": "simulator", "max_workers": 2, "config": modelCfg})
	code, resp := do("POST", "/api/v1/models", string(body))
	if code != http.StatusCreated {
		t.Fatalf("create model: %d %s", code, resp)
	}
	var created struct {
		Data apptest.Model `json:"data"`
	}
	if err := json.Unmarshal([]byte(resp), &created); err != nil {
		t.Fatal(err)
	}
	id := created.Data.ID
	// A refused request that carries the secret does not echo it.
	bad, _ := json.Marshal(map[string]any{"name": "bad-sim", "type": "simulator",
		"config": map[string]any{"api_key": apiKey, "latency_ms": -1}})
	if code, resp := do("POST", "/api/v1/models", string(bad)); code != http.StatusBadRequest {
		t.Fatalf("bad model: %d %s", code, resp)
	}
	// Sending the masked config back (as a form would) keeps the secret.
	upd, _ := json.Marshal(map[string]any{"config": created.Data.Config, "description": "edited"})
	if code, resp := do("PUT", fmt.Sprintf("/api/v1/models/%d", id), string(upd)); code != http.StatusOK {
		t.Fatalf("update model: %d %s", code, resp)
	}
	// Tasks run: the worker opens the config to build the provider.
	var taskIDs []int
	for i := range 2 {
		code, resp := do("POST", "/api/v1/tasks", fmt.Sprintf(`{"model_id": %d, "type": "text-generation", "input": "hello"}`, id),
			"X-Request-ID", fmt.Sprintf("req-secret-%d", i))
		if code != http.StatusCreated {
			t.Fatalf("submit: %d %s", code, resp)
		}
		var tk struct {
			Data apptest.Task `json:"data"`
		}
		if err := json.Unmarshal([]byte(resp), &tk); err != nil {
			t.Fatal(err)
		}
		taskIDs = append(taskIDs, tk.Data.ID)
	}
	for _, tid := range taskIDs {
		deadline := time.Now().Add(30 * time.Second)
		for {
			_, resp := do("GET", fmt.Sprintf("/api/v1/tasks/%d", tid), "")
			if strings.Contains(resp, `"status":"completed"`) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("task %d did not complete: %s", tid, resp)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for _, path := range []string{
		"/api/v1/models", fmt.Sprintf("/api/v1/models/%d", id), "/api/v1/tasks", "/api/v1/stats/dashboard",
		"/api/v1/stats/tasks/date", "/api/v1/system/health", "/api/v1/system/config", "/metrics",
		"/monitoring/api/queues", "/",
	} {
		if code, resp := do("GET", path, ""); code != http.StatusOK {
			t.Errorf("GET %s: %d %s", path, code, resp)
		}
	}
	for _, q := range []string{
		fmt.Sprintf(`{"query":"{ model(id: \"%d\") { id name config } }"}`, id),
		`{"query":"{ models { edges { node { id config } } } }"}`,
		fmt.Sprintf(`{"query":"mutation { updateModel(id: \"%d\", input: {description: \"via graphql\"}) { config } }"}`, id),
	} {
		code, resp := do("POST", "/graphql", q)
		if code != http.StatusOK || strings.Contains(resp, `"errors"`) || !strings.Contains(resp, "api_key") {
			t.Errorf("graphql %s: %d %s", q, code, resp)
		}
	}
	for _, secret := range []string{apiKey, headerToken} {
		if strings.Contains(seen.String(), secret) {
			t.Errorf("a response reveals the secret %q:\n%s", secret, seen.String())
		}
		if strings.Contains(logs.String(), secret) {
			t.Errorf("the logs reveal the secret %q:\n%s", secret, logs.String())
		}
	}

	// The database holds the secret sealed, and the configured key opens it.
	var stored string
	if err := a.Store.DB.QueryRowContext(context.Background(), "SELECT config FROM models WHERE id = ?", id).Scan(&stored); err != nil {
		t.Fatal(err)
	}
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

	// Each state change of a task is logged once at info, with its model
	// and, for the change an HTTP request caused, the request's id.
	for i, tid := range taskIDs {
		re := regexp.MustCompile(fmt.Sprintf(`level=INFO msg="task state change" task_id=%d model_id=%d [^\n]*`, tid, id))
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

	var seen strings.Builder
	do := func(method, path, body string) (int, string) {
		t.Helper()
		code, h, resp := raw(t, method, url+path, body)
		fmt.Fprintf(&seen, "%s %s -> %d %v\n%s\n", method, path, code, h, resp)
		return code, resp
	}
	body, _ := json.Marshal(map[string]any{"name": "nested-secrets", "type": "custom", "max_workers": 1, "config": cfg})
	code, resp := do("POST", "/api/v1/models", string(body))
	if code != http.StatusCreated {
		t.Fatalf("create model: %d %s", code, resp)
	}
	var created struct {
		Data apptest.Model `json:"data"`
	}
	if err := json.Unmarshal([]byte(resp), &created); err != nil {
		t.Fatal(err)
	}
	id := created.Data.ID
	if !strings.Contains(resp, "svc:****@") || !strings.Contains(resp, "gen?key=****&mode=x") || !strings.Contains(resp, "mode=x") {
		t.Errorf("the URL is not shown with its credentials masked and the rest kept: %s", resp)
	}
	// Sent back masked (as a form would), everything is kept.
	upd, _ := json.Marshal(map[string]any{"config": created.Data.Config, "description": "edited"})
	if code, resp := do("PUT", fmt.Sprintf("/api/v1/models/%d", id), string(upd)); code != http.StatusOK {
		t.Fatalf("update with the masked config: %d %s", code, resp)
	}
	code, resp = do("POST", "/api/v1/tasks", fmt.Sprintf(`{"model_id": %d, "type": "text-generation", "input": "hi"}`, id))
	if code != http.StatusCreated {
		t.Fatalf("submit: %d %s", code, resp)
	}
	var tk struct {
		Data apptest.Task `json:"data"`
	}
	if err := json.Unmarshal([]byte(resp), &tk); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, resp := do("GET", fmt.Sprintf("/api/v1/tasks/%d", tk.Data.ID), "")
		if strings.Contains(resp, `"status":"failed"`) {
			if !strings.Contains(resp, "[redacted]") {
				t.Errorf("the echoed request should reach the task error redacted: %s", resp)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("task did not fail: %s", resp)
		}
		time.Sleep(20 * time.Millisecond)
	}
	do("GET", fmt.Sprintf("/api/v1/models/%d", id), "")
	do("POST", "/graphql", fmt.Sprintf(`{"query":"{ model(id: \"%d\") { config } task(id: \"%d\") { error } }"}`, id, tk.Data.ID))

	var stored string
	if err := a.Store.DB.QueryRowContext(context.Background(), "SELECT config FROM models WHERE id = ?", id).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	for _, s := range secretsList {
		if strings.Contains(seen.String(), s) {
			t.Errorf("an answer reveals %q:\n%s", s, seen.String())
		}
		if strings.Contains(logs.String(), s) {
			t.Errorf("the log reveals %q", s)
		}
		if strings.Contains(stored, s) {
			t.Errorf("the stored config holds %q in plaintext: %s", s, stored)
		}
	}
}
