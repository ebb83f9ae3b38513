package bench

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Machine limits: what this machine's database and Redis do at best, with
// nothing of ours (or asynq's) in between, measured in the same rep as
// the figures they bound. A durable commit is the floor of every task
// transition; a Redis round trip is the floor of every dispatch step.
// They tell a slow rep on a busy machine from a slow scheduler.

// limits is one rep's measurement.
type limits struct {
	redisRTT latencies
	// Single-row autocommit statements by one client (each waits for its
	// commit) and by `clients` at once (the server may group commits).
	insert1, update1 rateLat
	insertN, updateN rateLat
	clients          int
}

type rateLat struct {
	rate float64
	lat  latencies
}

// limitsTable is the scratch table of the database measurements.
const limitsTable = "bench_limits"

// measureLimits measures Redis's PING round trip (pings of them, one at a
// time) and the database's single-row INSERT and UPDATE by primary key
// (each for window, from one client and then from clients at once), on a
// scratch table it drops afterwards.
func measureLimits(ctx context.Context, db *sql.DB, dialect string, rdb redis.UniversalClient, pings, clients int, window time.Duration) (l limits, err error) {
	l.clients = clients
	for range pings {
		t0 := time.Now()
		if err := rdb.Ping(ctx).Err(); err != nil {
			return l, fmt.Errorf("limits: redis ping: %w", err)
		}
		l.redisRTT = append(l.redisRTT, time.Since(t0))
	}
	ddl := `CREATE TABLE ` + limitsTable + ` (id BIGINT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(64) NOT NULL, n BIGINT NOT NULL) ENGINE=InnoDB`
	if dialect != "mysql" {
		ddl = `CREATE TABLE ` + limitsTable + ` (id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT NOT NULL, n INTEGER NOT NULL)`
	}
	if _, err := db.ExecContext(ctx, "DROP TABLE IF EXISTS "+limitsTable); err != nil {
		return l, fmt.Errorf("limits: drop scratch table: %w", err)
	}
	if _, err := db.ExecContext(ctx, ddl); err != nil {
		return l, fmt.Errorf("limits: create scratch table: %w", err)
	}
	defer func() {
		if _, derr := db.ExecContext(context.WithoutCancel(ctx), "DROP TABLE IF EXISTS "+limitsTable); derr != nil {
			err = errors.Join(err, fmt.Errorf("limits: drop scratch table: %w", derr))
		}
	}()
	var inserted atomic.Int64
	insert := func(ctx context.Context) error {
		_, err := db.ExecContext(ctx, "INSERT INTO "+limitsTable+" (v, n) VALUES (?, ?)", "pending", 0)
		if err == nil {
			inserted.Add(1)
		}
		return err
	}
	var turn atomic.Int64
	update := func(ctx context.Context) error {
		// Rows 1..inserted exist (the INSERT runs first): cycle over them.
		id := turn.Add(1)%max(inserted.Load(), 1) + 1
		_, err := db.ExecContext(ctx, "UPDATE "+limitsTable+" SET v = ?, n = n + 1 WHERE id = ?", "running", id)
		return err
	}
	if l.insert1, err = statementRate(ctx, 1, window, insert); err != nil {
		return l, fmt.Errorf("limits: insert: %w", err)
	}
	if l.update1, err = statementRate(ctx, 1, window, update); err != nil {
		return l, fmt.Errorf("limits: update: %w", err)
	}
	if l.insertN, err = statementRate(ctx, clients, window, insert); err != nil {
		return l, fmt.Errorf("limits: insert from %d clients: %w", clients, err)
	}
	if l.updateN, err = statementRate(ctx, clients, window, update); err != nil {
		return l, fmt.Errorf("limits: update from %d clients: %w", clients, err)
	}
	return l, nil
}

// statementRate runs do from clients goroutines, each one call at a time,
// for window, and returns the calls per second and their latencies.
func statementRate(ctx context.Context, clients int, window time.Duration, do func(context.Context) error) (rateLat, error) {
	var mu sync.Mutex
	var lat latencies
	var first error
	start := time.Now()
	deadline := start.Add(window)
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			var own latencies
			var err error
			for err == nil && time.Now().Before(deadline) {
				t0 := time.Now()
				if err = do(ctx); err == nil {
					own = append(own, time.Since(t0))
				}
			}
			mu.Lock()
			lat = append(lat, own...)
			if err != nil && first == nil {
				first = err
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	if first != nil {
		return rateLat{}, first
	}
	return rateLat{rate: throughput(len(lat), time.Since(start)), lat: lat}, nil
}

// rows reports l under phase.
func (l limits) rows(rep *report, phase, db string) {
	rep.row(phase, "Redis round trip (PING)", l.redisRTT.summary())
	one := func(name string, r rateLat) {
		rep.row(phase, name, fmt.Sprintf("%.0f/s  (%s)", r.rate, r.lat.summary()))
	}
	one(db+" single-row INSERT, 1 client", l.insert1)
	one(db+" single-row UPDATE by id, 1 client", l.update1)
	one(fmt.Sprintf("%s single-row INSERT, %d clients", db, l.clients), l.insertN)
	one(fmt.Sprintf("%s single-row UPDATE by id, %d clients", db, l.clients), l.updateN)
}
