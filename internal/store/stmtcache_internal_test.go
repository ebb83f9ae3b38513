package store

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"

	"modernc.org/sqlite"
)

// openCached opens a one-connection SQLite database through the
// statement cache, with table t(id, n).
func openCached(t testing.TB) *sql.DB {
	t.Helper()
	conn, err := sqlite.NewConnector("file:" + filepath.Join(t.TempDir(), "cache.db") + "?_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)")
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(cachingConnector{inner: conn})
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { _ = db.Close() })
	if _, err := db.Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	return db
}

// seed inserts rows (i, i) for i in 1..rows.
func seed(t *testing.T, db *sql.DB, rows int) {
	t.Helper()
	for i := 1; i <= rows; i++ {
		if _, err := db.Exec("INSERT INTO t (id, n) VALUES (?, ?)", i, i); err != nil {
			t.Fatal(err)
		}
	}
}

// begin starts a transaction that the test's end rolls back unless it
// was committed.
func begin(t *testing.T, db *sql.DB) *sql.Tx {
	t.Helper()
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback() })
	return tx
}

// cached runs f on the connection's cache.
func cached(t *testing.T, db *sql.DB, f func(c *cachingConn)) {
	t.Helper()
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := conn.Close(); err != nil {
			t.Error(err)
		}
	}()
	if err := conn.Raw(func(dc any) error {
		c, ok := dc.(*cachingConn)
		if !ok {
			return fmt.Errorf("driver connection is a %T", dc)
		}
		f(c)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestAStatementIsPreparedOnce: the same text with new arguments reuses
// the prepared statement, for writes and reads alike, and gives the right
// answers.
func TestAStatementIsPreparedOnce(t *testing.T) {
	db := openCached(t)
	var before int
	cached(t, db, func(c *cachingConn) { before = c.prepared })
	for i := 1; i <= 50; i++ {
		if _, err := db.Exec("INSERT INTO t (id, n) VALUES (?, ?)", i, i*10); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= 50; i++ {
		var n int
		if err := db.QueryRow("SELECT n FROM t WHERE id = ?", i).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != i*10 {
			t.Fatalf("row %d: n = %d, want %d", i, n, i*10)
		}
	}
	cached(t, db, func(c *cachingConn) {
		if got := c.prepared - before; got != 2 {
			t.Fatalf("50 INSERTs and 50 SELECTs of one text each prepared %d statements, want 2", got)
		}
	})
}

// TestAStatementWithOpenRowsIsNotReused: a transaction reading rows and,
// before it has read them all, running the same statement again (or
// writing with it) must not reset the statement under the open rows.
func TestAStatementWithOpenRowsIsNotReused(t *testing.T) {
	db := openCached(t)
	seed(t, db, 5)
	tx := begin(t, db)
	const q = "SELECT id FROM t WHERE n >= ? ORDER BY id"
	rows, err := tx.Query(q, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var seen []int
	for rows.Next() {
		var id int
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		seen = append(seen, id)
		if id == 2 {
			// The same query again, to its end, while the first is open.
			if ids := readIDs(t, tx, q, 4); fmt.Sprint(ids) != "[4 5]" {
				t.Fatalf("inner query read %v, want [4 5]", ids)
			}
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(seen) != "[1 2 3 4 5]" {
		t.Fatalf("outer query read %v, want [1 2 3 4 5]", seen)
	}
}

// readIDs runs q with arg in tx and reads every id it returns.
func readIDs(t *testing.T, tx *sql.Tx, q string, arg int) []int {
	t.Helper()
	rows, err := tx.Query(q, arg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := rows.Close(); err != nil {
			t.Error(err)
		}
	}()
	var ids []int
	for rows.Next() {
		var id int
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return ids
}

// TestTheCacheIsBoundedAndEvictsOpenStatementsSafely: past stmtCacheSize
// texts the least recently used statement goes; one evicted while its rows
// are open is finalized when they close, and its rows read to the end.
func TestTheCacheIsBoundedAndEvictsOpenStatementsSafely(t *testing.T) {
	db := openCached(t)
	seed(t, db, 3)
	tx := begin(t, db)
	rows, err := tx.Query("SELECT id FROM t ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	if !rows.Next() {
		t.Fatal("no first row")
	}
	// Enough other texts to evict it.
	for i := range stmtCacheSize + 10 {
		if _, err := tx.Exec(fmt.Sprintf("UPDATE t SET n = n WHERE id = %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	var ids []int
	for {
		var id int
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
		if !rows.Next() {
			break
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(ids) != "[1 2 3]" {
		t.Fatalf("rows of an evicted statement read %v, want [1 2 3]", ids)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	cached(t, db, func(c *cachingConn) {
		if c.lru.Len() != stmtCacheSize || len(c.byText) != stmtCacheSize {
			t.Fatalf("the cache holds %d statements (%d by text), want %d", c.lru.Len(), len(c.byText), stmtCacheSize)
		}
	})
}

// TestAKeptStatementSeesASchemaChange: SQLite prepares a kept statement
// again when the schema changed under it (SELECT * after a new column).
func TestAKeptStatementSeesASchemaChange(t *testing.T) {
	db := openCached(t)
	if _, err := db.Exec("INSERT INTO t (id, n) VALUES (1, 1)"); err != nil {
		t.Fatal(err)
	}
	cols := func() []string {
		rows, err := db.Query("SELECT * FROM t")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		c, err := rows.Columns()
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if got := fmt.Sprint(cols()); got != "[id n]" {
		t.Fatalf("columns %s", got)
	}
	if _, err := db.Exec("ALTER TABLE t ADD COLUMN m INTEGER"); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(cols()); got != "[id n m]" {
		t.Fatalf("columns after ALTER TABLE: %s, want [id n m]", got)
	}
}

// BenchmarkSQLiteUpdateByID: a single-row UPDATE by id, as the scheduler's
// transitions run it, through the cache and through the driver alone.
func BenchmarkSQLiteUpdateByID(b *testing.B) {
	run := func(b *testing.B, db *sql.DB) {
		if _, err := db.Exec("INSERT INTO t (id, n) VALUES (1, 0)"); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for i := range b.N {
			if _, err := db.Exec("UPDATE t SET n = ? WHERE id = ?", i, 1); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("cached", func(b *testing.B) { run(b, openCached(b)) })
	b.Run("driver", func(b *testing.B) {
		db, err := sql.Open("sqlite", "file:"+filepath.Join(b.TempDir(), "plain.db")+"?_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)")
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		db.SetMaxOpenConns(1)
		if _, err := db.Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)"); err != nil {
			b.Fatal(err)
		}
		run(b, db)
	})
}

// TestEvictingAStatementThatFailedFailsNothingElse: SQLite's finalize
// answers with the error of the statement's last run, which its caller
// was told of then; letting go of it later must not fail the query that
// pushed it out.
func TestEvictingAStatementThatFailedFailsNothingElse(t *testing.T) {
	db := openCached(t)
	const insert = "INSERT INTO t (id, n) VALUES (?, ?)"
	if _, err := db.Exec(insert, 1, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(insert, 1, 1); err == nil {
		t.Fatal("a second row with id 1 was accepted")
	}
	for i := range stmtCacheSize + 10 {
		if _, err := db.Exec(fmt.Sprintf("UPDATE t SET n = %d WHERE id = 1", i)); err != nil {
			t.Fatalf("statement %d, which evicted the failed INSERT: %v", i, err)
		}
	}
}
