package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/llmsched/llm-scheduler/internal/apptest"
)

// buildBinary compiles the scheduler once per test binary run.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "llm-scheduler")
	cmd := exec.Command("go", "build", "-o", bin, "../..")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("build: %v", err)
	}
	return bin
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestFreshRunEmbeddedDefault runs the binary as a newcomer would: no
// configuration, no services. Health answers 200 and a task posted to the
// seeded demo-simulator completes with its output stored.
func TestFreshRunEmbeddedDefault(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dir := t.TempDir()
	port := freePort(t)
	logs := startFreshBinary(t, dir, port)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(60 * time.Second)
	waitHealthy(t, base, deadline, logs)
	demo := demoSimulatorID(t, base)
	body := fmt.Sprintf(`{"model_id": %d, "type": "text-generation", "input": "Hello, scheduler", "priority": 2}`, demo)
	resp, err := http.Post(base+"/api/v1/tasks", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var created struct{ Data struct{ ID int } }
	if err := json.NewDecoder(resp.Body).Decode(&created); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("create: %d %v", resp.StatusCode, err)
	}
	resp.Body.Close()
	for {
		var task struct {
			Data struct{ Status, Output string }
		}
		getJSON(t, fmt.Sprintf("%s/api/v1/tasks/%d", base, created.Data.ID), &task)
		if task.Data.Status == "completed" {
			if !strings.Contains(task.Data.Output, "simulated") {
				t.Fatalf("output = %q", task.Data.Output)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("task is %s\n%s", task.Data.Status, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), "embedded default") {
		t.Fatalf("start-up log does not say which mode runs:\n%s", logs.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "llm-scheduler.db")); err != nil {
		t.Fatalf("no SQLite file under ./data: %v", err)
	}
}

// startFreshBinary starts the built binary in dir with nothing but
// SERVER_PORT set and returns its combined output; at the end of the test
// it is stopped with SIGTERM and must exit cleanly within 30s.
func startFreshBinary(t *testing.T, dir string, port int) *apptest.SyncBuffer {
	cmd := exec.Command(buildBinary(t))
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, fmt.Sprintf("SERVER_PORT=%d", port)}
	logs := &apptest.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("scheduler exited with %v\n%s", err, logs.String())
			}
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			t.Errorf("scheduler did not stop on SIGTERM\n%s", logs.String())
		}
	})
	return logs
}

// waitHealthy waits until the health endpoint answers 200.
func waitHealthy(t *testing.T, base string, deadline time.Time, logs *apptest.SyncBuffer) {
	t.Helper()
	for {
		resp, err := http.Get(base + "/api/v1/system/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("health never answered 200: %v\n%s", err, logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// demoSimulatorID finds the seeded demo-simulator model.
func demoSimulatorID(t *testing.T, base string) int {
	t.Helper()
	var models struct {
		Data []struct {
			ID   int
			Name string
			Type string
		}
	}
	getJSON(t, base+"/api/v1/models", &models)
	for _, m := range models.Data {
		if m.Name == "demo-simulator" && m.Type == "simulator" {
			return m.ID
		}
	}
	t.Fatalf("no demo-simulator model: %+v", models.Data)
	return 0
}

func getJSON(t *testing.T, url string, out any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatalf("decode %s: %v", url, err)
	}
}

func TestVersionAndUnknownCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := run([]string{"version"}, &out, &errOut); err != nil || !strings.Contains(out.String(), "llm-scheduler") {
		t.Fatalf("version: %v %q", err, out.String())
	}
	if err := run([]string{"frobnicate"}, &out, &errOut); err == nil || !strings.Contains(err.Error(), "unknown command") {
		t.Fatalf("unknown command: %v", err)
	}
	if err := run([]string{"serve", "--role", "chef"}, &out, &errOut); err == nil || !strings.Contains(err.Error(), "--role") {
		t.Fatalf("bad role: %v", err)
	}
}
