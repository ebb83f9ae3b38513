//go:build chaos

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
)

// The chaos run (make chaos): 2 api and 3 worker processes on the private
// MariaDB and Redis, 2,000 simulator tasks over 5 models with different
// max_workers, submitted at a steady pace through both api processes while
// one worker is SIGKILLed twice (restarted after each kill), Redis is
// restarted with its data gone, and MariaDB is stopped for 10 seconds.
//
// Afterwards every task must be completed exactly once (one succeeded
// attempt per task, no task lost or stored twice) and no model may have
// run more than max_workers attempts at once, judged from the attempt
// intervals stored in the database. An attempt lost with a killed worker
// is counted until the moment of the kill: the process ran nothing after
// that (its lease outlives it, and its record is closed only at takeover).
// Every re-execution (an attempt after a task's first: a provider called
// again) must be explained by a fault that cut the previous attempt off,
// and every fault must have hit running attempts.
//
// With CHAOS_REPORT=file the measured table is written there (markdown).

const (
	chaosTasks   = 2000
	submitPerSec = 30
)

var chaosModels = []struct {
	name       string
	maxWorkers int
	latencyMS  int
}{
	{"chaos-a", 1, 200},
	{"chaos-b", 2, 400},
	{"chaos-c", 3, 500},
	{"chaos-d", 4, 600},
	{"chaos-e", 6, 800},
}

func TestChaos(t *testing.T) {
	r := newChaosRun(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	waitSubmitted := r.submit(ctx)
	r.injectFaults()
	waitSubmitted()
	r.submitted = time.Now()
	waitFinished(ctx, t, r.db, 500*time.Millisecond)
	r.drained = time.Now()

	o := r.outcome()
	report := r.renderReport(o)
	t.Log("\n" + report)
	if path := os.Getenv("CHAOS_REPORT"); path != "" {
		if err := os.WriteFile(path, []byte(report), 0o644); err != nil {
			t.Error(err)
		}
	}
	r.assertOutcome(o)
}

// chaosRun is the cluster of a chaos run and what happened in it.
type chaosRun struct {
	t       *testing.T
	c       *Cluster
	apis    []*Proc
	workers []*Proc
	db      *sql.DB
	// modelIDs are chaosModels' ids, maxOf their max_workers by id.
	modelIDs []int
	maxOf    map[int]int
	// refused counts submissions answered 503, retried every retry.
	refused, retried          atomic.Int64
	faults                    []*fault
	begin, submitted, drained time.Time
}

// newChaosRun starts 2 api and 3 worker processes and creates the models.
func newChaosRun(t *testing.T) *chaosRun {
	c := NewCluster(t, Settings{LeaseTTL: 4 * time.Second, ShutdownGrace: 2 * time.Second, WorkerCapacity: 8})
	r := &chaosRun{t: t, c: c, maxOf: map[int]int{},
		apis:    []*Proc{c.Start("api"), c.Start("api")},
		workers: []*Proc{c.Start("worker"), c.Start("worker"), c.Start("worker")}}
	r.db = c.Maria.DB(t, c.DBName)
	r.db.SetMaxOpenConns(4)
	r.modelIDs = make([]int, len(chaosModels))
	for i, m := range chaosModels {
		r.modelIDs[i] = createModel(t, r.apis[0], m.name, m.maxWorkers,
			map[string]any{"latency_ms": m.latencyMS, "output_tokens": 4})
		r.maxOf[r.modelIDs[i]] = m.maxWorkers
	}
	r.begin = time.Now()
	return r
}

// submit starts submitting chaosTasks tasks at a steady pace from 8
// clients, each with its own Idempotency-Key, so a request retried after a
// 503 or a dropped connection never stores a task twice. The returned
// function waits until all are accepted.
func (r *chaosRun) submit(ctx context.Context) (wait func()) {
	pace := time.NewTicker(time.Second / submitPerSec)
	next := make(chan int)
	go func() {
		defer close(next)
		for i := range chaosTasks {
			select {
			case <-pace.C:
			case <-ctx.Done():
				return
			}
			next <- i
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := r.submitOne(ctx, i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	return func() {
		wg.Wait()
		pace.Stop()
		close(errs)
		for err := range errs {
			r.t.Fatal(err)
		}
	}
}

// submitOne submits task i, through each api process in turn, until one
// accepts it or ctx ends.
func (r *chaosRun) submitOne(ctx context.Context, i int) error {
	body := map[string]any{"model_id": r.modelIDs[i%len(r.modelIDs)], "type": "text-generation",
		"input": fmt.Sprintf("chaos task %d", i), "priority": 1 + i%3}
	for try := 0; ; try++ {
		api := r.apis[(i+try)%len(r.apis)]
		code, err := call(ctx, "POST", api.URL+"/api/v1/tasks", body, nil, "Idempotency-Key", fmt.Sprintf("chaos-%d", i))
		if err == nil && code == http.StatusCreated {
			return nil
		}
		if code == http.StatusServiceUnavailable {
			r.refused.Add(1)
		}
		r.retried.Add(1)
		if ctx.Err() != nil {
			return fmt.Errorf("task %d never accepted: status %d: %v", i, code, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// injectFaults runs the fault schedule: a worker killed at 10s and 55s,
// Redis restarted empty at 22s, MariaDB down 10s from 35s.
func (r *chaosRun) injectFaults() {
	at := func(d time.Duration) { time.Sleep(time.Until(r.begin.Add(d))) }
	at(10 * time.Second)
	r.killWorker("worker SIGKILL #1")
	at(22 * time.Second)
	r.outage("Redis restart, data lost", "redis-server killed and restarted empty (no persistence) after 1s",
		r.c.Redis.Stop, time.Second, r.c.Redis.Start)
	at(35 * time.Second)
	r.outage("MySQL down 10s", "mariadbd stopped (SIGTERM), started again 10s after it was down",
		r.c.Maria.Stop, 10*time.Second, r.c.Maria.Start)
	at(55 * time.Second)
	r.killWorker("worker SIGKILL #2")
}

// killWorker SIGKILLs the first worker and starts a new one a second later.
func (r *chaosRun) killWorker(name string) {
	w := r.workers[0]
	f := &fault{name: name, action: "SIGKILL worker process (pid " + fmt.Sprint(w.PID) + "), new worker started 1s later",
		start: time.Now(), worker: w.Worker}
	w.Kill()
	f.end = time.Now()
	r.faults = append(r.faults, f)
	time.Sleep(time.Second)
	r.workers[0] = r.c.Start("worker")
}

// outage stops a service, waits, and starts it again.
func (r *chaosRun) outage(name, action string, stop func(), down time.Duration, start func() error) {
	f := &fault{name: name, action: action, start: time.Now()}
	stop()
	time.Sleep(down)
	if err := start(); err != nil {
		r.t.Fatal(err)
	}
	f.end = time.Now()
	r.faults = append(r.faults, f)
}

// chaosOutcome is what the database holds after the run.
type chaosOutcome struct {
	counts  map[string]int // tasks by status
	keys    int            // distinct idempotency keys
	taskIDs []int
	all     []attemptRow
	// lost tasks have no succeeded attempt, duplicated more than one.
	lost, duplicated int
	peaks            map[int]int // most attempts at once by model
	reruns           []reExecution
}

func (r *chaosRun) outcome() chaosOutcome {
	t := r.t
	o := chaosOutcome{counts: map[string]int{}}
	eachRow(t, r.db, func(rows *sql.Rows) error {
		var s string
		var n int
		err := rows.Scan(&s, &n)
		o.counts[s] = n
		return err
	}, "SELECT status, COUNT(*) FROM tasks GROUP BY status")
	if err := r.db.QueryRow("SELECT COUNT(DISTINCT idempotency_key) FROM tasks").Scan(&o.keys); err != nil {
		t.Fatal(err)
	}
	o.taskIDs = taskIDs(t, r.db)
	o.all = attempts(t, r.db, "")
	succeeded := map[int]int{}
	for _, a := range o.all {
		switch a.Status {
		case "succeeded":
			succeeded[a.TaskID]++
		case "running":
			t.Errorf("attempt %d of task %d still running after the run", a.Number, a.TaskID)
		}
	}
	for _, id := range o.taskIDs {
		switch n := succeeded[id]; {
		case n == 0:
			o.lost++
		case n > 1:
			o.duplicated++
		}
	}
	// Concurrency per model from the attempt intervals.
	killedAt := map[string]time.Time{}
	for _, f := range r.faults {
		if f.worker != "" {
			killedAt[f.worker] = f.start
		}
	}
	o.peaks = peakPerModel(o.all, killedAt)
	o.reruns = reExecutions(o.all, r.faults)
	return o
}

// assertOutcome: every task stored once and completed exactly once, no
// model over its max_workers, every re-execution explained by a fault and
// every fault hitting running attempts.
func (r *chaosRun) assertOutcome(o chaosOutcome) {
	t := r.t
	if len(o.taskIDs) != chaosTasks || o.keys != chaosTasks {
		t.Errorf("%d tasks stored (%d distinct keys), want %d: a submission was lost or stored twice", len(o.taskIDs), o.keys, chaosTasks)
	}
	if o.counts["completed"] != chaosTasks {
		t.Errorf("task statuses %v, want all %d completed", o.counts, chaosTasks)
	}
	if o.lost != 0 || o.duplicated != 0 {
		t.Errorf("%d tasks without a succeeded attempt, %d with more than one; want 0 and 0", o.lost, o.duplicated)
	}
	for id, peak := range o.peaks {
		if peak > r.maxOf[id] {
			t.Errorf("model %d ran %d attempts at once, max_workers is %d", id, peak, r.maxOf[id])
		}
	}
	// A provider called again for a task must be the price of a fault.
	for _, re := range o.reruns {
		if re.fault == nil {
			t.Errorf("task %d ran again (attempt %d after %+v) with no fault to explain it", re.next.TaskID, re.next.Number, re.prev)
		}
	}
	// A fault that hit no running work proved nothing.
	for _, f := range r.faults {
		if n := f.running(o.all); n == 0 {
			t.Errorf("fault %q hit no running attempt", f.name)
		}
	}
}

// renderReport is the markdown table of the run: a line per fault, one
// for the whole run, and each model's peak concurrency.
func (r *chaosRun) renderReport(o chaosOutcome) string {
	r.t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "| fault | what was done | at | tasks unfinished when it hit | attempts running when it hit | of those tasks completed | lost | duplicated | re-executions, each explained by a fault | time to recover |\n")
	fmt.Fprintf(&b, "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
	succeededBy := map[int]attemptRow{}
	for _, a := range o.all {
		if a.Status == "succeeded" {
			succeededBy[a.TaskID] = a
		}
	}
	for _, f := range r.faults {
		b.WriteString(r.faultLine(f, o, succeededBy))
	}
	unexplained := 0
	for _, re := range o.reruns {
		if re.fault == nil {
			unexplained++
		}
	}
	fmt.Fprintf(&b, "| **whole run** | %d tasks submitted at %d/s through 2 api processes, 3 workers | t+0 | %d | %d in all | %d | %d | %d | %d (%d unexplained) | all submitted by t+%s, all finished by t+%s |\n",
		chaosTasks, submitPerSec, o.keys, len(o.all), o.counts["completed"], o.lost, o.duplicated, len(o.reruns), unexplained,
		seconds(r.submitted.Sub(r.begin)), seconds(r.drained.Sub(r.begin)))
	fmt.Fprintf(&b, "\nSubmissions answered 503 and retried with the same Idempotency-Key: %d (all retries: %d). Task statuses: %v.\n\n", r.refused.Load(), r.retried.Load(), o.counts)
	fmt.Fprintf(&b, "| model | max_workers | most attempts at once |\n| --- | --- | --- |\n")
	var ids []int
	for id := range r.maxOf {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	for _, id := range ids {
		fmt.Fprintf(&b, "| %d | %d | %d |\n", id, r.maxOf[id], o.peaks[id])
	}
	return b.String()
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.1f s", d.Seconds()) }

// faultLine is the report's line for fault f: the tasks unfinished when it
// hit and how they ended, the attempts it cut off, and how soon work
// resumed.
func (r *chaosRun) faultLine(f *fault, o chaosOutcome, succeededBy map[int]attemptRow) string {
	affected, done, dup := r.tasksHitBy(f)
	cut := 0
	var recovery time.Duration
	for _, re := range o.reruns {
		if re.fault != f {
			continue
		}
		cut++
		if s, ok := succeededBy[re.next.TaskID]; ok && s.Finished != nil {
			recovery = max(recovery, s.Finished.Sub(f.start))
		}
	}
	// Work resumed: the first attempt that started after the fault ended
	// and then succeeded.
	var resumed time.Duration = -1
	for _, a := range o.all {
		if a.Status == "succeeded" && a.Started.After(f.end) && a.Finished != nil {
			if d := a.Finished.Sub(f.end); resumed < 0 || d < resumed {
				resumed = d
			}
		}
	}
	rec := fmt.Sprintf("first completion of a new attempt %s after it ended", seconds(resumed))
	if cut > 0 {
		rec += fmt.Sprintf("; every cut-off task completed elsewhere within %s of the fault", seconds(recovery))
	}
	return fmt.Sprintf("| %s | %s | t+%s | %d | %d | %d | %d | %d | %d | %s |\n", f.name, f.action,
		seconds(f.start.Sub(r.begin)), affected, f.running(o.all), done, affected-done, dup, cut, rec)
}

// tasksHitBy counts the tasks unfinished when f hit, those of them that
// completed, and those that completed more than once.
func (r *chaosRun) tasksHitBy(f *fault) (affected, done, dup int) {
	eachRow(r.t, r.db, func(rows *sql.Rows) error {
		var id, n int
		if err := rows.Scan(&id, &n); err != nil {
			return err
		}
		affected++
		if n >= 1 {
			done++
		}
		if n > 1 {
			dup++
		}
		return nil
	}, `SELECT t.id, (SELECT COUNT(*) FROM attempts a WHERE a.task_id = t.id AND a.status = 'succeeded')
		FROM tasks t WHERE t.created_at <= ? AND (t.finished_at IS NULL OR t.finished_at > ?)`, f.start.UTC(), f.start.UTC())
	return affected, done, dup
}
