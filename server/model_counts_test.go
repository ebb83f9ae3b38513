package server_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/llmsched/llm-scheduler/internal/apptest"
)

// TestModelChangesAnswerLiveCounts: PUT /models/{id} and PUT
// /models/{id}/status answer the model's running and queued counts as GET
// does, not zeros.
func TestModelChangesAnswerLiveCounts(t *testing.T) {
	e := apptest.New(t, nil)
	m := e.Simulator("busy", 1, map[string]any{"latency_ms": 60000, "output_tokens": 1})
	first := e.Submit(map[string]any{"model_id": m.ID, "type": "text-generation", "input": "one"})
	e.Submit(map[string]any{"model_id": m.ID, "type": "text-generation", "input": "two"})
	e.WaitTask(first.ID, "running", 30*time.Second)
	var got struct{ Data apptest.Model }
	path := fmt.Sprintf("/api/v1/models/%d", m.ID)
	if code := e.Do("GET", path, nil, &got); code != http.StatusOK || got.Data.Running != 1 || got.Data.Queued != 1 {
		t.Fatalf("GET: status %d running %d queued %d, want 1 and 1", code, got.Data.Running, got.Data.Queued)
	}
	for _, put := range []struct {
		path string
		body map[string]any
	}{
		{path, map[string]any{"description": "still busy"}},
		{path + "/status", map[string]any{"status": "online"}},
	} {
		got.Data = apptest.Model{}
		if code := e.Do("PUT", put.path, put.body, &got); code != http.StatusOK || got.Data.Running != 1 || got.Data.Queued != 1 {
			t.Errorf("PUT %s: status %d running %d queued %d, want 1 and 1 as GET says", put.path, code, got.Data.Running, got.Data.Queued)
		}
	}
}
