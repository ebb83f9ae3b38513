// Package mysqltest starts a private MariaDB server for tests and the
// bench: mariadb-install-db, then mariadbd on a free loopback port with its
// data under a directory of the caller's. Those that stop, restart or
// measure the database (the chaos tests, `bench --scale`) use it instead
// of the shared server. Root connects without a password.
package mysqltest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	_ "github.com/go-sql-driver/mysql" // the driver DSN is for

	"github.com/llmsched/llm-scheduler/internal/redistest"
)

// Server is one private mariadbd.
type Server struct {
	// Port is the loopback port it listens on, the same across restarts.
	Port int

	dir  string
	opts Options
	cmd  *exec.Cmd
	done chan struct{}
}

// Options shape the server.
type Options struct {
	// Args are more mariadbd options, e.g. "--max-connections=1000" or
	// "--innodb-flush-log-at-trx-commit=2".
	Args []string
	// DieWithParent kills the server when the process that started it
	// dies (Linux's parent-death signal), for runs that may be
	// interrupted without a chance to stop it.
	DieWithParent bool
}

// Start creates a data directory under dir and starts the server on a free
// port (redistest.FreePorts: one allocator for every private server of a
// process), returning once it takes connections.
func Start(ctx context.Context, dir string, o Options) (*Server, error) {
	if _, err := exec.LookPath("mariadbd"); err != nil {
		return nil, fmt.Errorf("mariadbd not found (apt-get install mariadb-server): %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	install := exec.CommandContext(ctx, "mariadb-install-db", append([]string{"--no-defaults",
		"--datadir=" + filepath.Join(dir, "data"), "--auth-root-authentication-method=normal", "--skip-test-db"}, asRoot()...)...)
	if out, err := install.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("mariadb-install-db: %v: %s", err, out)
	}
	ports, err := redistest.FreePorts(1)
	if err != nil {
		return nil, err
	}
	s := &Server{Port: ports[0], dir: dir, opts: o}
	return s, s.Start(ctx)
}

// asRoot lets mariadbd run as root, which it refuses otherwise.
func asRoot() []string {
	if os.Geteuid() == 0 {
		return []string{"--user=root"}
	}
	return nil
}

// Start starts the server (again, after Stop) on its port and data, and
// waits until it takes connections.
func (s *Server) Start(ctx context.Context) error {
	log, err := os.OpenFile(filepath.Join(s.dir, "mariadbd.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer func() { _ = log.Close() }() // the child has its own descriptor; nothing was written through this one
	args := append([]string{"--no-defaults", "--datadir=" + filepath.Join(s.dir, "data"),
		"--socket=" + filepath.Join(s.dir, "mysqld.sock"), "--pid-file=" + filepath.Join(s.dir, "mysqld.pid"),
		"--port=" + strconv.Itoa(s.Port), "--bind-address=127.0.0.1", "--skip-log-bin"}, asRoot()...)
	cmd := exec.Command("mariadbd", append(args, s.opts.Args...)...)
	cmd.Stdout, cmd.Stderr = log, log
	if s.opts.DieWithParent {
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start mariadbd: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.cmd, s.done = cmd, done
	db, err := sql.Open("mysql", s.DSN(""))
	if err != nil {
		s.Stop()
		return err
	}
	defer db.Close()
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := db.PingContext(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("mariadbd exited at start (log %s)", filepath.Join(s.dir, "mariadbd.log"))
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			s.Stop()
			return fmt.Errorf("mariadbd on port %d does not answer: %w", s.Port, errors.Join(err, ctx.Err()))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// DSN is the go-sql-driver address of database name ("" for none) as
// root, with times parsed in UTC.
func (s *Server) DSN(name string) string {
	return fmt.Sprintf("root@tcp(127.0.0.1:%d)/%s?parseTime=true&loc=UTC", s.Port, name)
}

// PID is the running server's process id (0 when stopped).
func (s *Server) PID() int {
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Stop shuts the server down cleanly (SIGTERM) and waits for it, killing
// it after 30 s. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
}
