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
	a := setupAuth(t)
	admin := []string{"Authorization", "Bearer " + a.keys["admin"]}
	ctx := context.Background()
	key := func(name string, weight int) string {
		var created struct{ Data struct{ Key string } }
		if code := a.Do("POST", "/api/v1/apikeys", map[string]any{"name": name, "role": "submitter", "weight": weight}, &created, admin...); code != http.StatusCreated {
			t.Fatalf("create key %s: %d", name, code)
		}
		return created.Data.Key
	}
	model := func(name string, latency int, status string) int {
		var m struct{ Data struct{ ID int } }
		if code := a.Do("POST", "/api/v1/models", map[string]any{"name": name, "type": "simulator", "max_workers": 2, "status": status,
			"config": map[string]any{"latency_ms": latency, "output_tokens": 2}}, &m, admin...); code != http.StatusCreated {
			t.Fatalf("create model %s: %d", name, code)
		}
		return m.Data.ID
	}
	submit := func(k string, m, n int) {
		t.Helper()
		var wg sync.WaitGroup
		errs := make(chan string, n)
		next := make(chan int)
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range next {
					if code := a.Do("POST", "/api/v1/tasks", map[string]any{"model_id": m, "type": "text-generation", "input": fmt.Sprint("task ", i)}, nil,
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
	online := func(m int) {
		if code := a.Do("PUT", fmt.Sprintf("/api/v1/models/%d/status", m), map[string]any{"status": "online"}, nil, admin...); code != http.StatusOK {
			t.Fatalf("model %d online: %d", m, code)
		}
	}
	db := a.App.Store.Client
	// attemptsWhen waits until enough says the model's attempts so far (in
	// start order) settle the question, and returns them. The rest of a
	// flood need not run: the claims are about who ran first.
	attemptsWhen := func(m int, enough func([]*ent.Attempt) bool) []*ent.Attempt {
		t.Helper()
		deadline := time.Now().Add(5 * time.Minute)
		for {
			as, err := db.Attempt.Query().Where(attempt.ModelID(m)).Order(ent.Asc(attempt.FieldStartedAt), ent.Asc(attempt.FieldID)).All(ctx)
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
	done := func(m int) []*ent.Attempt {
		t.Helper()
		return attemptsWhen(m, func([]*ent.Attempt) bool {
			open, err := db.Task.Query().Where(task.ModelID(m), task.StatusIn("pending", "running")).Count(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return open == 0
		})
	}

	t.Run("a second caller behind a flood", func(t *testing.T) {
		m := model("flood", 20, "online")
		submit(key("a", 1), m, 1000)
		bArrived := time.Now()
		submit(key("b", 1), m, 10)
		// Until B's 10 have finished; A's flood goes on, and what finishes
		// after B's last does not matter.
		as := attemptsWhen(m, func(as []*ent.Attempt) bool {
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
	})

	t.Run("weights 3 to 1", func(t *testing.T) {
		m := model("three-to-one", 2, "offline")
		submit(key("three", 3), m, 160)
		submit(key("one", 1), m, 160)
		online(m)
		// The first 160 to start, while both have work (160 each). Two
		// workers insert their attempts a moment apart, so wait for a few
		// more than 160 before cutting the start order.
		as := attemptsWhen(m, func(as []*ent.Attempt) bool { return len(as) >= 170 })[:160]
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
	})

	t.Run("weight 1 against weight 100 progresses", func(t *testing.T) {
		m := model("hundred-to-one", 1, "offline")
		submit(key("hundred", 100), m, 300)
		submit(key("single", 1), m, 2)
		online(m)
		light, lastHeavy := []int{}, -1
		for i, at := range done(m) {
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
	})
}
