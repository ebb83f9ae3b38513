// Package store opens the system of record: MySQL (or MariaDB) in production,
// SQLite through a pure-Go driver for the embedded default. It returns an ent
// client and migrates the schema.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	"github.com/go-sql-driver/mysql"
	"modernc.org/sqlite"

	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/internal/config"
)

// Store is an open database.
type Store struct {
	Client  *ent.Client
	DB      *sql.DB
	Dialect string
	// Multi (MySQL only, else nil) is a small pool of connections that
	// accept several statements per packet (multiStatements), for the
	// scheduler's hot transactions in one round trip
	// (scheduler.Options.MultiDB). It is kept apart from DB so that no
	// other query can ever run more than one statement.
	Multi *sql.DB
}

// multiConns bounds Store.Multi: the hot transactions run in two groups
// of one flush each (starts, completions), plus room for a flush
// retried while the connection of the last one is being closed.
const multiConns = 4

// Open connects to the configured database. For MySQL it creates the
// database if it does not exist yet. It does not migrate; call Migrate.
func Open(ctx context.Context, cfg config.Database) (*Store, error) {
	switch cfg.Driver {
	case "sqlite":
		if dir := filepath.Dir(cfg.SQLitePath); dir != "" {
			if err := os.MkdirAll(dir, 0o750); err != nil {
				return nil, fmt.Errorf("create sqlite directory %s: %w", dir, err)
			}
		}
		if err := ownerOnly(cfg.SQLitePath); err != nil {
			return nil, err
		}
		dsn := fmt.Sprintf("file:%s?_pragma=foreign_keys(1)&_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate", cfg.SQLitePath)
		conn, err := sqlite.NewConnector(dsn)
		if err != nil {
			return nil, fmt.Errorf("open sqlite %s: %w", cfg.SQLitePath, err)
		}
		db := sql.OpenDB(cachingConnector{inner: conn})
		// SQLite has one writer; a single connection avoids SQLITE_BUSY
		// storms and keeps transactions serialised.
		db.SetMaxOpenConns(1)
		if err := db.PingContext(ctx); err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("open sqlite %s: %w", cfg.SQLitePath, err)
		}
		return wrap(db, dialect.SQLite), nil
	case "mysql":
		if err := ensureMySQLDatabase(ctx, cfg); err != nil {
			return nil, err
		}
		db, err := sql.Open("mysql", MySQLDSN(cfg, cfg.Database))
		if err != nil {
			return nil, fmt.Errorf("open mysql: %w", err)
		}
		db.SetMaxOpenConns(cfg.MaxOpenConns)
		db.SetMaxIdleConns(cfg.MaxOpenConns)
		db.SetConnMaxLifetime(30 * time.Minute)
		if err := db.PingContext(ctx); err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("connect to mysql %s:%d: %w", cfg.Host, cfg.Port, err)
		}
		multi, err := openMulti(ctx, cfg)
		if err != nil {
			_ = db.Close()
			return nil, err
		}
		st := wrap(db, dialect.MySQL)
		st.Multi = multi
		return st, nil
	}
	return nil, fmt.Errorf("database.driver must be mysql or sqlite, got %q", cfg.Driver)
}

func wrap(db *sql.DB, name string) *Store {
	drv := entsql.OpenDB(name, db)
	return &Store{Client: ent.NewClient(ent.Driver(drv)), DB: db, Dialect: name}
}

// openMulti opens Store.Multi.
func openMulti(ctx context.Context, cfg config.Database) (*sql.DB, error) {
	mc, err := mysql.ParseDSN(MySQLDSN(cfg, cfg.Database))
	if err != nil {
		return nil, fmt.Errorf("mysql dsn: %w", err)
	}
	mc.MultiStatements = true
	conn, err := mysql.NewConnector(mc)
	if err != nil {
		return nil, fmt.Errorf("open mysql (multi-statement pool): %w", err)
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(multiConns)
	db.SetMaxIdleConns(multiConns)
	db.SetConnMaxLifetime(30 * time.Minute)
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("connect to mysql %s:%d (multi-statement pool): %w", cfg.Host, cfg.Port, err)
	}
	return db, nil
}

// MySQLDSN builds a go-sql-driver DSN for database name ("" for none).
func MySQLDSN(cfg config.Database, name string) string {
	mc := mysql.NewConfig()
	mc.User = cfg.Username
	mc.Passwd = cfg.Password
	mc.Net = "tcp"
	mc.Addr = fmt.Sprintf("%s:%d", cfg.Host, cfg.Port)
	mc.DBName = name
	mc.ParseTime = true
	// One round trip per statement: without it the driver prepares, runs
	// and closes a server-side statement for every query with arguments
	// (three round trips), which dominated the hot paths under load.
	mc.InterpolateParams = true
	mc.Loc = time.UTC
	mc.Params = map[string]string{"charset": "utf8mb4"}
	mc.Collation = "utf8mb4_unicode_ci"
	mc.Timeout = 5 * time.Second
	mc.ReadTimeout = 30 * time.Second
	mc.WriteTimeout = 30 * time.Second
	return mc.FormatDSN()
}

func ensureMySQLDatabase(ctx context.Context, cfg config.Database) error {
	db, err := sql.Open("mysql", MySQLDSN(cfg, ""))
	if err != nil {
		return fmt.Errorf("open mysql: %w", err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := db.ExecContext(ctx, "CREATE DATABASE IF NOT EXISTS `"+cfg.Database+"` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"); err != nil {
		return fmt.Errorf("connect to mysql %s:%d and create database %q: %w", cfg.Host, cfg.Port, cfg.Database, err)
	}
	return nil
}

// DropMySQLDatabase drops database cfg.Database on the MySQL server of
// cfg, if it exists (for tests and benches that made it).
func DropMySQLDatabase(ctx context.Context, cfg config.Database) error {
	db, err := sql.Open("mysql", MySQLDSN(cfg, ""))
	if err != nil {
		return fmt.Errorf("open mysql: %w", err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "DROP DATABASE IF EXISTS `"+cfg.Database+"`"); err != nil {
		return fmt.Errorf("drop database %s: %w", cfg.Database, err)
	}
	return nil
}

// Migrate brings the schema up to date. It only adds; it never drops.
func (s *Store) Migrate(ctx context.Context) error {
	if err := s.Client.Schema.Create(ctx); err != nil {
		return fmt.Errorf("migrate schema: %w", err)
	}
	return nil
}

// Ping checks the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.DB.PingContext(ctx) }

// Close closes the client and the pools.
func (s *Store) Close() error {
	err := s.Client.Close()
	if s.Multi != nil {
		err = errors.Join(err, s.Multi.Close())
	}
	return err
}

// ownerOnly creates the SQLite file readable by its owner only (mode 0600;
// SQLite gives its -wal and -shm files the same mode), and tightens an
// existing one: it holds every task's input and output.
func ownerOnly(path string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("open sqlite %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("open sqlite %s: %w", path, err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Chmod(p, 0o600); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("restrict sqlite file %s to its owner: %w", p, err)
		}
	}
	return nil
}
