package server_test

import (
	"net/http"
	"testing"

	"github.com/llmsched/llm-scheduler/internal/apptest"
)

// An unavailable dependency answers 503 with Retry-After, like every
// other outage the API reports.
func TestUnavailableHealthSaysWhenToRetry(t *testing.T) {
	e := apptest.New(t, nil)
	if err := e.App.Store.Client.Close(); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, e.URL+"/api/v1/system/health", nil)
	resp, err := e.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("health with the database closed: %d, Retry-After %q; want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}
