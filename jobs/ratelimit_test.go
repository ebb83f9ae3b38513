package jobs_test

import (
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/llmsched/llm-scheduler/internal/apptest"
	"github.com/llmsched/llm-scheduler/internal/domain"
	"github.com/llmsched/llm-scheduler/internal/providers/fakeopenai"
	"github.com/llmsched/llm-scheduler/jobs"
)

// TestRPMPacesStartsAcrossTheModel submits 20 tasks at once to a model with
// rpm 60: they start one a second (checked on the recorded attempt start
// times), all complete, and none burns an attempt on the limit.
func TestRPMPacesStartsAcrossTheModel(t *testing.T) {
	e := apptest.New(t, nil)
	m := e.Simulator("paced", 5, map[string]any{"latency_ms": 5, "output_tokens": 2, "rpm": 60})
	var ids []int
	for i := range 20 {
		ids = append(ids, submit(e, m.ID, 2, fmt.Sprintf("task %d", i)).ID)
	}
	// While the limit holds them back, tasks say why they wait.
	sawRateLimited := false
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && !sawRateLimited; {
		for _, id := range ids[10:] {
			if tk := e.Task(id); tk.Status == "pending" && tk.PendingReason == "rate_limited" {
				sawRateLimited = true
				break
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !sawRateLimited {
		t.Error("no waiting task reported pending_reason rate_limited")
	}
	for _, id := range ids {
		if tk := e.WaitTask(id, "", 60*time.Second); tk.Status != "completed" {
			t.Fatalf("task %d is %s: %s", id, tk.Status, tk.Error)
		}
	}
	as := attemptsOf(t, e, ids...)
	if len(as) != len(ids) {
		t.Fatalf("%d attempts for %d tasks: the limit cost attempts", len(as), len(ids))
	}
	starts := make([]time.Time, len(as))
	for i, a := range as {
		if a.Status != domain.AttemptSucceeded {
			t.Errorf("attempt of task %d is %s (%s)", a.TaskID, a.Status, a.Error)
		}
		starts[i] = a.StartedAt
	}
	sort.Slice(starts, func(i, j int) bool { return starts[i].Before(starts[j]) })
	// rpm 60 allows one start a second. The slack covers the time between
	// taking the rate token and recording the attempt.
	const slack = 250 * time.Millisecond
	for i := 1; i < len(starts); i++ {
		t.Logf("start %2d: +%s", i, starts[i].Sub(starts[0]).Round(time.Millisecond))
		if gap := starts[i].Sub(starts[i-1]); gap < time.Second-slack {
			t.Errorf("starts %d and %d are %s apart; rpm 60 allows one a second", i-1, i, gap)
		}
	}
	if span := starts[len(starts)-1].Sub(starts[0]); span < 19*time.Second-slack {
		t.Errorf("20 starts within %s; rpm 60 needs at least 19s", span)
	}
}

// TestProvider429BacksTheWholeModelOff: after a 429 with Retry-After, no
// task of that model reaches the provider until the delay is over, and the
// rate-limited task succeeds on its next attempt.
func TestProvider429BacksTheWholeModelOff(t *testing.T) {
	fake := fakeopenai.New()
	t.Cleanup(fake.Close)
	fake.Enqueue(fakeopenai.Reply{Status: 429, ErrorMessage: "Rate limit reached for requests", ErrorType: "requests", Header: map[string]string{"Retry-After": "2"}})
	e := apptest.New(t, nil)
	m := e.CreateModel("limited", "openai", 3, map[string]any{"base_url": fake.BaseURL(), "model": "m", "api_key": "sk-test-000000000"})
	first := submit(e, m.ID, 2, "first")
	var limitedAt time.Time
	for deadline := time.Now().Add(10 * time.Second); limitedAt.IsZero(); {
		if tk := e.Task(first.ID); len(tk.AttemptHistory) > 0 && tk.AttemptHistory[0].FinishedAt != nil {
			if tk.AttemptHistory[0].ErrorKind != "rate_limited" {
				t.Fatalf("first attempt: %+v", tk.AttemptHistory[0])
			}
			limitedAt = fake.Requests()[0].At
		}
		if time.Now().After(deadline) {
			t.Fatal("the first attempt never finished")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if reason := e.Task(submit(e, m.ID, 2, "probe").ID).PendingReason; reason != "rate_limited" {
		t.Errorf("a task submitted during the backoff waits for %q, want rate_limited", reason)
	}
	others := []int{submit(e, m.ID, 2, "second").ID, submit(e, m.ID, 2, "third").ID}
	for _, id := range append(others, first.ID) {
		if tk := e.WaitTask(id, "", 30*time.Second); tk.Status != "completed" {
			t.Fatalf("task %d is %s: %s", id, tk.Status, tk.Error)
		}
	}
	reqs := fake.Requests()
	for _, r := range reqs[1:] {
		if r.At.Before(limitedAt.Add(2 * time.Second)) {
			t.Errorf("a request reached the provider %s after the 429, inside its 2s Retry-After", r.At.Sub(limitedAt))
		}
	}
	if h := e.Task(first.ID).AttemptHistory; len(h) != 2 || h[1].Status != "succeeded" {
		t.Errorf("first task's attempts = %+v, want rate_limited then succeeded", h)
	}
}

// TestRequestBuiltOncePerTask: a task builds its provider request once,
// whether its model has rate limits (the limiter estimates the request's
// tokens before the call and settles them after it) or not.
func TestRequestBuiltOncePerTask(t *testing.T) {
	builds := jobs.CountRequestBuilds(t)
	e := apptest.New(t, nil)
	limited := e.Simulator("limited", 1, map[string]any{"latency_ms": 5, "output_tokens": 2, "rpm": 6000, "tpm": 1000000})
	plain := e.Simulator("plain", 1, map[string]any{"latency_ms": 5, "output_tokens": 2})
	var ids []int
	for i := range 3 {
		ids = append(ids, submit(e, limited.ID, 2, fmt.Sprintf("limited %d", i)).ID, submit(e, plain.ID, 2, fmt.Sprintf("plain %d", i)).ID)
	}
	for _, id := range ids {
		if tk := e.WaitTask(id, "", 30*time.Second); tk.Status != "completed" {
			t.Fatalf("task %d is %s: %s", id, tk.Status, tk.Error)
		}
		if n := builds(id); n != 1 {
			t.Errorf("task %d built its provider request %d times, want once", id, n)
		}
	}
}
