package bench

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// baselineQueue is the baseline's own asynq queue; the scheduler never
// reads it.
const baselineQueue = "bench-baseline"

// baseline is raw asynq plus the least database work any persistent
// scheduler must do: per task an INSERT, an enqueue, and a handler doing
// two UPDATEs by primary key (running, then completed with the output).
type baseline struct {
	db          *sql.DB
	rdb         redis.UniversalClient
	dialect     string
	concurrency int
	poll        time.Duration
}

func (b *baseline) setup(ctx context.Context) error {
	var ddl string
	switch b.dialect {
	case "mysql":
		ddl = `CREATE TABLE IF NOT EXISTS bench_baseline (
			id BIGINT AUTO_INCREMENT PRIMARY KEY, status VARCHAR(16) NOT NULL, input TEXT NOT NULL,
			output TEXT NULL, created_at DATETIME(6) NOT NULL, started_at DATETIME(6) NULL,
			finished_at DATETIME(6) NULL) ENGINE=InnoDB`
	default:
		ddl = `CREATE TABLE IF NOT EXISTS bench_baseline (
			id INTEGER PRIMARY KEY AUTOINCREMENT, status TEXT NOT NULL, input TEXT NOT NULL,
			output TEXT NULL, created_at DATETIME NOT NULL, started_at DATETIME NULL, finished_at DATETIME NULL)`
	}
	if _, err := b.db.ExecContext(ctx, ddl); err != nil {
		return fmt.Errorf("create baseline scratch table: %w", err)
	}
	if _, err := b.db.ExecContext(ctx, "DELETE FROM bench_baseline"); err != nil {
		return fmt.Errorf("empty baseline scratch table: %w", err)
	}
	return nil
}

// baselineRun is one run's bookkeeping: when each task was sent and when
// the handler completed it.
type baselineRun struct {
	n         int
	mu        sync.Mutex
	completed map[int64]time.Time
	allDone   chan struct{}
	sentMu    sync.Mutex
	sent      map[int64]time.Time
}

// run pushes n tasks from `submitters` goroutines through raw asynq and
// waits until the handler has completed all of them.
func (b *baseline) run(ctx context.Context, n, submitters int) (e2eResult, error) {
	if err := b.setup(ctx); err != nil {
		return e2eResult{}, err
	}
	r := &baselineRun{n: n, completed: make(map[int64]time.Time, n), allDone: make(chan struct{}), sent: make(map[int64]time.Time, n)}
	srv := asynq.NewServerFromRedisClient(b.rdb, asynq.Config{
		Concurrency: b.concurrency, Queues: map[string]int{baselineQueue: 1},
		TaskCheckInterval: b.poll, LogLevel: asynq.ErrorLevel,
	})
	if err := srv.Start(b.handler(r)); err != nil {
		return e2eResult{}, fmt.Errorf("start baseline asynq server: %w", err)
	}
	defer srv.Shutdown()
	cl := asynq.NewClientFromRedisClient(b.rdb)
	start := time.Now()
	if err := b.submit(ctx, cl, r, submitters); err != nil {
		return e2eResult{}, err
	}
	select {
	case <-r.allDone:
	case <-time.After(time.Duration(n)*20*time.Millisecond + 60*time.Second):
		return e2eResult{}, fmt.Errorf("baseline: only %d of %d tasks completed", len(r.completed), n)
	case <-ctx.Done():
		return e2eResult{}, ctx.Err()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var last time.Time
	lat := make(latencies, 0, n)
	for id, t := range r.completed {
		if t.After(last) {
			last = t
		}
		lat = append(lat, t.Sub(r.sent[id]))
	}
	return e2eResult{n: n, elapsed: last.Sub(start), latency: lat}, nil
}

// handler is the baseline's task handler: two UPDATEs by primary key, then
// the completion is recorded in r.
func (b *baseline) handler(r *baselineRun) asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		id, err := strconv.ParseInt(string(t.Payload()), 10, 64)
		if err != nil {
			return fmt.Errorf("bad payload %q: %w", t.Payload(), asynq.SkipRetry)
		}
		if _, err := b.db.ExecContext(ctx, "UPDATE bench_baseline SET status = ?, started_at = ? WHERE id = ?", "running", time.Now().UTC(), id); err != nil {
			return err
		}
		if _, err := b.db.ExecContext(ctx, "UPDATE bench_baseline SET status = ?, output = ?, finished_at = ? WHERE id = ?",
			"completed", "simulated output of sixteen tokens", time.Now().UTC(), id); err != nil {
			return err
		}
		r.mu.Lock()
		r.completed[id] = time.Now()
		if len(r.completed) == r.n {
			close(r.allDone)
		}
		r.mu.Unlock()
		return nil
	})
}

// submit inserts and enqueues r.n tasks from `submitters` goroutines,
// recording when each was sent.
func (b *baseline) submit(ctx context.Context, cl *asynq.Client, r *baselineRun, submitters int) error {
	var next sync.Mutex
	i := 0
	errc := make(chan error, submitters)
	var wg sync.WaitGroup
	for range submitters {
		wg.Go(func() {
			for {
				next.Lock()
				if i >= r.n {
					next.Unlock()
					return
				}
				i++
				next.Unlock()
				t0 := time.Now()
				res, err := b.db.ExecContext(ctx, "INSERT INTO bench_baseline (status, input, created_at) VALUES (?, ?, ?)",
					"pending", "benchmark input", time.Now().UTC())
				if err != nil {
					errc <- fmt.Errorf("baseline insert: %w", err)
					return
				}
				id, _ := res.LastInsertId()
				r.sentMu.Lock()
				r.sent[id] = t0
				r.sentMu.Unlock()
				s := strconv.FormatInt(id, 10)
				if _, err := cl.EnqueueContext(ctx, asynq.NewTask("bench:baseline", []byte(s)),
					asynq.Queue(baselineQueue), asynq.TaskID("b"+s)); err != nil {
					errc <- fmt.Errorf("baseline enqueue: %w", err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	return <-errc
}

// cleanup drops the baseline's asynq queue.
func (b *baseline) cleanup() {
	insp := asynq.NewInspectorFromRedisClient(b.rdb)
	_ = insp.DeleteQueue(baselineQueue, true)
}
