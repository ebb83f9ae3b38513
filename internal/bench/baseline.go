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

// run pushes n tasks from `submitters` goroutines through raw asynq and
// waits until the handler has completed all of them.
func (b *baseline) run(ctx context.Context, n, submitters int) (e2eResult, error) {
	if err := b.setup(ctx); err != nil {
		return e2eResult{}, err
	}
	var mu sync.Mutex
	completed := make(map[int64]time.Time, n)
	allDone := make(chan struct{})
	handler := asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
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
		mu.Lock()
		completed[id] = time.Now()
		if len(completed) == n {
			close(allDone)
		}
		mu.Unlock()
		return nil
	})
	srv := asynq.NewServerFromRedisClient(b.rdb, asynq.Config{
		Concurrency: b.concurrency, Queues: map[string]int{baselineQueue: 1},
		TaskCheckInterval: b.poll, LogLevel: asynq.ErrorLevel,
	})
	if err := srv.Start(handler); err != nil {
		return e2eResult{}, fmt.Errorf("start baseline asynq server: %w", err)
	}
	defer srv.Shutdown()
	cl := asynq.NewClientFromRedisClient(b.rdb)

	sent := make(map[int64]time.Time, n)
	var sentMu sync.Mutex
	var next sync.Mutex
	i := 0
	errc := make(chan error, submitters)
	start := time.Now()
	var wg sync.WaitGroup
	for range submitters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				next.Lock()
				if i >= n {
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
				sentMu.Lock()
				sent[id] = t0
				sentMu.Unlock()
				s := strconv.FormatInt(id, 10)
				if _, err := cl.EnqueueContext(ctx, asynq.NewTask("bench:baseline", []byte(s)),
					asynq.Queue(baselineQueue), asynq.TaskID("b"+s)); err != nil {
					errc <- fmt.Errorf("baseline enqueue: %w", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return e2eResult{}, err
	}
	select {
	case <-allDone:
	case <-time.After(time.Duration(n)*20*time.Millisecond + 60*time.Second):
		return e2eResult{}, fmt.Errorf("baseline: only %d of %d tasks completed", len(completed), n)
	case <-ctx.Done():
		return e2eResult{}, ctx.Err()
	}
	mu.Lock()
	defer mu.Unlock()
	var last time.Time
	lat := make(latencies, 0, n)
	for id, t := range completed {
		if t.After(last) {
			last = t
		}
		lat = append(lat, t.Sub(sent[id]))
	}
	return e2eResult{n: n, elapsed: last.Sub(start), latency: lat}, nil
}

// cleanup drops the baseline's asynq queue.
func (b *baseline) cleanup() {
	insp := asynq.NewInspectorFromRedisClient(b.rdb)
	_ = insp.DeleteQueue(baselineQueue, true)
}
