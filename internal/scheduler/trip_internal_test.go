package scheduler

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	"github.com/go-sql-driver/mysql"

	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/ent/attempt"
	"github.com/llmsched/llm-scheduler/internal/config"
	"github.com/llmsched/llm-scheduler/internal/domain"
	"github.com/llmsched/llm-scheduler/internal/store"
)

// roundTrips counts what a fixture's service sends to MySQL: every
// statement, BEGIN, COMMIT and ROLLBACK is one round trip (the pools
// interpolate arguments, so no statement is prepared).
type roundTrips struct{ main, multi atomic.Int64 }

func (r *roundTrips) reset() { r.main.Store(0); r.multi.Store(0) }

// countingPool opens a pool on cfg's database whose connections count
// their round trips in n.
func countingPool(t *testing.T, cfg config.Database, multi bool, edit func(*mysql.Config), n *atomic.Int64) *sql.DB {
	t.Helper()
	mc, err := mysql.ParseDSN(store.MySQLDSN(cfg, cfg.Database))
	if err != nil {
		t.Fatal(err)
	}
	mc.MultiStatements = multi
	if edit != nil {
		edit(mc)
	}
	conn, err := mysql.NewConnector(mc)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(countingConnector{Connector: conn, n: n})
	t.Cleanup(func() { _ = db.Close() })
	return db
}

type countingConnector struct {
	driver.Connector
	n *atomic.Int64
}

// fullConn is what a go-sql-driver connection implements and
// database/sql (and multiPool.run) use.
type fullConn interface {
	driver.Conn
	driver.ExecerContext
	driver.QueryerContext
	driver.ConnBeginTx
	driver.NamedValueChecker
	driver.SessionResetter
	driver.Validator
}

func (c countingConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &countingConn{fullConn: conn.(fullConn), n: c.n}, nil
}

type countingConn struct {
	fullConn
	n *atomic.Int64
}

func (c *countingConn) ExecContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Result, error) {
	res, err := c.fullConn.ExecContext(ctx, q, args)
	if !errors.Is(err, driver.ErrSkip) { // sent nothing
		c.n.Add(1)
	}
	return res, err
}

func (c *countingConn) QueryContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
	c.n.Add(1)
	return c.fullConn.QueryContext(ctx, q, args)
}

func (c *countingConn) BeginTx(ctx context.Context, o driver.TxOptions) (driver.Tx, error) {
	c.n.Add(1)
	tx, err := c.fullConn.BeginTx(ctx, o)
	if err != nil {
		return nil, err
	}
	return countingTx{Tx: tx, n: c.n}, nil
}

type countingTx struct {
	driver.Tx
	n *atomic.Int64
}

func (t countingTx) Commit() error   { t.n.Add(1); return t.Tx.Commit() }
func (t countingTx) Rollback() error { t.n.Add(1); return t.Tx.Rollback() }

// countRoundTrips rebuilds f's service over counting pools on the same
// MySQL database (skipping the test on SQLite, which has no round
// trips); edit, if set, changes the multi-statement pool's configuration.
func countRoundTrips(t *testing.T, f *fixture, edit func(*mysql.Config)) *roundTrips {
	t.Helper()
	if f.db.Driver != "mysql" {
		t.Skip("round trips are MySQL's: run with LLMSCHED_TEST_BACKEND=mysql")
	}
	rt := &roundTrips{}
	main := entsql.OpenDB(dialect.MySQL, countingPool(t, f.db, false, nil, &rt.main))
	cfg := config.Defaults(true)
	cfg.Database = f.db
	f.svc = New(Options{DB: ent.NewClient(ent.Driver(main)), MultiDB: countingPool(t, f.db, true, edit, &rt.multi),
		Dispatcher: f.disp, Bus: f.bus, Config: &cfg, Logger: f.svc.m.log})
	return rt
}

// A batch's start and its completion are each one packet (its statements,
// their guards and the COMMIT) on the multi-statement pool, nothing on the
// main pool; the attempts keep the ids MySQL gave them. Where guards would
// not stop a packet, the COMMIT takes a round trip of its own.
func TestHotTransactionsTakeOneRoundTrip(t *testing.T) {
	for _, c := range []struct {
		name   string
		guards int32
		trips  int64
	}{{"guards hold", guardsHold, 1}, {"guards fail", guardsFail, 2}} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			rt := countRoundTrips(t, f, nil)
			ctx := context.Background()
			startAll(t, f, f.tasks(t, 1)) // the pool probes its guards
			if got := f.svc.m.multi.guards.Load(); got != guardsHold {
				t.Fatalf("probe on this server: guards %d, want %d (they hold)", got, guardsHold)
			}
			f.svc.m.multi.guards.Store(c.guards)
			ts := f.tasks(t, 3)
			reqs := make([]startReq, len(ts))
			for i, tk := range ts {
				reqs[i] = startReq{t: tk, modelID: f.model.ID, worker: "w"}
			}
			rt.reset()
			res := f.svc.startTasks(ctx, reqs)
			if main, multi := rt.main.Load(), rt.multi.Load(); main != 0 || multi != c.trips {
				t.Fatalf("start of 3 tasks: %d round trips on the main pool and %d on the multi-statement one, want 0 and %d", main, multi, c.trips)
			}
			creqs := make([]completeReq, len(ts))
			for i, r := range res {
				if r.err != nil {
					t.Fatalf("start item %d: %v", i, r.err)
				}
				a, err := f.svc.m.db.Attempt.Get(ctx, r.out.att.ID)
				if err != nil || a.TaskID != ts[i].ID || a.Number != 1 {
					t.Fatalf("attempt id %d of task %d reads %+v %v", r.out.att.ID, ts[i].ID, a, err)
				}
				creqs[i] = completeReq{t: r.out.running, a: r.out.att, o: Outcome{Output: "out " + string(rune('a'+i)), PromptTokens: i + 1, Estimated: i == 1}}
			}
			rt.reset()
			for i, r := range f.svc.completeTasks(ctx, creqs) {
				if r.err != nil {
					t.Fatalf("complete item %d: %v", i, r.err)
				}
			}
			if main, multi := rt.main.Load(), rt.multi.Load(); main != 0 || multi != c.trips {
				t.Fatalf("completion of 3 tasks: %d round trips on the main pool and %d on the multi-statement one, want 0 and %d", main, multi, c.trips)
			}
			for i, c := range creqs {
				got, _ := f.svc.m.db.Task.Get(ctx, c.t.ID)
				a, _ := f.svc.m.db.Attempt.Get(ctx, c.a.ID)
				if got.Status != domain.StatusCompleted || got.Output != c.o.Output || got.CostEstimated != (i == 1) ||
					a.Status != domain.AttemptSucceeded || a.PromptTokens != i+1 || a.CostEstimated != (i == 1) {
					t.Fatalf("task %d: %s %q estimated %v; attempt %s tokens %d estimated %v", got.ID, got.Status, got.Output,
						got.CostEstimated, a.Status, a.PromptTokens, a.CostEstimated)
				}
			}
		})
	}
}

// A fence that does not hold in a one-trip packet (a task of the batch was
// cancelled since its worker read it) stops the packet at its guard:
// nothing of the batch is committed, the rollback takes a second round
// trip, and the batch goes item by item, where the fresh tasks start and
// the cancelled one is left alone.
func TestFailedGuardRollsTheWholePacketBack(t *testing.T) {
	f := newFixture(t)
	rt := countRoundTrips(t, f, nil)
	ctx := context.Background()
	startAll(t, f, f.tasks(t, 1)) // the pool probes its guards
	ts := f.tasks(t, 3)
	if _, err := f.svc.CancelTask(ctx, ts[1].ID); err != nil {
		t.Fatal(err)
	}
	reqs := make([]startReq, len(ts))
	for i, tk := range ts {
		reqs[i] = startReq{t: tk, modelID: f.model.ID, worker: "w"}
	}
	rt.reset()
	res := f.svc.startTasks(ctx, reqs)
	if multi := rt.multi.Load(); multi != 2 {
		t.Fatalf("%d round trips on the multi-statement pool, want 2 (the stopped packet and its ROLLBACK)", multi)
	}
	if rt.main.Load() == 0 {
		t.Fatal("the batch did not go item by item on the main pool")
	}
	if res[0].err != nil || res[2].err != nil || CodeOf(res[1].err) != CodeConflict {
		t.Fatalf("results %v / %v / %v, want the cancelled one CONFLICT", res[0].err, res[1].err, res[2].err)
	}
	for i, tk := range ts {
		got, _ := f.svc.m.db.Task.Get(ctx, tk.ID)
		n, _ := f.svc.m.db.Attempt.Query().Where(attempt.TaskID(tk.ID)).Count(ctx)
		want, attempts := domain.StatusRunning, 1
		if i == 1 {
			want, attempts = domain.StatusCancelled, 0
		}
		if got.Status != want || n != attempts {
			t.Fatalf("task %d: %s with %d attempts, want %s with %d", tk.ID, got.Status, n, want, attempts)
		}
	}
}

// A packet the driver cannot interpolate (here: larger than its
// max_allowed_packet) goes statement by statement on the main pool
// instead, and is stored all the same.
func TestHotTransactionTooLargeForOnePacketGoesPlain(t *testing.T) {
	f := newFixture(t)
	rt := countRoundTrips(t, f, func(mc *mysql.Config) { mc.MaxAllowedPacket = 4096 })
	ctx := context.Background()
	st := startAll(t, f, f.tasks(t, 2))
	big := strings.Repeat("x", 8192)
	reqs := []completeReq{{t: st[0].running, a: st[0].att, o: Outcome{Output: big}}, {t: st[1].running, a: st[1].att, o: Outcome{Output: "small"}}}
	completePlain(t, f, rt, reqs)
	if got, _ := f.svc.m.db.Task.Get(ctx, st[0].running.ID); got.Output != big || got.Status != domain.StatusCompleted {
		t.Fatalf("task %d: %s, output of %d bytes", got.ID, got.Status, len(got.Output))
	}
}

// A completion that owes a webhook reads the completed row to build the
// delivery: a read the recorder cannot answer, so the batch runs as a
// plain transaction on the main pool, and every task and the delivery are
// stored.
func TestHotTransactionThatReadsRunsPlain(t *testing.T) {
	f := newFixture(t)
	rt := countRoundTrips(t, f, nil)
	ctx := context.Background()
	// Written directly: the callback URL's checks and signing are not
	// what this is about.
	hooked, err := f.svc.m.db.Task.Create().SetModelID(f.model.ID).SetType(domain.TaskType("text-generation")).SetPrompt("hi").
		SetMaxRetries(0).SetStatus(domain.StatusPending).SetCallbackURL("https://hooks.example.com/done").Save(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st := startAll(t, f, []*ent.Task{hooked, f.tasks(t, 1)[0]})
	reqs := []completeReq{{t: st[0].running, a: st[0].att, o: Outcome{Output: "hooked"}}, {t: st[1].running, a: st[1].att, o: Outcome{Output: "plain"}}}
	completePlain(t, f, rt, reqs)
	for _, r := range reqs {
		if got, _ := f.svc.m.db.Task.Get(ctx, r.t.ID); got.Status != domain.StatusCompleted || got.Output != r.o.Output {
			t.Fatalf("task %d: %s %q", got.ID, got.Status, got.Output)
		}
	}
	if n, err := f.svc.m.db.WebhookDelivery.Query().Count(ctx); err != nil || n != 1 {
		t.Fatalf("%d webhook deliveries (err %v), want 1", n, err)
	}
}

// completePlain completes reqs as one batch and checks every item was
// stored by a plain transaction: statement by statement on the main pool
// (BEGIN, two UPDATEs and COMMIT at least), nothing on the multi-statement
// one.
func completePlain(t *testing.T, f *fixture, rt *roundTrips, reqs []completeReq) {
	t.Helper()
	rt.reset()
	for i, r := range f.svc.completeTasks(context.Background(), reqs) {
		if r.err != nil {
			t.Fatalf("item %d: %v", i, r.err)
		}
	}
	if main, multi := rt.main.Load(), rt.multi.Load(); main < 4 || multi != 0 {
		t.Fatalf("%d round trips on the main pool and %d on the multi-statement one, want the plain transaction (>= 4) and none", main, multi)
	}
}
