package store_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/llmsched/llm-scheduler/internal/config"
	"github.com/llmsched/llm-scheduler/internal/store"
)

// The embedded database holds every task's input and output: it is
// created readable by its owner only, and an existing file is tightened.
func TestSQLiteFileIsOwnerOnly(t *testing.T) {
	dir := t.TempDir()
	existing := filepath.Join(dir, "old.db")
	if err := os.WriteFile(existing, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{filepath.Join(dir, "new.db"), existing} {
		cfg := config.Defaults(true).Database
		cfg.SQLitePath = path
		st, err := store.Open(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Migrate(context.Background()); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{path, path + "-wal"} {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if mode := fi.Mode().Perm(); mode&0o077 != 0 {
				t.Errorf("%s has mode %o, want no access for group and others", p, mode)
			}
		}
		st.Close()
	}
}
