package cli

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// Every write the client makes carries Content-Type: application/json (the
// server refuses writes without it, as a CSRF defence), and the API key.
func TestEveryWriteSendsJSONContentType(t *testing.T) {
	var mu sync.Mutex
	var writes []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.Header.Get("Authorization") != "Bearer k1" {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error": {"code": "UNAUTHENTICATED", "message": "no key"}}`))
			return
		}
		if r.Method != http.MethodGet {
			mu.Lock()
			writes = append(writes, r.Method+" "+r.URL.Path+" "+r.Header.Get("Content-Type"))
			mu.Unlock()
		}
		switch {
		case r.URL.Path == "/api/v1/models" && r.Method == http.MethodGet:
			_, _ = w.Write([]byte(`{"data": [{"id": 7, "name": "m", "status": "online"}]}`))
		case strings.HasPrefix(r.URL.Path, "/api/v1/models"):
			_, _ = w.Write([]byte(`{"data": {"id": 7, "name": "m", "status": "online"}}`))
		default:
			_, _ = w.Write([]byte(`{"data": {"id": 9, "status": "pending"}}`))
		}
	}))
	defer srv.Close()
	env := map[string]string{"LLMSCHED_SERVER": srv.URL, "LLMSCHED_API_KEY": "k1"}
	for _, args := range [][]string{
		{"task", "submit", "--model", "m", "hi"},
		{"task", "cancel", "9"},
		{"task", "retry", "9"},
		{"model", "create", "--name", "m", "--type", "simulator"},
		{"model", "online", "m"},
		{"model", "offline", "7"},
	} {
		var out, errb bytes.Buffer
		if code := clientMain(args[0], args[1:], IO{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Getenv: func(k string) string { return env[k] }}); code != ExitOK {
			t.Fatalf("%v: exit %d: %s", args, code, errb.String())
		}
	}
	want := []string{
		"POST /api/v1/tasks application/json",
		"POST /api/v1/tasks/9/cancel application/json",
		"POST /api/v1/tasks/9/retry application/json",
		"POST /api/v1/models application/json",
		"PUT /api/v1/models/7/status application/json",
		"PUT /api/v1/models/7/status application/json",
	}
	if strings.Join(writes, "\n") != strings.Join(want, "\n") {
		t.Fatalf("writes:\n%s\nwant:\n%s", strings.Join(writes, "\n"), strings.Join(want, "\n"))
	}
}
