package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/llmsched/llm-scheduler/internal/app"
	"github.com/llmsched/llm-scheduler/internal/config"
	"github.com/llmsched/llm-scheduler/server"
)

// sut is the scheduler under test: a child process or an in-process app.
type sut struct {
	url    string
	prefix string
	// rdb is a client on the scheduler's Redis database.
	rdb redis.UniversalClient
	pid int

	child    *exec.Cmd
	childErr chan error
	inproc   *app.App
	embedded *miniredis.Miniredis
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// childEnv is the environment of the scheduler child: the caller's, with
// the bench's own database, Redis database, key prefix and port.
func childEnv(over map[string]string) []string {
	env := environ(func(k string) bool { _, ok := over[k]; return ok })
	for k, v := range over {
		env = append(env, k+"="+v)
	}
	return env
}

// environ is this process's environment less the variables drop names.
func environ(drop func(key string) bool) []string {
	var env []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); !drop(k) {
			env = append(env, kv)
		}
	}
	return env
}

// startChild re-executes this binary as `serve` against cfg's MySQL and
// Redis, with the bench's database name and Redis database number.
func startChild(ctx context.Context, cfg *config.Config, configPath string, rdb redis.UniversalClient, stderr io.Writer) (*sut, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	args := []string{"serve", "--role", "all"}
	if configPath != "" {
		args = append(args, "--config", configPath)
	}
	env := childEnv(map[string]string{
		"DB_DRIVER": "mysql", "DB_HOST": cfg.Database.Host, "DB_PORT": strconv.Itoa(cfg.Database.Port),
		"DB_USER": cfg.Database.Username, "DB_PASSWORD": cfg.Database.Password, "DB_NAME": cfg.Database.Database,
		"REDIS_HOST": cfg.Redis.Host, "REDIS_PORT": strconv.Itoa(cfg.Redis.Port), "REDIS_DB": strconv.Itoa(cfg.Redis.DB),
		"REDIS_PASSWORD": cfg.Redis.Password, "REDIS_KEY_PREFIX": cfg.Redis.KeyPrefix,
		"SERVER_HOST": "127.0.0.1", "SERVER_PORT": strconv.Itoa(port),
		"QUEUE_MAX_QUEUE_SIZE": strconv.Itoa(cfg.Queue.MaxQueueSize),
		"QUEUE_POLL_INTERVAL":  cfg.Queue.PollInterval.String(),
		"LOG_LEVEL":            "warn", "AUTH_ENABLED": "false", "APP_ENV": "development",
		"SERVER_DRAIN_WINDOW": "0s",
	})
	s, err := startServe(ctx, args, env, port, stderr)
	if err != nil {
		return nil, err
	}
	s.prefix, s.rdb = cfg.Redis.KeyPrefix, rdb
	return s, nil
}

// startEmbeddedChild re-executes this binary as a plain `serve` on the
// embedded default, as a newcomer runs it (no database or Redis settings),
// with its SQLite file in dir.
func startEmbeddedChild(ctx context.Context, dir string, stderr io.Writer) (*sut, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	env := environ(func(k string) bool {
		return strings.HasPrefix(k, "DB_") || strings.HasPrefix(k, "REDIS_") || k == "CONFIG_FILE"
	})
	env = append(env, "DB_SQLITE_PATH="+filepath.Join(dir, "idle.db"), "SERVER_HOST=127.0.0.1",
		"SERVER_PORT="+strconv.Itoa(port), "LOG_LEVEL=warn",
		// No load balancer waits on the bench's processes.
		"SERVER_DRAIN_WINDOW=0s")
	return startServe(ctx, []string{"serve"}, env, port, stderr)
}

// startServe starts this binary with args and env and waits until it
// answers its health check on port.
func startServe(ctx context.Context, args, env []string, port int, stderr io.Writer) (*sut, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own executable: %w", err)
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = env
	cmd.Stdout = stderr
	cmd.Stderr = stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start scheduler child: %w", err)
	}
	s := &sut{url: fmt.Sprintf("http://127.0.0.1:%d", port), pid: cmd.Process.Pid, child: cmd, childErr: make(chan error, 1)}
	go func() { s.childErr <- cmd.Wait() }()
	if err := s.waitHealthy(ctx, 90*time.Second); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

// startInProcess runs the scheduler inside the bench process (the embedded
// default, or --inprocess for profiling).
func startInProcess(ctx context.Context, cfg *config.Config, log *slog.Logger) (*sut, error) {
	a, err := app.New(ctx, cfg, app.RoleAll, log)
	if err != nil {
		return nil, err
	}
	if err := a.Start(ctx, server.New, "127.0.0.1:0"); err != nil {
		_ = a.Shutdown(context.Background())
		return nil, err
	}
	s := &sut{url: "http://" + a.Addr(), prefix: a.Broker.Prefix, rdb: a.Broker.Client, pid: os.Getpid(),
		inproc: a, embedded: a.Broker.Embedded}
	if err := s.waitHealthy(ctx, 30*time.Second); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

func (s *sut) waitHealthy(ctx context.Context, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.url+"/api/v1/system/health", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if s.childErr != nil {
			select {
			case err := <-s.childErr:
				return fmt.Errorf("scheduler child exited before it was healthy: %v", err)
			default:
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("scheduler at %s not healthy within %s (last error %v)", s.url, within, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// stop shuts the scheduler down.
func (s *sut) stop() {
	if s.inproc != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		_ = s.inproc.Shutdown(ctx)
		return
	}
	if s.child != nil {
		_ = s.child.Process.Signal(syscall.SIGTERM)
		// How a child told to stop ended is not part of any measurement.
		var exit error
		select {
		case exit = <-s.childErr:
		case <-time.After(60 * time.Second):
			_ = s.child.Process.Kill()
			exit = <-s.childErr
		}
		_ = exit
	}
}

// memory reads VmHWM (peak RSS) and VmRSS of the scheduler process in bytes.
func (s *sut) memory() (peak, cur int64, err error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.pid))
	if err != nil {
		return 0, 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		line := sc.Text()
		for _, k := range []struct {
			name string
			dst  *int64
		}{{"VmHWM:", &peak}, {"VmRSS:", &cur}} {
			if rest, ok := strings.CutPrefix(line, k.name); ok {
				kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
				*k.dst = kb * 1024
			}
		}
	}
	if peak == 0 {
		return 0, 0, errors.New("VmHWM not found in /proc status")
	}
	return peak, cur, sc.Err()
}
