package server_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/llmsched/llm-scheduler/internal/apptest"
	"github.com/llmsched/llm-scheduler/internal/config"
)

// scrape reads /metrics and returns the families by name.
func scrape(t *testing.T, e *apptest.Env) map[string]*dto.MetricFamily {
	t.Helper()
	code, _, body := raw(t, "GET", e.URL+"/metrics", "")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d %s", code, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// value returns the value of the series of family name whose labels include
// labels (pairs), and whether it exists. Histograms give their count.
func value(fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
	for _, m := range f.Metric {
		got := map[string]string{}
		for _, l := range m.Label {
			got[l.GetName()] = l.GetValue()
		}
		match := true
		for i := 0; i+1 < len(labels); i += 2 {
			match = match && got[labels[i]] == labels[i+1]
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

func TestMetricsAfterTasks(t *testing.T) {
	e := apptest.New(t, func(c *config.Config) { c.Queue.MaxQueueSize = 3 })
	before := scrape(t, e)

	ok, flaky, parked := runMetricsScenario(t, e)

	fams := scrape(t, e)
	okID, flakyID, parkedID := fmt.Sprint(ok.ID), fmt.Sprint(flaky.ID), fmt.Sprint(parked.ID)
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"llmsched_tasks", []string{"model_id", okID, "status", "completed"}, 3},
		{"llmsched_tasks", []string{"model_id", okID, "status", "pending"}, 0},
		{"llmsched_tasks", []string{"model_id", flakyID, "status", "completed"}, 1},
		{"llmsched_tasks", []string{"model_id", parkedID, "status", "pending"}, 3},
		{"llmsched_queue_depth", []string{"model_id", parkedID, "priority", "3"}, 2},
		{"llmsched_queue_depth", []string{"model_id", parkedID, "priority", "2"}, 0},
		{"llmsched_queue_depth", []string{"model_id", parkedID, "priority", "1"}, 1},
		{"llmsched_queue_depth", []string{"model_id", okID, "priority", "2"}, 0},
		{"llmsched_model_info", []string{"model_id", parkedID, "name", "metrics-parked", "status", "offline"}, 1},
		{"llmsched_model_max_workers", []string{"model_id", okID}, 2},
		{"llmsched_task_pickup_latency_seconds", []string{"model_id", okID}, 3},
		{"llmsched_task_pickup_latency_seconds", []string{"model_id", flakyID}, 2},
		{"llmsched_task_run_duration_seconds", []string{"model_id", okID, "outcome", "completed"}, 3},
		{"llmsched_task_run_duration_seconds", []string{"model_id", flakyID, "outcome", "failed"}, 1},
		{"llmsched_attempts_total", []string{"model_id", flakyID, "outcome", "completed"}, 1},
		{"llmsched_provider_errors_total", []string{"model_id", flakyID, "kind", "retryable"}, 1},
		{"llmsched_tokens_total", []string{"model_id", okID, "kind", "completion"}, 15},
		{"llmsched_tokens_total", []string{"model_id", flakyID, "kind", "completion"}, 2},
		{"llmsched_task_retries_total", []string{"model_id", flakyID, "trigger", "automatic"}, 1},
		{"llmsched_task_retries_total", []string{"model_id", parkedID, "trigger", "manual"}, 1},
		{"llmsched_rejected_submissions_total", []string{"api", "rest", "code", "QUEUE_FULL"}, 1},
		{"llmsched_rejected_submissions_total", []string{"api", "rest", "code", "BAD_USER_INPUT"}, 1},
		{"llmsched_database_scrape_error", nil, 0},
	} {
		got, found := value(fams, tc.name, tc.labels...)
		if !found || got != tc.want {
			t.Errorf("%s%v = %v (found %v), want %v", tc.name, tc.labels, got, found, tc.want)
		}
	}
	if v, _ := value(fams, "llmsched_tokens_total", "model_id", okID, "kind", "prompt"); v <= 0 {
		t.Errorf("prompt tokens of %s = %v, want > 0", okID, v)
	}
	// Running tasks takes Redis commands (slot scripts, asynq).
	cmdsBefore, _ := value(before, "llmsched_redis_commands_total")
	if v, found := value(fams, "llmsched_redis_commands_total"); !found || v <= cmdsBefore {
		t.Errorf("llmsched_redis_commands_total = %v (found %v), want above %v from before the tasks", v, found, cmdsBefore)
	}
	for _, name := range []string{"go_goroutines", "go_memstats_heap_alloc_bytes", "process_cpu_seconds_total"} {
		if _, found := value(fams, name); !found {
			t.Errorf("runtime metric %s missing", name)
		}
	}
}

// runMetricsScenario runs what the metrics should count: three tasks
// completed on one model, one completed after a retry on a flaky one, and
// on an offline model two high and one low pending (one of them cancelled
// and retried by hand), then one submission refused for a full queue and
// one for bad input.
func runMetricsScenario(t *testing.T, e *apptest.Env) (ok, flaky, parked apptest.Model) {
	t.Helper()
	ok = e.Simulator("metrics-ok", 2, map[string]any{"latency_ms": 20, "output_tokens": 5})
	flaky = e.Simulator("metrics-flaky", 1, map[string]any{"latency_ms": 1, "fail_first_n": 1, "output_tokens": 2})
	parked = e.Simulator("metrics-parked", 1, map[string]any{})
	if code := e.Do("PUT", fmt.Sprintf("/api/v1/models/%d/status", parked.ID), map[string]any{"status": "offline"}, nil); code != http.StatusOK {
		t.Fatalf("offline: %d", code)
	}
	// max_queue_size 3 bounds the whole backlog: wait for each batch, and
	// for backpressure's cached pending count (at most 250ms old) to renew.
	settle := func() { time.Sleep(400 * time.Millisecond) }
	var done []int
	for range 3 {
		done = append(done, e.Submit(map[string]any{"model_id": ok.ID, "type": "text-generation", "input": "one two three"}).ID)
	}
	for _, id := range done {
		e.WaitTask(id, "completed", 30*time.Second)
	}
	settle()
	flakyTask := e.Submit(map[string]any{"model_id": flaky.ID, "type": "text-generation", "input": "x"})
	e.WaitTask(flakyTask.ID, "completed", 30*time.Second)
	settle()
	// The parked model's queue: two high, one low; then the backlog is full.
	var waiting []int
	for _, p := range []int{3, 3, 1} {
		waiting = append(waiting, e.Submit(map[string]any{"model_id": parked.ID, "type": "text-generation", "input": "wait", "priority": p}).ID)
	}
	// A cancelled task put back by hand is a manual retry.
	if code := e.Do("DELETE", fmt.Sprintf("/api/v1/tasks/%d", waiting[0]), nil, nil); code != http.StatusOK {
		t.Fatalf("cancel: %d", code)
	}
	if code := e.Do("POST", fmt.Sprintf("/api/v1/tasks/%d/retry", waiting[0]), nil, nil); code != http.StatusOK {
		t.Fatalf("retry: %d", code)
	}
	if code := e.Do("POST", "/api/v1/tasks", map[string]any{"model_id": parked.ID, "type": "text-generation", "input": "more"}, nil); code != http.StatusTooManyRequests {
		t.Fatalf("submission over max_queue_size: %d, want 429", code)
	}
	if code := e.Do("POST", "/api/v1/tasks", map[string]any{"model_id": ok.ID, "type": "nonsense", "input": "x"}, nil); code != http.StatusBadRequest {
		t.Fatalf("invalid submission: %d, want 400", code)
	}
	return ok, flaky, parked
}

// TestRejectedSubmissionsCountedInTheirProcess: a refused submission, over
// REST or GraphQL, is counted in the registry of the process that refused
// it, and in no other process's (two apps in one test binary share no
// counter).
func TestRejectedSubmissionsCountedInTheirProcess(t *testing.T) {
	a := apptest.New(t, nil)
	b := apptest.New(t, nil)
	m := a.Simulator("rejects", 1, map[string]any{})
	bad := map[string]any{"model_id": m.ID, "type": "translation", "input": "x"} // no target_language
	if code := a.Do("POST", "/api/v1/tasks", bad, nil); code != http.StatusBadRequest {
		t.Fatalf("REST submission without target_language: %d, want 400", code)
	}
	q := fmt.Sprintf(`{"query":"mutation { createTask(input: {modelID: \"%d\", type: TRANSLATION, input: \"x\"}) { id } }"}`, m.ID)
	if _, _, body := raw(t, "POST", a.URL+"/graphql", q); !strings.Contains(body, "BAD_USER_INPUT") {
		t.Fatalf("GraphQL submission without target_language: %s, want BAD_USER_INPUT", body)
	}
	fa, fb := scrape(t, a), scrape(t, b)
	for _, api := range []string{"rest", "graphql"} {
		if v, _ := value(fa, "llmsched_rejected_submissions_total", "api", api, "code", "BAD_USER_INPUT"); v != 1 {
			t.Errorf("%s rejections in the refusing process = %v, want 1", api, v)
		}
		if v, found := value(fb, "llmsched_rejected_submissions_total", "api", api); found {
			t.Errorf("%s rejections in another process = %v, want none", api, v)
		}
	}
}
