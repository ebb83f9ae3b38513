//go:build clustered

package chaos

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llmsched/llm-scheduler/internal/redistest"
)

// Redis failover for real (scripts/ci.d/65-clustered-redis.sh): the
// scheduler runs on a Sentinel set (master, replica, three sentinels) or
// a Redis Cluster (three masters with a replica each), one api and two
// worker processes, and 1,000 simulator tasks over three models. A few
// seconds in, a Redis master is SIGKILLed (on the Cluster: the master that
// serves one of the models' hash slots) and its replica is promoted.
//
// Afterwards, from the database's attempt records: every task completed
// exactly once, and no model ran more than max_workers attempts at once;
// the processes were never restarted.

const failoverTasks = 1000

var failoverModels = []struct {
	name       string
	maxWorkers int
	latencyMS  int
}{
	{"failover-a", 2, 60},
	{"failover-b", 3, 80},
	{"failover-c", 4, 100},
}

func TestSentinelFailover(t *testing.T) {
	privateServices(t)
	s, err := redistest.StartSentinel(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	redis := fmt.Sprintf("redis: {sentinel_master: %s, sentinel_addrs: [%s], key_prefix: chaos}",
		redistest.MasterName, strings.Join(s.SentinelAddrs(), ", "))
	runFailover(t, redis, func(modelIDs []int) (string, error) {
		old := s.Master.Addr()
		s.Master.Kill()
		deadline := time.Now().Add(30 * time.Second)
		for {
			cur, err := s.CurrentMaster()
			if err == nil && cur != old {
				return fmt.Sprintf("SIGKILL master %s; sentinels promoted %s", old, cur), nil
			}
			if time.Now().After(deadline) {
				return "", fmt.Errorf("no failover within 30s (master %q, %v)", cur, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

func TestClusterFailover(t *testing.T) {
	privateServices(t)
	c, err := redistest.StartCluster(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	redis := fmt.Sprintf("redis: {cluster_addrs: [%s], key_prefix: chaos}", strings.Join(c.Addrs(), ", "))
	runFailover(t, redis, func(modelIDs []int) (string, error) {
		// The master of the busiest model's keys (see jobs.Slots.keys).
		victim, err := c.MasterOf(fmt.Sprintf("{chaos:model:%d}:leases", modelIDs[len(modelIDs)-1]))
		if err != nil {
			return "", err
		}
		victim.Kill()
		if err := c.WaitHealthy(30 * time.Second); err != nil {
			return "", err
		}
		return fmt.Sprintf("SIGKILL master %s; its replica took over its slots", victim.Addr()), nil
	})
}

// runFailover runs the scenario on the Redis the redis line names; kill
// kills a master and returns once a replica has taken over.
func runFailover(t *testing.T, redis string, kill func(modelIDs []int) (string, error)) {
	c := NewCluster(t, Settings{LeaseTTL: 4 * time.Second, ShutdownGrace: 2 * time.Second, WorkerCapacity: 8, Redis: redis})
	api := c.Start("api")
	c.Start("worker")
	c.Start("worker")
	db := c.Maria.DB(t, c.DBName)
	db.SetMaxOpenConns(4)
	var modelIDs []int
	maxOf := map[int]int{}
	for _, m := range failoverModels {
		id := createModel(t, api, m.name, m.maxWorkers, map[string]any{"latency_ms": m.latencyMS, "output_tokens": 4})
		modelIDs = append(modelIDs, id)
		maxOf[id] = m.maxWorkers
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	// Submissions: 8 clients, each task with its own Idempotency-Key, so a
	// request retried while Redis fails over never stores a task twice.
	var retried atomic.Int64
	next := make(chan int)
	go func() {
		defer close(next)
		for i := range failoverTasks {
			select {
			case next <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			for i := range next {
				body := map[string]any{"model_id": modelIDs[i%len(modelIDs)], "type": "text-generation",
					"input": fmt.Sprintf("failover task %d", i), "priority": 1 + i%3}
				for {
					code, err := call(ctx, "POST", api.URL+"/api/v1/tasks", body, nil, "Idempotency-Key", fmt.Sprintf("failover-%d", i))
					if err == nil && code == http.StatusCreated {
						break
					}
					retried.Add(1)
					if ctx.Err() != nil {
						errs <- fmt.Errorf("task %d never accepted: status %d: %v", i, code, err)
						return
					}
					time.Sleep(100 * time.Millisecond)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}

	// Kill a master once work is under way.
	begin := time.Now()
	for {
		var done int
		if err := db.QueryRow("SELECT COUNT(*) FROM tasks WHERE status = 'completed'").Scan(&done); err != nil {
			t.Fatal(err)
		}
		if done >= 100 {
			break
		}
		if time.Since(begin) > time.Minute {
			t.Fatalf("only %d tasks completed in a minute before the fault", done)
		}
		time.Sleep(50 * time.Millisecond)
	}
	killAt := time.Now()
	what, err := kill(modelIDs)
	if err != nil {
		t.Fatal(err)
	}
	promoted := time.Since(killAt)

	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for {
		var unfinished int
		if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM tasks WHERE status IN ('pending', 'running')").Scan(&unfinished); err != nil {
			t.Logf("poll: %v", err)
		} else if unfinished == 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("%d tasks still unfinished when the run timed out", unfinished)
		}
		time.Sleep(250 * time.Millisecond)
	}
	drained := time.Since(begin)

	var stored, keys, completed int
	if err := db.QueryRow("SELECT COUNT(*), COUNT(DISTINCT idempotency_key), COALESCE(SUM(status = 'completed'), 0) FROM tasks").Scan(&stored, &keys, &completed); err != nil {
		t.Fatal(err)
	}
	all := attempts(t, db, "")
	succeeded := map[int]int{}
	cut := 0
	for _, a := range all {
		switch a.Status {
		case "succeeded":
			succeeded[a.TaskID]++
		case "running":
			t.Errorf("attempt %d of task %d still running after the run", a.Number, a.TaskID)
		default:
			cut++
		}
	}
	lost, duplicated := 0, 0
	rows, err := db.Query("SELECT id FROM tasks")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id int
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		switch succeeded[id] {
		case 0:
			lost++
		case 1:
		default:
			duplicated++
		}
	}
	rows.Close()
	peaks := peakPerModel(all, nil)
	// The longest pause in completions from the kill on: how long the
	// scheduler stalled while Redis failed over.
	var finishes []time.Time
	for _, a := range all {
		if a.Status == "succeeded" && a.Finished != nil && a.Finished.After(killAt) {
			finishes = append(finishes, *a.Finished)
		}
	}
	sort.Slice(finishes, func(i, j int) bool { return finishes[i].Before(finishes[j]) })
	var stall time.Duration
	prev := killAt
	for _, f := range finishes {
		stall = max(stall, f.Sub(prev))
		prev = f
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s, replica serving %.1f s after the kill; %d tasks stored (%d keys), %d completed, "+
		"%d lost, %d run to completion twice, %d attempts cut off and re-run, %d submissions retried; longest pause in completions "+
		"from the kill on %.1f s; all done %.1f s after the first completion\n",
		t.Name(), what, promoted.Seconds(), stored, keys, completed, lost, duplicated, cut, retried.Load(), stall.Seconds(), drained.Seconds())
	if os.Getenv("FAILOVER_LOGS") != "" {
		for _, p := range c.procs {
			t.Logf("--- log of %s (pid %d), last lines:\n%s", p.Role, p.PID, tail(p.LogPath, 60))
		}
	}
	for _, id := range modelIDs {
		fmt.Fprintf(&b, "  model %d: max_workers %d, most attempts at once %d\n", id, maxOf[id], peaks[id])
	}
	t.Log("\n" + b.String())
	if path := os.Getenv("FAILOVER_REPORT"); path != "" {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err == nil {
			_, err = f.WriteString(b.String())
			f.Close()
		}
		if err != nil {
			t.Error(err)
		}
	}
	if stored != failoverTasks || keys != failoverTasks {
		t.Errorf("%d tasks stored (%d distinct keys), want %d", stored, keys, failoverTasks)
	}
	if completed != failoverTasks || lost != 0 || duplicated != 0 {
		t.Errorf("%d completed, %d lost, %d completed twice; want %d, 0, 0", completed, lost, duplicated, failoverTasks)
	}
	for id, peak := range peaks {
		if peak > maxOf[id] {
			t.Errorf("model %d ran %d attempts at once, max_workers is %d", id, peak, maxOf[id])
		}
	}
}
