package chaos

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"os/exec"
	"regexp"
	"sync"
	"testing"
	"time"
)

// createKey makes an API key with the binary's apikey command (a separate
// process on the cluster's database) and returns the key.
func createKey(t *testing.T, c *Cluster, name, role string, weight int) string {
	t.Helper()
	out, err := exec.Command(binary(t), "apikey", "create", "--name", name, "--role", role,
		"--weight", fmt.Sprint(weight), "--config", c.Config).CombinedOutput()
	m := regexp.MustCompile(`(?m)^\s+(\S{20,})\s*$`).FindSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("apikey create %s: %v\n%s", name, err, out)
	}
	return string(m[1])
}

// submitAs creates n tasks on model through api with key, 8 at a time,
// and returns their ids.
func submitAs(t *testing.T, api *Proc, key string, model, n int, label string) []int {
	t.Helper()
	ids := make([]int, n)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		fails []string
	)
	next := make(chan int)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				var out struct {
					Data struct {
						ID int `json:"id"`
					} `json:"data"`
				}
				code, err := call(context.Background(), "POST", api.URL+"/api/v1/tasks",
					map[string]any{"model_id": model, "type": "text-generation", "input": fmt.Sprintf("%s %d", label, i)}, &out,
					"Authorization", "Bearer "+key)
				if err != nil || code != http.StatusCreated {
					mu.Lock()
					fails = append(fails, fmt.Sprintf("%s %d: status %d: %v", label, i, code, err))
					mu.Unlock()
					continue
				}
				ids[i] = out.Data.ID
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	if len(fails) > 0 {
		t.Fatalf("%d submissions failed, first: %s", len(fails), fails[0])
	}
	return ids
}

// setStatus switches a model online or offline through api.
func setStatus(t *testing.T, api *Proc, admin string, model int, status string) {
	t.Helper()
	code, err := call(context.Background(), "PUT", fmt.Sprintf("%s/api/v1/models/%d/status", api.URL, model),
		map[string]any{"status": status}, nil, "Authorization", "Bearer "+admin)
	if err != nil || code != http.StatusOK {
		t.Fatalf("model %d %s: status %d: %v", model, status, code, err)
	}
}

// startOrder is the callers of a model's attempts in the order they
// started (the order the slots were handed out) and, for each, when it
// finished.
type started struct {
	Caller   string
	Started  time.Time
	Finished time.Time
}

func startOrder(t *testing.T, db *sql.DB, model int) []started {
	t.Helper()
	rows, err := db.Query(`SELECT caller, started_at, COALESCE(finished_at, started_at) FROM attempts
		WHERE model_id = ? ORDER BY started_at, id`, model)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []started
	for rows.Next() {
		var s started
		if err := rows.Scan(&s.Caller, &s.Started, &s.Finished); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// waitDone waits until model has no pending or running task left.
func waitDone(t *testing.T, db *sql.DB, model int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var open, failed int
		if err := db.QueryRow(`SELECT COALESCE(SUM(status IN ('pending','running')), 0), COALESCE(SUM(status <> 'completed' AND status NOT IN ('pending','running')), 0)
			FROM tasks WHERE model_id = ?`, model).Scan(&open, &failed); err != nil {
			t.Fatal(err)
		}
		if failed > 0 {
			t.Fatalf("model %d: %d tasks did not complete", model, failed)
		}
		if open == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("model %d still has %d open tasks after %s", model, open, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestFairShareAcrossProcesses: docs/fairness.md's claims, through REST,
// on two api and two worker processes (the real binary) sharing MariaDB
// and Redis, with callers that are API keys made by the apikey command.
// Assertions are on order and shares, never on speed.
//
//  1. Caller A submits 1,000 tasks (through api 1) to a model with
//     max_workers 2 that is running them; then B submits 10 (through api
//     2). B's 10 all finish before A's 60th task counted from B's
//     arrival.
//  2. Weights 3:1 (both callers' work parked while the model is offline,
//     then online): while both have work, the slots go about 3:1, and
//     about so in every stretch of 40.
//  3. Weight 1 against weight 100: the light caller still progresses, its
//     2 tasks starting while the heavy one has work left.
func TestFairShareAcrossProcesses(t *testing.T) {
	c := NewCluster(t, Settings{LeaseTTL: 10 * time.Second, ShutdownGrace: 2 * time.Second, WorkerCapacity: 4})
	auth := "AUTH_ENABLED=true"
	f := &processFairShare{db: c.Maria.DB(t, c.DBName), api1: c.Start("api", auth), api2: c.Start("api", auth)}
	c.Start("worker", auth)
	c.Start("worker", auth)
	f.admin = createKey(t, c, "admin", "admin", 1)
	f.a = createKey(t, c, "a", "submitter", 1)
	f.b = createKey(t, c, "b", "submitter", 1)
	f.heavy3 = createKey(t, c, "three", "submitter", 3)
	f.light1 = createKey(t, c, "one", "submitter", 1)
	f.w100 = createKey(t, c, "hundred", "submitter", 100)
	f.w1 = createKey(t, c, "single", "submitter", 1)
	t.Run("a second caller behind a flood", f.secondCallerBehindAFlood)
	t.Run("weights 3 to 1", f.weightsThreeToOne)
	t.Run("weight 1 against weight 100 progresses", f.weightOneAgainstHundredProgresses)
}

// processFairShare is TestFairShareAcrossProcesses' cluster: its
// database, two api processes and the callers' keys.
type processFairShare struct {
	db                                    *sql.DB
	api1, api2                            *Proc
	admin, a, b, heavy3, light1, w100, w1 string
}

// model creates a two-worker simulator model through api 1.
func (f *processFairShare) model(t *testing.T, name string, latency int, status string) int {
	t.Helper()
	var out struct {
		Data struct {
			ID int `json:"id"`
		} `json:"data"`
	}
	code, err := call(context.Background(), "POST", f.api1.URL+"/api/v1/models", map[string]any{"name": name, "type": "simulator",
		"max_workers": 2, "status": status, "config": map[string]any{"latency_ms": latency, "output_tokens": 2}}, &out,
		"Authorization", "Bearer "+f.admin)
	if err != nil || code != http.StatusCreated {
		t.Fatalf("create model %s: %d %v", name, code, err)
	}
	return out.Data.ID
}

func (f *processFairShare) secondCallerBehindAFlood(t *testing.T) {
	m := f.model(t, "flood", 40, "online")
	submitAs(t, f.api1, f.a, m, 1000, "a")
	var bArrived time.Time
	if err := f.db.QueryRow("SELECT UTC_TIMESTAMP(6)").Scan(&bArrived); err != nil {
		t.Fatal(err)
	}
	submitAs(t, f.api2, f.b, m, 10, "b")
	waitDone(t, f.db, m, 10*time.Minute)
	var aDoneBefore, aSinceB, bDone int
	var bLast time.Time
	for _, s := range startOrder(t, f.db, m) {
		if s.Caller == "b" && s.Finished.After(bLast) {
			bLast = s.Finished
		}
	}
	for _, s := range startOrder(t, f.db, m) {
		switch {
		case s.Caller == "b":
			bDone++
		case !s.Finished.After(bArrived):
			aDoneBefore++
		case !s.Finished.After(bLast):
			aSinceB++
		}
	}
	t.Logf("A finished %d before B arrived, %d more until B's last of %d finished", aDoneBefore, aSinceB, bDone)
	if bDone != 10 {
		t.Fatalf("B has %d attempts, want 10", bDone)
	}
	if aDoneBefore+aSinceB >= 1000-100 {
		t.Fatalf("A's flood was (nearly) done before B's tasks ran (%d of 1000); the check says nothing", aDoneBefore+aSinceB)
	}
	if aSinceB >= 60 {
		t.Fatalf("%d of A's tasks finished between B's arrival and B's last finish, want under 60", aSinceB)
	}
}

func (f *processFairShare) weightsThreeToOne(t *testing.T) {
	m := f.model(t, "three-to-one", 10, "offline")
	submitAs(t, f.api1, f.heavy3, m, 240, "three")
	submitAs(t, f.api2, f.light1, m, 240, "one")
	setStatus(t, f.api2, f.admin, m, "online")
	waitDone(t, f.db, m, 10*time.Minute)
	order := startOrder(t, f.db, m)
	// Both callers have work while the weight-3 one has tasks left:
	// its 240 take about the first 320 slots.
	both := order[:240]
	three := 0
	for i, s := range both {
		if s.Caller == "three" {
			three++
		}
		if i%40 == 39 {
			n := 0
			for _, w := range both[i-39 : i+1] {
				if w.Caller == "three" {
					n++
				}
			}
			if n < 24 || n > 36 {
				t.Errorf("starts %d..%d: weight 3 got %d of 40, want about 30", i-38, i+1, n)
			}
		}
	}
	share := float64(three) / float64(len(both))
	t.Logf("weight 3 took %d of the first %d slots (%.2f)", three, len(both), share)
	if share < 0.68 || share > 0.82 {
		t.Fatalf("weight 3 took %.2f of the slots while both had work, want 0.75 within 0.07", share)
	}
}

func (f *processFairShare) weightOneAgainstHundredProgresses(t *testing.T) {
	m := f.model(t, "hundred-to-one", 5, "offline")
	submitAs(t, f.api1, f.w100, m, 400, "hundred")
	submitAs(t, f.api2, f.w1, m, 2, "single")
	setStatus(t, f.api1, f.admin, m, "online")
	waitDone(t, f.db, m, 10*time.Minute)
	order := startOrder(t, f.db, m)
	lastHeavy, light := -1, []int{}
	for i, s := range order {
		if s.Caller == "hundred" {
			lastHeavy = i
		} else {
			light = append(light, i)
		}
	}
	t.Logf("weight 1 started at %v of %d; weight 100's last at %d", light, len(order), lastHeavy)
	if len(light) != 2 || light[1] > lastHeavy {
		t.Fatalf("weight 1 started at %v, weight 100's last at %d: the light caller waited for the heavy one to run dry", light, lastHeavy)
	}
	// Start-time fair queuing gives it about every 101st slot.
	if light[0] < 70 || light[0] > 130 || light[1] > 260 {
		t.Fatalf("weight 1 started at %v, want about 101 and 202", light)
	}
}
