package store

import (
	"container/list"
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"reflect"
)

// SQLite statements, kept prepared.
//
// ent hands the driver SQL text, and modernc.org/sqlite compiles every
// text it is given anew: in a CPU profile of the embedded bench run,
// sqlite3_prepare (mostly its SQL parser) was 7.5% of the process. The
// scheduler runs few distinct statements (a bulk INSERT's text differs by
// its row count only), so each connection keeps the last stmtCacheSize
// it prepared and runs them again with new arguments. SQLite itself
// re-prepares a kept statement whose schema changed under it.

// stmtCacheSize bounds the statements one connection keeps prepared.
const stmtCacheSize = 256

// cachingConnector opens SQLite connections that keep their statements.
type cachingConnector struct{ inner driver.Connector }

var _ driver.Connector = cachingConnector{}

// Connect implements driver.Connector.
func (c cachingConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.inner.Connect(ctx)
	if err != nil {
		return nil, err
	}
	inner, ok := conn.(sqliteConn)
	if !ok {
		_ = conn.Close()
		return nil, fmt.Errorf("sqlite driver connection %T lacks the context methods the statement cache relies on", conn)
	}
	return &cachingConn{sqliteConn: inner, byText: make(map[string]*list.Element), lru: list.New()}, nil
}

// Driver implements driver.Connector.
func (c cachingConnector) Driver() driver.Driver { return c.inner.Driver() }

// sqliteConn is what modernc.org/sqlite's connection implements and the
// cache passes on.
type sqliteConn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.Pinger
	driver.SessionResetter
	driver.Validator
}

// cachingConn is one connection and the statements it keeps. database/sql
// uses a connection from one goroutine at a time, so it needs no lock.
type cachingConn struct {
	sqliteConn
	byText map[string]*list.Element // of *keptStmt
	lru    *list.List               // most recently used first
	// prepared counts the statements prepared (tests).
	prepared int
}

var (
	_ driver.ExecerContext  = (*cachingConn)(nil)
	_ driver.QueryerContext = (*cachingConn)(nil)
)

// keptStmt is a prepared statement, whether rows of it are open, and
// whether it was evicted meanwhile (the rows' close finalizes it then).
type keptStmt struct {
	text    string
	stmt    sqliteStmt
	busy    bool
	evicted bool
}

// sqliteStmt is what modernc.org/sqlite's statement implements.
type sqliteStmt interface {
	driver.Stmt
	driver.StmtExecContext
	driver.StmtQueryContext
}

// ExecContext implements driver.ExecerContext.
func (c *cachingConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	k, err := c.kept(ctx, query)
	if err != nil {
		return nil, err
	}
	if k.busy {
		// Its rows are open on this connection (a read interleaved with
		// writes in one transaction): run a statement of its own.
		return c.once(ctx, query, func(s sqliteStmt) (driver.Result, error) { return s.ExecContext(ctx, args) })
	}
	return k.stmt.ExecContext(ctx, args)
}

// QueryContext implements driver.QueryerContext.
func (c *cachingConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	k, err := c.kept(ctx, query)
	if err != nil {
		return nil, err
	}
	if k.busy {
		s, err := c.prepare(ctx, query)
		if err != nil {
			return nil, err
		}
		rows, err := s.QueryContext(ctx, args)
		if err != nil {
			return nil, errors.Join(err, s.Close())
		}
		return ownStmtRows{typedRows: typedRows{rows}, close: s.Close}, nil
	}
	rows, err := k.stmt.QueryContext(ctx, args)
	if err != nil {
		return nil, err
	}
	k.busy = true
	return &keptRows{typedRows: typedRows{rows}, k: k}, nil
}

// kept returns the kept statement of query, preparing it if need be.
func (c *cachingConn) kept(ctx context.Context, query string) (*keptStmt, error) {
	if e, ok := c.byText[query]; ok {
		c.lru.MoveToFront(e)
		k, _ := e.Value.(*keptStmt)
		return k, nil
	}
	s, err := c.prepare(ctx, query)
	if err != nil {
		return nil, err
	}
	k := &keptStmt{text: query, stmt: s}
	c.byText[query] = c.lru.PushFront(k)
	for c.lru.Len() > stmtCacheSize {
		if err := c.evict(c.lru.Back()); err != nil {
			return nil, err
		}
	}
	return k, nil
}

// evict lets go of the statement in e; one whose rows are open stays
// prepared until they close.
func (c *cachingConn) evict(e *list.Element) error {
	k, _ := e.Value.(*keptStmt)
	c.lru.Remove(e)
	delete(c.byText, k.text)
	if k.busy {
		k.evicted = true // keptRows closes it
		return nil
	}
	return k.stmt.Close()
}

func (c *cachingConn) prepare(ctx context.Context, query string) (sqliteStmt, error) {
	st, err := c.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	c.prepared++
	s, ok := st.(sqliteStmt)
	if !ok {
		_ = st.Close()
		return nil, fmt.Errorf("sqlite driver statement %T lacks the context methods the statement cache relies on", st)
	}
	return s, nil
}

// once runs a statement prepared for this call alone.
func (c *cachingConn) once(ctx context.Context, query string, run func(sqliteStmt) (driver.Result, error)) (driver.Result, error) {
	s, err := c.prepare(ctx, query)
	if err != nil {
		return nil, err
	}
	r, err := run(s)
	return r, errors.Join(err, s.Close())
}

// Close implements driver.Conn: it finalizes the kept statements first.
func (c *cachingConn) Close() error {
	var errs []error
	for e := c.lru.Front(); e != nil; e = c.lru.Front() {
		errs = append(errs, c.evict(e))
	}
	errs = append(errs, c.sqliteConn.Close())
	return errors.Join(errs...)
}

// keptRows are rows of a kept statement: closing them frees the statement
// for its next run (or finalizes it, if it was evicted meanwhile).
type keptRows struct {
	typedRows
	k *keptStmt
}

// Close implements driver.Rows.
func (r *keptRows) Close() error {
	err := r.Rows.Close()
	r.k.busy = false
	if r.k.evicted {
		return errors.Join(err, r.k.stmt.Close())
	}
	return err
}

// ownStmtRows are rows of a statement prepared for them alone.
type ownStmtRows struct {
	typedRows
	close func() error
}

// Close implements driver.Rows.
func (r ownStmtRows) Close() error { return errors.Join(r.Rows.Close(), r.close()) }

// typedRows passes on what the driver's rows tell of their columns (ent
// asks for scan types), with database/sql's answers for a driver that
// does not say.
type typedRows struct{ driver.Rows }

// ColumnTypeScanType implements driver.RowsColumnTypeScanType.
func (r typedRows) ColumnTypeScanType(i int) reflect.Type {
	if t, ok := r.Rows.(driver.RowsColumnTypeScanType); ok {
		return t.ColumnTypeScanType(i)
	}
	return reflect.TypeFor[any]()
}

// ColumnTypeDatabaseTypeName implements driver.RowsColumnTypeDatabaseTypeName.
func (r typedRows) ColumnTypeDatabaseTypeName(i int) string {
	if t, ok := r.Rows.(driver.RowsColumnTypeDatabaseTypeName); ok {
		return t.ColumnTypeDatabaseTypeName(i)
	}
	return ""
}

// ColumnTypeNullable implements driver.RowsColumnTypeNullable.
func (r typedRows) ColumnTypeNullable(i int) (nullable, ok bool) {
	if t, is := r.Rows.(driver.RowsColumnTypeNullable); is {
		return t.ColumnTypeNullable(i)
	}
	return false, false
}

// ColumnTypeLength implements driver.RowsColumnTypeLength.
func (r typedRows) ColumnTypeLength(i int) (length int64, ok bool) {
	if t, is := r.Rows.(driver.RowsColumnTypeLength); is {
		return t.ColumnTypeLength(i)
	}
	return 0, false
}

// ColumnTypePrecisionScale implements driver.RowsColumnTypePrecisionScale.
func (r typedRows) ColumnTypePrecisionScale(i int) (precision, scale int64, ok bool) {
	if t, is := r.Rows.(driver.RowsColumnTypePrecisionScale); is {
		return t.ColumnTypePrecisionScale(i)
	}
	return 0, 0, false
}
