package scheduler

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"

	"entgo.io/ent/dialect"
	"github.com/go-sql-driver/mysql"

	"github.com/llmsched/llm-scheduler/ent"
)

// Hot transactions in one round trip (MySQL). A batch's start is BEGIN,
// a fenced UPDATE, an INSERT of the attempts and COMMIT; sent one by one
// that is four round trips, each a write and a read on both sides and a
// wake-up of the server's connection thread. On a CPU-bound host those,
// not the rows, were most of what a transition cost, and at idle they are
// most of the time from a task's submission to its start
// (docs/performance.md).
//
// hotTx sends the statements of such a transaction as one multi-statement
// packet: START TRANSACTION, each statement, after each statement that
// must change a declared number of rows (a fence) a guard that fails
// unless it did, and COMMIT. A failed guard stops the packet there, before
// the COMMIT; a ROLLBACK follows and the batch learns errPartial, as when a
// fenced UPDATE matches fewer rows on the plain path. Whether the server
// stops a packet at a failed guard is probed once per pool on a temporary
// table (probeGuards); where it does not, or the probe fails, the row
// counts are read from the packet's answer and COMMIT or ROLLBACK follows
// in a second round trip.
//
// The statements are the ones ent builds: fn runs its ent builders against
// a client whose driver records each statement instead of sending it
// (recorder), answering with the row count fn declared for it (trip.rows),
// so fn is the same code on both paths. A read has nothing to answer with:
// a fn that reads (a completion that writes a webhook delivery built from
// the completed row) runs again as an ordinary transaction.
//
// The packet needs a connection that accepts several statements
// (multiStatements), kept in a pool of its own (store.Store.Multi) so that
// no other query can ever run more than one statement. Every argument is
// interpolated by the driver, escaped, as on the main pool. On SQLite, which
// has no round trips, and when no such pool is configured, hotTx is an
// ordinary ent transaction and the declarations are not used.

// trip is what fn declares about the statements it records.
type trip struct {
	rec *recorder // nil on the plain path
}

// rows declares that the next statement must change exactly n rows, or
// the transaction rolls back with errPartial; its recorded result says n.
func (w *trip) rows(n int) {
	if w.rec != nil {
		w.rec.want = int64(n)
	}
}

// inserted hands the first id the last recorded INSERT got, once the
// transaction ran (ent numbers a MySQL batch from its first id, and so
// did the recorder, from 0). On the plain path ent knows the ids already
// and f is not called.
func (w *trip) inserted(f func(first int)) {
	if w.rec != nil && len(w.rec.stmts) > 0 {
		w.rec.stmts[len(w.rec.stmts)-1].inserted = f
	}
}

// hotTx runs fn's writes as one transaction (see above).
func (s *machine) hotTx(ctx context.Context, fn func(c *ent.Client, w *trip) error) error {
	if s.multi != nil {
		rec := &recorder{want: -1}
		// In an ent transaction of the recorder, so that what fn creates
		// is a transaction's entity, as on the plain path (Unwrap).
		tx, err := ent.NewClient(ent.Driver(rec)).Tx(ctx)
		if err != nil {
			return err
		}
		err = fn(tx.Client(), &trip{rec: rec})
		rec.done = true // an entity fn made can never write through it
		if errors.Is(err, errRecordedRead) {
			return s.plainTx(ctx, fn) // nothing was sent
		}
		if err != nil {
			return err
		}
		err = s.multi.run(ctx, rec.stmts)
		var failed *packetError
		if !errors.As(err, &failed) {
			return err
		}
		// Nothing was committed: the driver could not interpolate the
		// packet (larger than its max_allowed_packet), or a statement in
		// it failed (on a server without guards: a duplicate attempt in a
		// batch of a task delivered twice, behind an UPDATE that matched
		// fewer rows than declared). The plain transaction runs statement
		// by statement and checks each as it goes.
		s.log.Debug("hot transaction goes statement by statement", "err", failed.err)
	}
	return s.plainTx(ctx, fn)
}

// plainTx runs fn in an ordinary ent transaction: its statements are sent
// one by one and it may read.
func (s *machine) plainTx(ctx context.Context, fn func(c *ent.Client, w *trip) error) error {
	return s.withTx(ctx, func(tx *ent.Tx) error { return fn(tx.Client(), &trip{}) })
}

// recorded is one statement fn built.
type recorded struct {
	query string
	args  []any
	// want is the row count it must change; -1 for any.
	want     int64
	inserted func(first int)
}

// recorder is an ent driver that records the statements it is given.
type recorder struct {
	stmts []recorded
	want  int64 // for the next statement
	done  bool  // the transaction was sent: record nothing more
}

var errRecordedRead = errors.New("a recorded transaction cannot read: a read has no answer yet")

func (r *recorder) Exec(_ context.Context, query string, args, v any) error {
	if r.done {
		return errors.New("record statement: its transaction was already sent")
	}
	argv, ok := args.([]any)
	if !ok {
		return fmt.Errorf("record statement: args are %T, not []any", args)
	}
	if strings.ContainsRune(query, ';') {
		// Never part of a statement ent builds (values are arguments); a
		// second statement must not hide in a packet of several.
		return fmt.Errorf("record statement: %q holds a ';'", query)
	}
	if strings.Contains(query, "SELECT") { // ent writes keywords in capitals
		// A statement with a subquery reads: the transaction runs
		// plain, where what it read is known.
		return errRecordedRead
	}
	r.stmts = append(r.stmts, recorded{query: query, args: argv, want: r.want})
	if res, ok := v.(*sql.Result); ok {
		*res = recordedResult{rows: max(r.want, 0)}
	}
	r.want = -1
	return nil
}

func (r *recorder) Query(context.Context, string, any, any) error { return errRecordedRead }

func (r *recorder) Tx(context.Context) (dialect.Tx, error) { return dialect.NopTx(r), nil }

func (r *recorder) Close() error { return nil }

func (r *recorder) Dialect() string { return dialect.MySQL }

// recordedResult is what a recorded statement answers: the declared row
// count, and ids from 0 (trip.inserted shifts them).
type recordedResult struct{ rows int64 }

func (r recordedResult) LastInsertId() (int64, error) { return 0, nil }
func (r recordedResult) RowsAffected() (int64, error) { return r.rows, nil }

// multiPool is the pool of connections that take several statements per
// packet.
type multiPool struct {
	db  *sql.DB
	log *slog.Logger
	// guards: 0 not yet known, guardsHold or guardsFail (probeGuards).
	guards atomic.Int32
}

const (
	guardsHold = 1 + iota
	guardsFail
)

// guardErr is the error a failed row-count guard raises: MySQL's "DOUBLE
// value is out of range", which no statement ent builds here can raise
// (they compute no floating-point values; the recorder refuses reads).
const guardErr = 1690

// guard is the statement that follows one declared to change n rows: it
// fails, and the server runs nothing after it in the packet, unless the
// statement before it changed exactly n rows (exp(1000) overflows a
// double). ROW_COUNT() is the rows the previous statement changed (as the
// driver reports them, not found rows).
func guard(n int64) string {
	return fmt.Sprintf("SELECT EXP(IF(ROW_COUNT() = %d, 0, 1000))", n)
}

// run sends BEGIN and stmts in one packet and commits them if every
// statement changed the rows it declared, else rolls back and returns
// errPartial. Where the server stops a packet at a failed guard
// (probeGuards), each declared statement is followed by its guard and the
// COMMIT goes in the same packet: one round trip. Elsewhere the row counts
// are read from the packet's answer and COMMIT or ROLLBACK follows: two.
func (p *multiPool) run(ctx context.Context, stmts []recorded) error {
	if len(stmts) == 0 {
		return nil
	}
	conn, err := p.db.Conn(ctx)
	if err != nil {
		return err
	}
	// Close gives the connection back to the pool (a bad one is
	// discarded): the transaction's outcome is known by then.
	defer func() { _ = conn.Close() }()
	var (
		ids []int64
		at  = make([]int, len(stmts)) // each statement's place in the packet
	)
	err = conn.Raw(func(dc any) error {
		c, ok := dc.(interface {
			execQuerier
			driver.NamedValueChecker
		})
		if !ok {
			return fmt.Errorf("multi-statement pool: driver connection %T cannot run statements directly", dc)
		}
		one := p.guarded(ctx, c)
		var b strings.Builder
		b.WriteString("START TRANSACTION")
		var args []driver.NamedValue
		n := 1
		for i, st := range stmts {
			b.WriteString(";\n")
			b.WriteString(st.query)
			at[i] = n
			n++
			for _, a := range st.args {
				args = append(args, driver.NamedValue{Ordinal: len(args) + 1, Value: a})
			}
			if one && st.want >= 0 {
				b.WriteString(";\n")
				b.WriteString(guard(st.want))
				n++
			}
		}
		if one {
			b.WriteString(";\nCOMMIT")
			n++
		}
		for i := range args {
			if err := c.CheckNamedValue(&args[i]); err != nil {
				return fmt.Errorf("argument %d: %w", i+1, err)
			}
		}
		r, err := c.ExecContext(ctx, b.String(), args)
		if errors.Is(err, driver.ErrSkip) {
			return &packetError{err: err} // nothing was sent
		}
		var res mysql.Result
		var serr *mysql.MySQLError
		switch {
		case err == nil:
			if res, ok = r.(mysql.Result); !ok {
				err = fmt.Errorf("multi-statement result is %T, not mysql.Result", r)
			} else if len(res.AllRowsAffected()) != n {
				err = fmt.Errorf("multi-statement packet of %d statements returned %d results", n, len(res.AllRowsAffected()))
			}
		case errors.As(err, &serr):
			// The server stopped at a statement: nothing after it ran,
			// COMMIT included; the transaction is open and rolls back below.
			if one && serr.Number == guardErr {
				err = errPartial
			} else {
				err = &packetError{err: err}
			}
		case one:
			// Lost on the way: the COMMIT at its end may have run.
			return errors.Join(fmt.Errorf("multi-statement packet, outcome unknown: %w", err), driver.ErrBadConn)
		default:
			err = &packetError{err: err}
		}
		if err == nil && !one {
			err = checkRows(stmts, at, res.AllRowsAffected())
		}
		if err == nil {
			ids = res.AllLastInsertIds()
		}
		if one && err == nil {
			return nil // committed
		}
		end := "COMMIT"
		if err != nil {
			end = "ROLLBACK"
		}
		// The server rolls back what a closed connection left open; a
		// connection whose end failed is not given back to the pool.
		if _, eerr := c.ExecContext(context.WithoutCancel(ctx), end, nil); eerr != nil {
			return errors.Join(err, fmt.Errorf("%s: %w", end, eerr), driver.ErrBadConn)
		}
		return err
	})
	if err != nil {
		return err
	}
	for i, st := range stmts {
		if st.inserted != nil {
			st.inserted(int(ids[at[i]]))
		}
	}
	return nil
}

// packetError is a failure of the packet before COMMIT: nothing it held
// was committed.
type packetError struct{ err error }

func (e *packetError) Error() string { return "multi-statement packet: " + e.err.Error() }
func (e *packetError) Unwrap() error { return e.err }

// checkRows compares the rows each statement changed (at: its place in
// the packet's results) with what it declared.
func checkRows(stmts []recorded, at []int, affected []int64) error {
	for i, st := range stmts {
		if st.want >= 0 && affected[at[i]] != st.want {
			return errPartial
		}
	}
	return nil
}

// execQuerier is what run and probeGuards use of a driver connection.
type execQuerier interface {
	driver.ExecerContext
	driver.QueryerContext
}

// guarded reports whether the server stops a packet at a failed guard,
// probing it on this connection the first time.
func (p *multiPool) guarded(ctx context.Context, c execQuerier) bool {
	switch p.guards.Load() {
	case guardsHold:
		return true
	case guardsFail:
		return false
	}
	ok, err := probeGuards(ctx, c)
	var serr *mysql.MySQLError
	if err != nil && !errors.As(err, &serr) {
		// Lost on the way: two round trips this time, a probe next time.
		p.log.Debug("hot transactions: probing row-count guards", "err", err)
		return false
	}
	if err != nil {
		// The server refused the probe (a temporary table, say): it will
		// refuse it again.
		p.log.Warn("hot transactions: the server refused the row-count guards' probe; COMMIT goes in a round trip of its own", "err", err)
	}
	if ok {
		p.guards.Store(guardsHold)
	} else {
		p.guards.Store(guardsFail)
	}
	return ok
}

// probeGuards checks on a temporary table of its own what run relies on:
// a guard lets the packet go on after a statement that changed the rows
// it declared, and stops it, with guardErr, after one that did not.
func probeGuards(ctx context.Context, c execQuerier) (bool, error) {
	const t = "llmsched_guard_probe"
	packet := "DROP TEMPORARY TABLE IF EXISTS " + t + ";\n" +
		"CREATE TEMPORARY TABLE " + t + " (id INT PRIMARY KEY, v INT);\n" +
		"INSERT INTO " + t + " VALUES (1, 0), (2, 0);\n" +
		"UPDATE " + t + " SET v = v + 1 WHERE id IN (1, 2);\n" + guard(2) + ";\n" + // holds
		"UPDATE " + t + " SET v = v + 10 WHERE id IN (1, 3);\n" + guard(2) + ";\n" + // fails
		"UPDATE " + t + " SET v = v + 100"
	_, err := c.ExecContext(ctx, packet, nil)
	var serr *mysql.MySQLError
	stopped := errors.As(err, &serr) && serr.Number == guardErr
	if err != nil && !stopped {
		return false, err
	}
	sum, err := probeSum(ctx, c, "SELECT CAST(SUM(v) AS SIGNED) FROM "+t)
	if _, derr := c.ExecContext(ctx, "DROP TEMPORARY TABLE "+t, nil); derr != nil && err == nil {
		err = derr
	}
	if err != nil {
		return false, err
	}
	return stopped && sum == 12, nil
}

// probeSum reads the one number query answers.
func probeSum(ctx context.Context, c execQuerier, query string) (int64, error) {
	rows, err := c.QueryContext(ctx, query, nil)
	if err != nil {
		return 0, err
	}
	defer func() { _ = rows.Close() }()
	dest := make([]driver.Value, len(rows.Columns()))
	if err := rows.Next(dest); err != nil {
		return 0, err
	}
	switch v := dest[0].(type) {
	case int64:
		return v, nil
	case []byte:
		return strconv.ParseInt(string(v), 10, 64)
	default:
		return 0, fmt.Errorf("probe answered a %T", v)
	}
}
