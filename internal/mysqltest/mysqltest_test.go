package mysqltest_test

import (
	"context"
	"database/sql"
	"os"
	"os/exec"
	"testing"

	"github.com/llmsched/llm-scheduler/internal/mysqltest"
)

// A private server takes connections, keeps its data across a restart on
// the same port, and is gone after Stop.
func TestStartStopRestartKeepsData(t *testing.T) {
	if _, err := exec.LookPath("mariadbd"); err != nil || os.Getenv("LLMSCHED_TEST_BACKEND") != "mysql" {
		t.Skip("needs mariadbd: runs with LLMSCHED_TEST_BACKEND=mysql")
	}
	ctx := context.Background()
	s, err := mysqltest.Start(ctx, t.TempDir(), mysqltest.Options{Args: []string{"--innodb-flush-log-at-trx-commit=2"}, DieWithParent: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	exec1 := func(q string) error {
		db, err := sql.Open("mysql", s.DSN(""))
		if err != nil {
			return err
		}
		defer db.Close()
		_, err = db.ExecContext(ctx, q)
		return err
	}
	if err := exec1("CREATE DATABASE kept"); err != nil {
		t.Fatal(err)
	}
	pid, port := s.PID(), s.Port
	s.Stop()
	if s.PID() != 0 {
		t.Fatal("a stopped server still has a pid")
	}
	if err := exec1("SELECT 1"); err == nil {
		t.Fatal("a stopped server still answers")
	}
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if s.Port != port || s.PID() == pid || s.PID() == 0 {
		t.Fatalf("restart: port %d pid %d, was port %d pid %d", s.Port, s.PID(), port, pid)
	}
	if err := exec1("CREATE TABLE kept.t (id INT)"); err != nil {
		t.Fatalf("the database made before the restart: %v", err)
	}
}
