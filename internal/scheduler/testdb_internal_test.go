package scheduler

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/llmsched/llm-scheduler/internal/config"
	"github.com/llmsched/llm-scheduler/internal/mysqltest"
)

// testDatabase is the database of an in-package test: a SQLite file, or
// with LLMSCHED_TEST_BACKEND=mysql a database of its own on the shared
// MySQL server (mysqltest.Shared), dropped when the test ends.
func testDatabase(t *testing.T, cfg config.Database) config.Database {
	t.Helper()
	if os.Getenv("LLMSCHED_TEST_BACKEND") == "mysql" {
		return mysqltest.Shared(t, cfg)
	}
	cfg.SQLitePath = filepath.Join(t.TempDir(), "test.db")
	return cfg
}
