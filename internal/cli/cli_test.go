package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/llmsched/llm-scheduler/internal/apptest"
	"github.com/llmsched/llm-scheduler/internal/config"
)

// The command-line client, tested as a user runs it: the built binary, a
// separate process, against a running scheduler.

var (
	cliOnce sync.Once
	cliBin  string
	cliDir  string
	cliErr  error
)

// TestMain removes the CLI binary it built and fails the package's tests
// if any goroutine outlives them (apptest.LeakOptions lists the
// third-party ones no API stops).
func TestMain(m *testing.M) {
	code := m.Run()
	if cliDir != "" {
		if err := os.RemoveAll(cliDir); err != nil {
			fmt.Fprintln(os.Stderr, "remove the test binary's directory:", err)
		}
	}
	if code == 0 {
		if err := goleak.Find(apptest.LeakOptions()...); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// cliBinary builds the binary once for all CLI tests.
func cliBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	cliOnce.Do(func() {
		dir, err := os.MkdirTemp("", "llmsched-cli-")
		if err != nil {
			cliErr = err
			return
		}
		cliDir = dir
		cliBin = filepath.Join(dir, "llm-scheduler")
		out, err := exec.Command("go", "build", "-o", cliBin, "../..").CombinedOutput()
		if err != nil {
			cliErr = fmt.Errorf("build: %v\n%s", err, out)
		}
	})
	if cliErr != nil {
		t.Fatal(cliErr)
	}
	return cliBin
}

type cliResult struct {
	code           int
	stdout, stderr string
}

// runCLI runs the binary against env's server with stdin.
func runCLI(t *testing.T, env *apptest.Env, stdin string, args ...string) cliResult {
	t.Helper()
	if !slices.Contains(args, "--server") {
		args = append(args, "--server", env.URL)
	}
	cmd := exec.Command(cliBinary(t), args...)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir()}
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	res := cliResult{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		res.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("run %v: %v", args, err)
	}
	t.Logf("llm-scheduler %s -> %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), res.code, res.stdout, res.stderr)
	return res
}

func TestCLISubmitWaitPrintsTheOutput(t *testing.T) {
	env := apptest.New(t, nil)
	m := env.Simulator("cli-sim", 2, map[string]any{"output_tokens": 12, "tokens_per_second": 60})
	r := runCLI(t, env, "", "task", "submit", "--model", m.Name, "--priority", "high", "--wait", "hello from the CLI")
	if r.code != 0 {
		t.Fatalf("exit %d, want 0", r.code)
	}
	id, err := strconv.Atoi(strings.Fields(strings.TrimPrefix(r.stderr, "task "))[0])
	if err != nil {
		t.Fatalf("stderr does not name the task: %q", r.stderr)
	}
	task := env.Task(id)
	if task.Status != "completed" || task.Priority != 3 || task.Input != "hello from the CLI" {
		t.Fatalf("task = %+v", task)
	}
	if strings.TrimSpace(r.stdout) != strings.TrimSpace(task.Output) {
		t.Fatalf("stdout %q, want the task's output %q", r.stdout, task.Output)
	}

	// Input from stdin, JSON for scripts.
	r = runCLI(t, env, "from stdin\n", "task", "submit", "--model", strconv.Itoa(m.ID), "--wait", "--json")
	var got struct {
		Status string
		Input  string
		Output string
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &got) != nil || got.Status != "completed" || got.Input != "from stdin" || got.Output == "" {
		t.Fatalf("--json --wait: exit %d, %+v", r.code, got)
	}
}

func TestCLIFailedTaskExitsNonZeroWithTheError(t *testing.T) {
	env := apptest.New(t, nil)
	m := env.Simulator("cli-fail", 1, map[string]any{"fail_rate": 1, "fail_kind": "permanent"})
	r := runCLI(t, env, "", "task", "submit", "--model", m.Name, "--wait", "doomed")
	if r.code != 1 || !strings.Contains(r.stderr, "failed") || !strings.Contains(r.stderr, "simulat") {
		t.Fatalf("exit %d stderr %q, want 1 and the task's error", r.code, r.stderr)
	}
	// Refused requests say so with their own code.
	if r := runCLI(t, env, "", "task", "submit", "--model", m.Name, "--type", "poetry", "x"); r.code != 4 || !strings.Contains(r.stderr, "BAD_USER_INPUT") {
		t.Fatalf("bad type: exit %d stderr %q, want 4 BAD_USER_INPUT", r.code, r.stderr)
	}
	if r := runCLI(t, env, "", "task", "get", "nope"); r.code != 2 {
		t.Fatalf("bad id: exit %d, want 2 (usage)", r.code)
	}
	if r := runCLI(t, env, "", "model", "list", "--server", "http://127.0.0.1:1"); r.code != 5 {
		t.Fatalf("no server: exit %d, want 5", r.code)
	}
}

func TestCLIWatchShowsLiveState(t *testing.T) {
	env := apptest.New(t, nil)
	m := env.Simulator("cli-watch", 1, map[string]any{"output_tokens": 3, "latency_ms": 300})
	r := runCLI(t, env, "", "task", "submit", "--model", m.Name, "--delay", "2s", "later")
	if r.code != 0 || !strings.Contains(r.stderr, "scheduled") {
		t.Fatalf("submit --delay: exit %d stderr %q, want a scheduled task", r.code, r.stderr)
	}
	id := strings.TrimSpace(r.stdout)
	r = runCLI(t, env, "", "task", "watch", id)
	if r.code != 0 {
		t.Fatalf("watch: exit %d", r.code)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	want := []string{"pending (scheduled", "running", "completed"}
	i := 0
	for _, l := range lines {
		if i < len(want) && strings.Contains(l, want[i]) {
			i++
		}
	}
	if i != len(want) {
		t.Fatalf("watch printed %q, want lines showing %q in order", lines, want)
	}

	// A watched task that gets cancelled ends the watch with code 3.
	r = runCLI(t, env, "", "task", "submit", "--model", m.Name, "--delay", "60s", "never")
	id = strings.TrimSpace(r.stdout)
	done := make(chan cliResult)
	go func() { done <- runCLI(t, env, "", "task", "watch", id) }()
	time.Sleep(time.Second)
	if r := runCLI(t, env, "", "task", "cancel", id); r.code != 0 || !strings.Contains(r.stdout, "cancelled") {
		t.Fatalf("cancel: exit %d stdout %q", r.code, r.stdout)
	}
	select {
	case r = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("watch did not end after the task was cancelled")
	}
	if r.code != 3 {
		t.Fatalf("watch of a cancelled task: exit %d, want 3", r.code)
	}
	if r := runCLI(t, env, "", "task", "retry", id, "--json"); r.code != 0 || !strings.Contains(r.stdout, `"status": "pending"`) {
		t.Fatalf("retry: exit %d stdout %q", r.code, r.stdout)
	}
	if r := runCLI(t, env, "", "task", "list", "--model", m.Name); r.code != 0 || strings.Count(r.stdout, "\n") != 3 {
		t.Fatalf("list: exit %d, %q; want a header and two tasks", r.code, r.stdout)
	}
}

func TestCLIModels(t *testing.T) {
	env := apptest.New(t, nil)
	r := runCLI(t, env, "", "model", "create", "--name", "cli-made", "--type", "simulator", "--config", `{"output_tokens": 2}`, "--max-workers", "3")
	if r.code != 0 {
		t.Fatalf("create: exit %d", r.code)
	}
	if r := runCLI(t, env, "", "model", "offline", "cli-made"); r.code != 0 || !strings.Contains(r.stdout, "offline") {
		t.Fatalf("offline: exit %d %q", r.code, r.stdout)
	}
	var ms []apptest.Model
	if code := env.Do(http.MethodGet, "/api/v1/models", nil, &struct{ Data *[]apptest.Model }{&ms}); code != 200 {
		t.Fatalf("list models: %d", code)
	}
	found := false
	for _, m := range ms {
		if m.Name == "cli-made" {
			found = m.Status == "offline" && m.MaxWorkers == 3
		}
	}
	if !found {
		t.Fatalf("models = %+v, want cli-made offline with 3 workers", ms)
	}
	r = runCLI(t, env, "", "model", "online", "cli-made")
	if r.code != 0 || !strings.Contains(r.stdout, "online") {
		t.Fatalf("online: exit %d %q", r.code, r.stdout)
	}
	if r := runCLI(t, env, "", "model", "list"); r.code != 0 || !strings.Contains(r.stdout, "cli-made") || !strings.Contains(r.stdout, "online") {
		t.Fatalf("list: exit %d %q", r.code, r.stdout)
	}
}

// submit --callback-url: the task's webhook reaches the URL; a refused URL
// is a usage error naming the field; get shows the delivery.
func TestCLISubmitCallbackURL(t *testing.T) {
	got := make(chan string, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get("X-LLMSched-Event")
	}))
	defer srv.Close()
	env := apptest.New(t, func(c *config.Config) {
		c.Webhooks.AllowPrivate = true
		c.Webhooks.Secret = "cli-test-webhook-secret-0123"
	})
	m := env.Simulator("cli-hook", 1, map[string]any{"output_tokens": 2, "latency_ms": 1})
	r := runCLI(t, env, "", "task", "submit", "--model", m.Name, "--callback-url", "ftp://x", "hi")
	if r.code == 0 || !strings.Contains(r.stderr, "callback_url") {
		t.Fatalf("bad --callback-url: exit %d stderr %q", r.code, r.stderr)
	}
	r = runCLI(t, env, "", "task", "submit", "--model", m.Name, "--callback-url", srv.URL+"/done", "--wait", "hi")
	if r.code != 0 {
		t.Fatalf("submit --callback-url --wait: exit %d", r.code)
	}
	select {
	case ev := <-got:
		if ev != "task.completed" {
			t.Fatalf("webhook event %q", ev)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no webhook")
	}
	var list struct{ Data []apptest.Task }
	env.Do("GET", "/api/v1/tasks", nil, &list)
	deadline := time.Now().Add(30 * time.Second)
	for {
		r = runCLI(t, env, "", "task", "get", strconv.Itoa(list.Data[0].ID))
		if strings.Contains(r.stdout, "task.completed: delivered after 1 attempts (last answer 200)") && strings.Contains(r.stdout, srv.URL+"/done") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("task get shows no delivered webhook: %q", r.stdout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
