//go:build clustered

package chaos

import (
	"context"
	"database/sql"
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
	r := newFailoverRun(t, redis)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	waitSubmitted := r.submit(ctx)

	// Kill a master once work is under way.
	begin := time.Now()
	r.waitCompleted(100, begin)
	killAt := time.Now()
	what, err := kill(r.modelIDs)
	if err != nil {
		t.Fatal(err)
	}
	promoted := time.Since(killAt)

	waitSubmitted()
	waitFinished(ctx, t, r.db, 250*time.Millisecond)
	drained := time.Since(begin)

	o := r.outcome()
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s, replica serving %.1f s after the kill; %d tasks stored (%d keys), %d completed, "+
		"%d lost, %d run to completion twice, %d attempts cut off and re-run, %d submissions retried; longest pause in completions "+
		"from the kill on %.1f s; all done %.1f s after the first completion\n",
		t.Name(), what, promoted.Seconds(), o.stored, o.keys, o.completed, o.lost, o.duplicated, o.cut, r.retried.Load(),
		longestPause(o.all, killAt).Seconds(), drained.Seconds())
	if os.Getenv("FAILOVER_LOGS") != "" {
		for _, p := range r.c.procs {
			t.Logf("--- log of %s (pid %d), last lines:\n%s", p.Role, p.PID, tail(p.LogPath, 60))
		}
	}
	for _, id := range r.modelIDs {
		fmt.Fprintf(&b, "  model %d: max_workers %d, most attempts at once %d\n", id, r.maxOf[id], o.peaks[id])
	}
	t.Log("\n" + b.String())
	if path := os.Getenv("FAILOVER_REPORT"); path != "" {
		if err := appendFile(path, b.String()); err != nil {
			t.Error(err)
		}
	}
	r.assertOutcome(o)
}

// failoverRun is the cluster of a failover run: one api and two worker
// processes on the Redis under test.
type failoverRun struct {
	t        *testing.T
	c        *Cluster
	api      *Proc
	db       *sql.DB
	modelIDs []int
	maxOf    map[int]int // max_workers by model id
	retried  atomic.Int64
}

func newFailoverRun(t *testing.T, redis string) *failoverRun {
	c := NewCluster(t, Settings{LeaseTTL: 4 * time.Second, ShutdownGrace: 2 * time.Second, WorkerCapacity: 8, Redis: redis})
	r := &failoverRun{t: t, c: c, api: c.Start("api"), maxOf: map[int]int{}}
	c.Start("worker")
	c.Start("worker")
	r.db = c.Maria.DB(t, c.DBName)
	r.db.SetMaxOpenConns(4)
	for _, m := range failoverModels {
		id := createModel(t, r.api, m.name, m.maxWorkers, map[string]any{"latency_ms": m.latencyMS, "output_tokens": 4})
		r.modelIDs = append(r.modelIDs, id)
		r.maxOf[id] = m.maxWorkers
	}
	return r
}

// submit starts 8 clients submitting failoverTasks tasks, each with its
// own Idempotency-Key, so a request retried while Redis fails over never
// stores a task twice. The returned function waits until all are accepted.
func (r *failoverRun) submit(ctx context.Context) (wait func()) {
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
				if err := r.submitOne(ctx, i); err != nil {
					errs <- err
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
	return func() {
		wg.Wait()
		close(errs)
		for err := range errs {
			r.t.Fatal(err)
		}
	}
}

// submitOne submits task i until it is accepted or ctx ends.
func (r *failoverRun) submitOne(ctx context.Context, i int) error {
	body := map[string]any{"model_id": r.modelIDs[i%len(r.modelIDs)], "type": "text-generation",
		"input": fmt.Sprintf("failover task %d", i), "priority": 1 + i%3}
	for {
		code, err := call(ctx, "POST", r.api.URL+"/api/v1/tasks", body, nil, "Idempotency-Key", fmt.Sprintf("failover-%d", i))
		if err == nil && code == http.StatusCreated {
			return nil
		}
		r.retried.Add(1)
		if ctx.Err() != nil {
			return fmt.Errorf("task %d never accepted: status %d: %v", i, code, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitCompleted waits until n tasks have completed, within a minute of
// begin.
func (r *failoverRun) waitCompleted(n int, begin time.Time) {
	for {
		var done int
		if err := r.db.QueryRow("SELECT COUNT(*) FROM tasks WHERE status = 'completed'").Scan(&done); err != nil {
			r.t.Fatal(err)
		}
		if done >= n {
			return
		}
		if time.Since(begin) > time.Minute {
			r.t.Fatalf("only %d tasks completed in a minute before the fault", done)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// failoverOutcome is what the database holds after the run.
type failoverOutcome struct {
	stored, keys, completed int
	all                     []attemptRow
	// cut counts attempts that neither succeeded nor still run; lost tasks
	// have no succeeded attempt, duplicated more than one.
	cut, lost, duplicated int
	peaks                 map[int]int // most attempts at once by model
}

func (r *failoverRun) outcome() failoverOutcome {
	t := r.t
	var o failoverOutcome
	if err := r.db.QueryRow("SELECT COUNT(*), COUNT(DISTINCT idempotency_key), COALESCE(SUM(status = 'completed'), 0) FROM tasks").Scan(&o.stored, &o.keys, &o.completed); err != nil {
		t.Fatal(err)
	}
	o.all = attempts(t, r.db, "")
	succeeded := map[int]int{}
	for _, a := range o.all {
		switch a.Status {
		case "succeeded":
			succeeded[a.TaskID]++
		case "running":
			t.Errorf("attempt %d of task %d still running after the run", a.Number, a.TaskID)
		default:
			o.cut++
		}
	}
	for _, id := range taskIDs(t, r.db) {
		switch succeeded[id] {
		case 0:
			o.lost++
		case 1:
		default:
			o.duplicated++
		}
	}
	o.peaks = peakPerModel(o.all, nil)
	return o
}

// longestPause is the longest pause in completions from the kill on: how
// long the scheduler stalled while Redis failed over.
func longestPause(all []attemptRow, killAt time.Time) time.Duration {
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
	return stall
}

func appendFile(path, s string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, err = f.WriteString(s)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// assertOutcome: every task stored and completed exactly once, and no
// model over its max_workers.
func (r *failoverRun) assertOutcome(o failoverOutcome) {
	t := r.t
	if o.stored != failoverTasks || o.keys != failoverTasks {
		t.Errorf("%d tasks stored (%d distinct keys), want %d", o.stored, o.keys, failoverTasks)
	}
	if o.completed != failoverTasks || o.lost != 0 || o.duplicated != 0 {
		t.Errorf("%d completed, %d lost, %d completed twice; want %d, 0, 0", o.completed, o.lost, o.duplicated, failoverTasks)
	}
	for id, peak := range o.peaks {
		if peak > r.maxOf[id] {
			t.Errorf("model %d ran %d attempts at once, max_workers is %d", id, peak, r.maxOf[id])
		}
	}
}
