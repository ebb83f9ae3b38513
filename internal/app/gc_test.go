package app_test

import (
	"os"
	"runtime/debug"
	"testing"

	"github.com/llmsched/llm-scheduler/internal/app"
	"github.com/llmsched/llm-scheduler/internal/apptest"
)

// TestEmbeddedRedisRaisesTheGCTarget: a process that runs the embedded
// Redis sets GOGC to embeddedGCPercent (200) unless GOGC is set.
func TestEmbeddedRedisRaisesTheGCTarget(t *testing.T) {
	if apptest.Backend() != "embedded" {
		t.Skip("the GC target follows the embedded Redis")
	}
	if os.Getenv("GOGC") != "" {
		t.Skip("GOGC is set: the process keeps it")
	}
	prev := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(prev) })
	apptest.NewShared(t, nil).Start(t, app.RoleAPI)
	if got := debug.SetGCPercent(100); got != 200 {
		t.Fatalf("GC percent with the embedded Redis = %d, want 200", got)
	}
}
