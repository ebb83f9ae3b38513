package server_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/ent/attempt"
	"github.com/llmsched/llm-scheduler/ent/task"
)

// TestFairShareThroughREST: docs/fairness.md's claims through the real
// server on either backend (embedded, and MySQL + Redis), callers being
// API keys made over REST with their weights. The same scenarios across
// separate api and worker processes: chaos/TestFairShareAcrossProcesses.
// Assertions are on order and shares, never on speed.
func TestFairShareThroughREST(t *testing.T) {
	f := &fairShare{a: setupAuth(t)}
	f.admin = []string{"Authorization", "Bearer " + f.a.keys["admin"]}
	t.Run("a second caller behind a flood", f.secondCallerBehindAFlood)
	t.Run("weights 3 to 1", f.weightsThreeToOne)
	t.Run("weight 1 against weight 100 progresses", f.weightOneAgainstHundredProgresses)
}

// fairShare is TestFairShareThroughREST's server and its admin key.
type fairShare struct {
	a     *authEnv
	admin []string
}

// key creates a submitter key of the given weight.
func (f *fairShare) key(t *testing.T, name string, weight int) string {
	t.Helper()
	var created struct{ Data struct{ Key string } }
	if code := f.a.Do("POST", "/api/v1/apikeys", map[string]any{"name": name, "role": "submitter", "weight": weight}, &created, f.admin...); code != http.StatusCreated {
		t.Fatalf("create key %s: %d", name, code)
	}
	return created.Data.Key
}

// model creates a two-worker simulator model.
func (f *fairShare) model(t *testing.T, name string, latency int, status string) int {
	t.Helper()
	var m struct{ Data struct{ ID int } }
	if code := f.a.Do("POST", "/api/v1/models", map[string]any{"name": name, "type": "simulator", "max_workers": 2, "status": status,
		"config": map[string]any{"latency_ms": latency, "output_tokens": 2}}, &m, f.admin...); code != http.StatusCreated {
		t.Fatalf("create model %s: %d", name, code)
	}
	return m.Data.ID
}

// submit posts n tasks to model m with key k, from 8 clients at once.
func (f *fairShare) submit(t *testing.T, k string, m, n int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan string, n)
	next := make(chan int)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if code := f.a.Do("POST", "/api/v1/tasks", map[string]any{"model_id": m, "type": "text-generation", "input": fmt.Sprint("task ", i)}, nil,
					"Authorization", "Bearer "+k); code != http.StatusCreated {
					errs <- fmt.Sprintf("task %d: status %d", i, code)
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	if e, ok := <-errs; ok {
		t.Fatalf("submission failed: %s", e)
	}
}

func (f *fairShare) online(t *testing.T, m int) {
	t.Helper()
	if code := f.a.Do("PUT", fmt.Sprintf("/api/v1/models/%d/status", m), map[string]any{"status": "online"}, nil, f.admin...); code != http.StatusOK {
		t.Fatalf("model %d online: %d", m, code)
	}
}

// attemptsWhen waits until enough says the model's attempts so far (in
// start order) settle the question, and returns them. The rest of a flood
// need not run: the claims are about who ran first.
func (f *fairShare) attemptsWhen(t *testing.T, m int, enough func([]*ent.Attempt) bool) []*ent.Attempt {
	t.Helper()
	db := f.a.App.Store.Client
	deadline := time.Now().Add(5 * time.Minute)
	for {
		as, err := db.Attempt.Query().Where(attempt.ModelID(m)).Order(ent.Asc(attempt.FieldStartedAt), ent.Asc(attempt.FieldID)).All(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if enough(as) {
			return as
		}
		if time.Now().After(deadline) {
			t.Fatalf("model %d: %d attempts after 5 minutes, not enough to judge", m, len(as))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// done waits until none of the model's tasks is pending or running.
func (f *fairShare) done(t *testing.T, m int) []*ent.Attempt {
	t.Helper()
	return f.attemptsWhen(t, m, func([]*ent.Attempt) bool {
		open, err := f.a.App.Store.Client.Task.Query().Where(task.ModelID(m), task.StatusIn("pending", "running")).Count(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return open == 0
	})
}

func (f *fairShare) secondCallerBehindAFlood(t *testing.T) {
	m := f.model(t, "flood", 20, "online")
	f.submit(t, f.key(t, "a", 1), m, 1000)
	bArrived := time.Now()
	f.submit(t, f.key(t, "b", 1), m, 10)
	// Until B's 10 have finished; A's flood goes on, and what finishes
	// after B's last does not matter.
	as := f.attemptsWhen(t, m, func(as []*ent.Attempt) bool {
		n := 0
		for _, at := range as {
			if at.Caller == "b" && at.FinishedAt != nil {
				n++
			}
		}
		return n >= 10
	})
	var bLast time.Time
	bN := 0
	for _, at := range as {
		if at.Caller == "b" {
			bN++
			if at.FinishedAt.After(bLast) {
				bLast = *at.FinishedAt
			}
		}
	}
	before, between := 0, 0
	for _, at := range as {
		switch {
		case at.Caller == "b", at.FinishedAt == nil:
		case !at.FinishedAt.After(bArrived):
			before++
		case !at.FinishedAt.After(bLast):
			between++
		}
	}
	t.Logf("A finished %d before B arrived, %d more until B's last of %d", before, between, bN)
	if bN != 10 || before+between >= 900 {
		t.Fatalf("B ran %d tasks; A had finished %d of 1000 by B's last: the flood was not running", bN, before+between)
	}
	if between >= 60 {
		t.Fatalf("%d of A's tasks finished between B's arrival and B's last, want under 60", between)
	}
}

func (f *fairShare) weightsThreeToOne(t *testing.T) {
	m := f.model(t, "three-to-one", 2, "offline")
	f.submit(t, f.key(t, "three", 3), m, 160)
	f.submit(t, f.key(t, "one", 1), m, 160)
	f.online(t, m)
	// The first 160 to start, while both have work (160 each). Two workers
	// insert their attempts a moment apart, so wait for a few more than 160
	// before cutting the start order.
	as := f.attemptsWhen(t, m, func(as []*ent.Attempt) bool { return len(as) >= 170 })[:160]
	n := 0
	for _, at := range as {
		if at.Caller == "three" {
			n++
		}
	}
	t.Logf("weight 3 took %d of the first 160 slots", n)
	if share := float64(n) / 160; share < 0.68 || share > 0.82 {
		t.Fatalf("weight 3 took %.2f of the slots while both had work, want 0.75 within 0.07", share)
	}
}

func (f *fairShare) weightOneAgainstHundredProgresses(t *testing.T) {
	m := f.model(t, "hundred-to-one", 1, "offline")
	f.submit(t, f.key(t, "hundred", 100), m, 300)
	f.submit(t, f.key(t, "single", 1), m, 2)
	f.online(t, m)
	light, lastHeavy := []int{}, -1
	for i, at := range f.done(t, m) {
		if at.Caller == "single" {
			light = append(light, i)
		} else {
			lastHeavy = i
		}
	}
	t.Logf("weight 1 started at %v, weight 100's last at %d", light, lastHeavy)
	if len(light) != 2 || light[1] > lastHeavy || light[0] < 70 || light[0] > 130 || light[1] > 260 {
		t.Fatalf("weight 1 started at %v (weight 100's last at %d), want about 101 and 202", light, lastHeavy)
	}
}
