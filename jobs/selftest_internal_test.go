package jobs

import (
	"os/exec"
	"strings"
	"testing"
)

// TestAsynqVersionIsTheVerifiedOne pins asynq: the idle gate (wake.go)
// relies on asynq internals checked against one release only. A test
// binary carries no dependency versions, so the version comes from the go
// command (go.mod, with any replace directive) unless the build info has it.
func TestAsynqVersionIsTheVerifiedOne(t *testing.T) {
	v := asynqVersion()
	if v == "unknown" {
		out, err := exec.Command("go", "list", "-m", "-f", "{{.Version}}{{with .Replace}} replaced by {{.Path}}@{{.Version}}{{end}}", asynqModule).Output()
		if err != nil {
			t.Fatalf("go list -m %s: %v", asynqModule, err)
		}
		v = strings.TrimSpace(string(out))
	}
	if v != verifiedAsynqVersion {
		t.Fatalf(`asynq is %s, but the worker's idle gate (jobs/wake.go) was verified with asynq %s.
The gate relies on two asynq internals; re-verify both in the new release:
  1. the dequeue call: internal/rdb (*RDB).Dequeue runs one script per queue
     with KEYS pending, paused, active, lease (in that order) through
     go-redis Script.Run (EVALSHA, EVAL after NOSCRIPT): jobs/wake.go dequeueQueue;
  2. the key format asynq:{<queue>}:pending (internal/base PendingKey):
     internal/rediskeys AsynqPending.
Then run, on both backends (LLMSCHED_TEST_BACKEND=mysql for a real Redis):
  go test ./jobs -run 'TestWorkerSelfTest|TestUnrecognisedDequeue|TestIdleGate|TestIdleWorker|TestModelCreatedWhileWorkersAreQuiet'
and set verifiedAsynqVersion (jobs/selftest.go) to the new version.`, v, verifiedAsynqVersion)
	}
}
