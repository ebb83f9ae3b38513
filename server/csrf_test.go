package server_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/llmsched/llm-scheduler/internal/apptest"
)

// send makes one request with exactly the given headers (no default
// Content-Type) and returns the status and body.
func send(t *testing.T, e *apptest.Env, method, path, body string, headers ...string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := e.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// A web page on another site can make a browser send form and text/plain
// POSTs (and body-less ones) without a preflight; none of them may act.
func TestCrossSiteRequestsCannotAct(t *testing.T) {
	e := apptest.New(t, nil)
	model := `{"name": "csrf-%d", "type": "simulator", "config": {}}`
	models := func() int {
		var out struct{ Data []any }
		e.Do("GET", "/api/v1/models", nil, &out)
		return len(out.Data)
	}
	before := models()
	for i, tc := range []struct {
		desc    string
		path    string
		body    string
		headers []string
		status  int
	}{
		{"text/plain form (enctype=text/plain)", "/api/v1/models", model, []string{"Content-Type", "text/plain", "Origin", "https://evil.example"}, 415},
		{"url-encoded form", "/api/v1/models", "name=x&type=simulator", []string{"Content-Type", "application/x-www-form-urlencoded"}, 415},
		{"multipart form", "/api/v1/models", "--b\r\n\r\nx\r\n--b--", []string{"Content-Type", "multipart/form-data; boundary=b"}, 415},
		{"no Content-Type with a body", "/api/v1/models", model, nil, 415},
		{"text/plain GraphQL mutation", "/graphql", `{"query": "mutation { createModel(input: {name: \"csrf-gql\", type: SIMULATOR}) { id } }"}`, []string{"Content-Type", "text/plain"}, 415},
	} {
		status, body := send(t, e, "POST", tc.path, fmt.Sprintf(tc.body, i), tc.headers...)
		if status != tc.status || !strings.Contains(body, "UNSUPPORTED_MEDIA_TYPE") {
			t.Errorf("%s: %d %s, want %d UNSUPPORTED_MEDIA_TYPE", tc.desc, status, body, tc.status)
		}
	}
	if n := models(); n != before {
		t.Fatalf("refused requests created models: %d -> %d", before, n)
	}

	// Body-less state changes: refused cross-site, allowed same-site and
	// from clients without an Origin (curl).
	m := e.Simulator("csrf-target", 1, nil)
	setOffline := func() {
		e.Do("PUT", fmt.Sprintf("/api/v1/models/%d/status", m.ID), map[string]any{"status": "offline"}, nil)
	}
	setOffline()
	task := e.Submit(map[string]any{"model_id": m.ID, "type": "text-generation", "input": "x"})
	path := fmt.Sprintf("/api/v1/tasks/%d", task.ID)
	if status, body := send(t, e, "DELETE", path, "", "Origin", "https://evil.example"); status != http.StatusForbidden {
		t.Fatalf("cross-site DELETE: %d %s", status, body)
	}
	if status, body := send(t, e, "DELETE", path, "", "Sec-Fetch-Site", "cross-site"); status != http.StatusForbidden {
		t.Fatalf("DELETE marked cross-site: %d %s", status, body)
	}
	if got := e.Task(task.ID).Status; got != "pending" {
		t.Fatalf("refused cancel changed the task: %s", got)
	}
	if status, body := send(t, e, "DELETE", path, "", "Origin", e.URL); status != http.StatusOK {
		t.Fatalf("same-origin DELETE: %d %s", status, body)
	}
	if status, body := send(t, e, "POST", path+"/retry", ""); status != http.StatusOK && status != http.StatusCreated {
		t.Fatalf("curl-style POST without body: %d %s", status, body)
	}

	// JSON, and a custom header with any body type, pass.
	if status, body := send(t, e, "POST", "/api/v1/models", fmt.Sprintf(model, 100), "Content-Type", "application/json; charset=utf-8"); status != http.StatusCreated {
		t.Fatalf("JSON POST: %d %s", status, body)
	}
	if status, body := send(t, e, "POST", "/api/v1/models", fmt.Sprintf(model, 101), "Content-Type", "text/plain", "X-Requested-With", "XMLHttpRequest"); status != http.StatusCreated {
		t.Fatalf("POST with X-Requested-With: %d %s", status, body)
	}
}
