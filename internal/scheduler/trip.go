package scheduler

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"

	"entgo.io/ent/dialect"
	"github.com/go-sql-driver/mysql"

	"github.com/llmsched/llm-scheduler/ent"
)

// Hot transactions in two round trips (MySQL). A batch's start is BEGIN,
// a fenced UPDATE, an INSERT of the attempts and COMMIT; sent one by one
// that is four round trips, each a write and a read on both sides and a
// wake-up of the server's connection thread. On a CPU-bound host those,
// not the rows, were most of what a transition cost (docs/performance.md).
//
// hotTx sends the statements of such a transaction together with the BEGIN
// as one multi-statement packet, checks how many rows each changed, and
// then sends COMMIT (or ROLLBACK when a fence did not hold): two round
// trips whatever the number of statements. The statements are the ones
// ent builds: fn runs its ent builders against a client whose driver
// records each statement instead of sending it (recorder), answering
// with the row count fn declared for it (trip.rows), so fn is the same
// code on both paths. A read has nothing to answer with: a fn that reads
// (a completion that writes a webhook delivery built from the completed
// row) runs again as an ordinary transaction.
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
		// it failed (a duplicate attempt in a batch of a task delivered
		// twice, behind an UPDATE that matched fewer rows than declared,
		// which the packet could not stop at). The plain transaction
		// runs statement by statement and checks each as it goes.
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
type multiPool struct{ db *sql.DB }

// run sends BEGIN and stmts in one packet, then COMMIT if every statement
// changed the rows it declared, else ROLLBACK and errPartial.
func (p *multiPool) run(ctx context.Context, stmts []recorded) error {
	if len(stmts) == 0 {
		return nil
	}
	var b strings.Builder
	b.WriteString("START TRANSACTION")
	var args []driver.NamedValue
	for _, st := range stmts {
		b.WriteString(";\n")
		b.WriteString(st.query)
		for _, a := range st.args {
			args = append(args, driver.NamedValue{Ordinal: len(args) + 1, Value: a})
		}
	}
	conn, err := p.db.Conn(ctx)
	if err != nil {
		return err
	}
	// Close gives the connection back to the pool (a bad one is
	// discarded): the transaction's outcome is known by then.
	defer func() { _ = conn.Close() }()
	var res mysql.Result
	err = conn.Raw(func(dc any) error {
		c, ok := dc.(interface {
			driver.ExecerContext
			driver.NamedValueChecker
		})
		if !ok {
			return fmt.Errorf("multi-statement pool: driver connection %T cannot run statements directly", dc)
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
		if err != nil {
			err = &packetError{err: err}
		} else {
			res, ok = r.(mysql.Result)
			if !ok {
				err = fmt.Errorf("multi-statement result is %T, not mysql.Result", r)
			}
		}
		if err == nil {
			err = checkRows(stmts, res.AllRowsAffected())
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
	ids := res.AllLastInsertIds()
	for i, st := range stmts {
		if st.inserted != nil {
			st.inserted(int(ids[i+1])) // ids[0] is START TRANSACTION's
		}
	}
	return nil
}

// packetError is a failure of the packet before COMMIT: nothing it held
// was committed.
type packetError struct{ err error }

func (e *packetError) Error() string { return "multi-statement packet: " + e.err.Error() }
func (e *packetError) Unwrap() error { return e.err }

// checkRows compares the rows each statement changed (after START
// TRANSACTION's entry) with what it declared.
func checkRows(stmts []recorded, affected []int64) error {
	if len(affected) != len(stmts)+1 {
		return fmt.Errorf("multi-statement packet of %d statements returned %d results", len(stmts)+1, len(affected))
	}
	for i, st := range stmts {
		if st.want >= 0 && affected[i+1] != st.want {
			return errPartial
		}
	}
	return nil
}
