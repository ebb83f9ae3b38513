package server_test

import (
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/llmsched/llm-scheduler/internal/apptest"
)

// get fetches path and returns the status, the Content-Type and the body.
func get(t *testing.T, e *apptest.Env, method, path string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, e.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := e.HTTP.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

func TestDashboardServesTheAppAndClientRoutes(t *testing.T) {
	e := apptest.New(t, nil)

	code, h, index := get(t, e, "GET", "/")
	if code != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), "text/html") {
		t.Fatalf("GET / = %d %q", code, h.Get("Content-Type"))
	}
	if !strings.Contains(index, `<div id="root"></div>`) || !strings.Contains(index, "<title>LLM Scheduler</title>") {
		t.Fatalf("GET / is not the dashboard's index.html:\n%s", index)
	}
	if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("index.html has no script CSP: %q", csp)
	}

	// Client routes load the same page, so a reload or a shared link works.
	for _, p := range []string{"/tasks", "/tasks/3", "/models/new", "/models/1/edit", "/system", "/index.html"} {
		code, h, body := get(t, e, "GET", p)
		if code != http.StatusOK || body != index || h.Get("Cache-Control") != "no-cache" {
			t.Errorf("GET %s = %d, cache %q, same index: %v", p, code, h.Get("Cache-Control"), body == index)
		}
	}

	// The hashed assets the page names are served, cacheable forever.
	assets := regexp.MustCompile(`/assets/[A-Za-z0-9_.-]+\.(js|css)`).FindAllString(index, -1)
	if len(assets) < 2 {
		t.Fatalf("index.html names no script and stylesheet: %v", assets)
	}
	for _, a := range assets {
		code, h, body := get(t, e, "GET", a)
		if code != http.StatusOK || len(body) == 0 || !strings.Contains(h.Get("Cache-Control"), "immutable") {
			t.Errorf("GET %s = %d (%d bytes), cache %q", a, code, len(body), h.Get("Cache-Control"))
		}
		wantType := map[bool]string{true: "text/javascript", false: "text/css"}[strings.HasSuffix(a, ".js")]
		if !strings.HasPrefix(h.Get("Content-Type"), wantType) {
			t.Errorf("GET %s Content-Type = %q, want %s", a, h.Get("Content-Type"), wantType)
		}
	}
	if code, _, _ := get(t, e, "HEAD", "/tasks"); code != http.StatusOK {
		t.Errorf("HEAD /tasks = %d", code)
	}
}

func TestDashboardNeverShadowsTheAPI(t *testing.T) {
	e := apptest.New(t, nil)
	for _, tc := range []struct {
		desc, method, path string
		want               int
	}{
		{"unknown REST path", "GET", "/api/v1/nope", http.StatusNotFound},
		{"unknown API root", "GET", "/api/", http.StatusNotFound},
		{"missing asset", "GET", "/assets/index-gone.js", http.StatusNotFound},
		{"metrics subpath", "GET", "/metrics/x", http.StatusNotFound},
		{"write to the app", "POST", "/tasks", http.StatusMethodNotAllowed},
	} {
		code, h, body := get(t, e, tc.method, tc.path)
		if code != tc.want || strings.Contains(body, `<div id="root">`) {
			t.Errorf("%s: %s %s = %d (%s), want %d and no index.html", tc.desc, tc.method, tc.path, code, h.Get("Content-Type"), tc.want)
		}
	}
	// The real routes still answer.
	if code, _, body := get(t, e, "GET", "/api/v1/system/health"); code != http.StatusOK || !strings.Contains(body, `"database"`) {
		t.Errorf("GET /api/v1/system/health = %d %s", code, body)
	}
	var gql struct {
		Data struct {
			SystemHealth struct{ Status string } `json:"systemHealth"`
		} `json:"data"`
	}
	if code := e.Do("POST", "/graphql", map[string]any{"query": "{ systemHealth { status } }"}, &gql); code != http.StatusOK || gql.Data.SystemHealth.Status != "ok" {
		t.Errorf("POST /graphql = %d %+v", code, gql)
	}
	if code, _, body := get(t, e, "GET", "/playground"); code != http.StatusOK || strings.Contains(body, `<div id="root"></div>`) {
		t.Errorf("GET /playground = %d, dashboard: %v", code, strings.Contains(body, `<div id="root"></div>`))
	}
}
