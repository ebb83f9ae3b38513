package scheduler

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/llmsched/llm-scheduler/internal/config"
	"github.com/llmsched/llm-scheduler/internal/store"
)

// testDatabase is the database of an in-package test: a SQLite file, or
// with LLMSCHED_TEST_BACKEND=mysql a database of its own on the MySQL
// server of internal/apptest (TEST_MYSQL_*), dropped when the test ends.
func testDatabase(t *testing.T, cfg config.Database) config.Database {
	t.Helper()
	if os.Getenv("LLMSCHED_TEST_BACKEND") != "mysql" {
		cfg.SQLitePath = filepath.Join(t.TempDir(), "test.db")
		return cfg
	}
	getenv := func(k, def string) string {
		if v := os.Getenv(k); v != "" {
			return v
		}
		return def
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	cfg.Driver = "mysql"
	cfg.Host = getenv("TEST_MYSQL_HOST", "127.0.0.1")
	cfg.Port, _ = strconv.Atoi(getenv("TEST_MYSQL_PORT", "3306"))
	cfg.Username = getenv("TEST_MYSQL_USER", "root")
	cfg.Password = os.Getenv("TEST_MYSQL_PASSWORD")
	cfg.Database = "llmsched_test_" + hex.EncodeToString(b)
	t.Cleanup(func() {
		if err := store.DropMySQLDatabase(context.Background(), cfg); err != nil {
			t.Errorf("drop test database: %v", err)
		}
	})
	return cfg
}
