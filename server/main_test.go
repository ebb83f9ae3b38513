package server_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/llmsched/llm-scheduler/internal/apptest"
)

// TestMain fails the package's tests if any goroutine outlives them
// (apptest.LeakOptions lists the third-party ones no API stops).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m, apptest.LeakOptions()...) }
