package cli

import (
	"bytes"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// TestBenchScaleModeRunsSeparateProcesses keeps the bench's scaling mode
// (internal/bench/scale.go, docs/scaling.md) from rotting: a tiny run with two
// worker processes and one api process on the private MariaDB and Redis it
// starts. Every task completes, the Redis commands and MySQL statements
// per task are counted, and the worker and api processes' CPU is read from
// their own /proc entries (zero if the work ran elsewhere). It needs
// Debian's mariadb-server and redis-server (as the mysql backend's CI
// has); without them, or outside the mysql backend's run, it is skipped. Breakage caught: no worker processes
// started (the run timed out waiting for completions).
func TestBenchScaleModeRunsSeparateProcesses(t *testing.T) {
	if os.Getenv("LLMSCHED_TEST_BACKEND") != "mysql" {
		t.Skip("with the mysql backend's run only (LLMSCHED_TEST_BACKEND=mysql), where the servers are installed")
	}
	for _, bin := range []string{"mariadbd", "mariadb-install-db", "redis-server"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not installed: the scaling mode starts its own MariaDB and Redis", bin)
		}
	}
	bin := buildBinary(t)
	var out, errb bytes.Buffer
	cmd := exec.Command(bin, "bench", "--workers", "2", "--apis", "1", "--scale-tasks", "100", "--scale-models", "2", "--scale-redis", "single")
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("bench scale: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errb.String())
	}
	var row []string
	for _, line := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(line, "single ") {
			row = strings.Fields(line)
			break
		}
	}
	// single 2 1 TASKS/S P50 ms P99 ms REDIS MYSQL api worker mariadbd redis bench LOAD LOAD
	if len(row) != 17 || row[1] != "2" || row[2] != "1" {
		t.Fatalf("no scale row for 2 workers, 1 api in:\n%s", out.String())
	}
	num := func(i int) float64 {
		v, err := strconv.ParseFloat(row[i], 64)
		if err != nil {
			t.Fatalf("column %d of %q: %v", i, row, err)
		}
		return v
	}
	for _, c := range []struct {
		name string
		col  int
	}{{"tasks/s", 3}, {"redis commands per task", 8}, {"mysql statements per task", 9}, {"api CPU per task", 10}, {"worker CPU per task", 11}} {
		if num(c.col) <= 0 {
			t.Errorf("%s = %s, want more than 0 (row %q)", c.name, row[c.col], row)
		}
	}
	if strings.Contains(out.String(), "tasks failed") {
		t.Errorf("tasks failed in the scale run:\n%s", out.String())
	}
}
