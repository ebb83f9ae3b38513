package bench

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/llmsched/llm-scheduler/internal/config"
	"github.com/llmsched/llm-scheduler/internal/mysqltest"
	"github.com/llmsched/llm-scheduler/internal/redistest"
	"github.com/llmsched/llm-scheduler/internal/store"
)

// TestMachineLimitsMeasureTheServersAlone: the limits phase times every
// ping, counts only statements that ran (the UPDATEs change rows the
// INSERTs made), reports each figure, and leaves no scratch table behind;
// on MySQL + Redis in the mysql pass, on SQLite + miniredis otherwise.
func TestMachineLimitsMeasureTheServersAlone(t *testing.T) {
	ctx := context.Background()
	var st *store.Store
	var rdb redis.UniversalClient
	dialect := "sqlite"
	if os.Getenv("LLMSCHED_TEST_BACKEND") == "mysql" {
		dialect = "mysql"
		cfg := mysqltest.Shared(t, config.Defaults(true).Database)
		var err error
		if st, err = store.Open(ctx, cfg); err != nil {
			t.Fatal(err)
		}
		rdb = redis.NewClient(&redis.Options{Addr: redistest.SharedAddr()})
	} else {
		cfg := config.Defaults(true).Database
		cfg.SQLitePath = filepath.Join(t.TempDir(), "limits.db")
		var err error
		if st, err = store.Open(ctx, cfg); err != nil {
			t.Fatal(err)
		}
		rdb = redis.NewClient(&redis.Options{Addr: miniredis.RunT(t).Addr()})
	}
	t.Cleanup(func() { _ = st.Close(); _ = rdb.Close() })

	l, err := measureLimits(ctx, st.DB, dialect, rdb, 50, 4, 150*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.redisRTT) != 50 {
		t.Errorf("%d round trips timed, want 50", len(l.redisRTT))
	}
	for name, r := range map[string]rateLat{"insert 1": l.insert1, "update 1": l.update1, "insert 4": l.insertN, "update 4": l.updateN} {
		if r.rate <= 0 || len(r.lat) == 0 {
			t.Errorf("%s: %.0f/s over %d statements", name, r.rate, len(r.lat))
		}
	}
	var n int
	if err := st.DB.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+limitsTable).Scan(&n); err == nil {
		t.Errorf("scratch table %s left behind with %d rows", limitsTable, n)
	}
	rep := &report{}
	l.rows(rep, "machine limits", "DB")
	var out strings.Builder
	rep.print(&out)
	for _, want := range []string{"Redis round trip (PING)", "DB single-row INSERT, 1 client", "DB single-row UPDATE by id, 4 clients"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %q row in:\n%s", want, out.String())
		}
	}
}
