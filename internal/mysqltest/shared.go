package mysqltest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strconv"
	"testing"

	"github.com/llmsched/llm-scheduler/internal/config"
	"github.com/llmsched/llm-scheduler/internal/store"
)

// Shared gives a test a database of its own on the MySQL server the test
// suites share (TEST_MYSQL_HOST 127.0.0.1, TEST_MYSQL_PORT 3306,
// TEST_MYSQL_USER root, TEST_MYSQL_PASSWORD empty), named
// llmsched_test_<random>, and drops it when the test ends. The rest of
// cfg is kept.
func Shared(t testing.TB, cfg config.Database) config.Database {
	t.Helper()
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
