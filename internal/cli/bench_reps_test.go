package cli

import (
	"bytes"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// TestBenchQuickRepsRunEveryPhase runs the whole bench, as a separate
// process on the embedded default, with two tiny reps: every phase runs in
// each rep (the machine's limits, baseline, end to end, batch intake, idle pickup, open-loop
// moderate load, fan-out, idle CPU of a separate embedded `serve` process
// read from /proc), and every target is listed, judged N/A because --quick
// judges nothing. Breakage caught: a phase skipped in a rep, an idle CPU
// not measured, a quick run giving a verdict.
func TestBenchQuickRepsRunEveryPhase(t *testing.T) {
	if os.Getenv("LLMSCHED_TEST_BACKEND") == "mysql" {
		t.Skip("the embedded bench runs in the embedded backend's pass; the mysql pass would run the same")
	}
	bin := buildBinary(t)
	var out, errb bytes.Buffer
	cmd := exec.Command(bin, "bench", "--quick", "--reps", "2", "--tasks", "150", "--subscribers", "20",
		"--batches", "1", "--idle-samples", "10", "--idle-window", "500ms", "--idle-cpu-window", "1s", "--moderate-window", "1s")
	cmd.Env = benchEnv()
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("bench: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errb.String())
	}
	text := out.String()
	for _, rep := range []string{"[rep 1/2]", "[rep 2/2]"} {
		for _, phase := range []string{"embedded machine limits (nothing of ours)", "baseline", "embedded E2E REST", "embedded E2E GraphQL", "embedded batch intake",
			"embedded idle, 1 model", "embedded idle, 50 model", "embedded moderate load", "embedded fan-out",
			"embedded idle process (embedded)"} {
			if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(rep+" "+phase)).MatchString(text) {
				t.Errorf("no %q row of %s in:\n%s", phase, rep, text)
			}
		}
	}
	targets := 0
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, "TARGET ") {
			continue
		}
		targets++
		if !strings.HasSuffix(strings.TrimSpace(line), "N/A") {
			t.Errorf("a quick run judged a target: %s", line)
		}
	}
	if targets != 8 {
		t.Errorf("%d target lines, want 8:\n%s", targets, text)
	}
	if !regexp.MustCompile(`idle process <= 1% of a core\s+embedded median [0-9.]+% \(`).MatchString(text) {
		t.Errorf("the idle-CPU target does not give the embedded process's median over the reps:\n%s", text)
	}
}

// benchEnv is the test's environment without database or Redis settings,
// so the bench runs on the embedded default whichever backend the tests use.
func benchEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(k, "DB_") && !strings.HasPrefix(k, "REDIS_") && k != "CONFIG_FILE" {
			env = append(env, kv)
		}
	}
	return env
}
