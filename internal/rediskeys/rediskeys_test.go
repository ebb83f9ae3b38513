package rediskeys_test

import (
	"strings"
	"testing"

	"github.com/llmsched/llm-scheduler/internal/rediskeys"
)

// hashTag is what Redis Cluster hashes of a key: the part between the
// first "{" and the next "}" when not empty, else the whole key.
func hashTag(key string) string {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			return key[i+1 : i+1+j]
		}
	}
	return key
}

// TestKeysOneScriptTakesShareAHashSlot: every key of a model has the
// model's hash tag (the slot scripts take them together), and the marked
// set hashes like the epoch key (markScript takes both).
func TestKeysOneScriptTakesShareAHashSlot(t *testing.T) {
	m := rediskeys.ModelOf("llmsched", 7)
	for _, k := range []string{m.Parked(), m.Leases(), m.Backoff(), m.Head(), m.WRR(), m.Fair(), m.Wake(), m.Mark(), m.RateRequests(), m.RateTokens()} {
		if got := hashTag(k); got != "llmsched:model:7" {
			t.Errorf("%s hashes as %q, want the model's tag", k, got)
		}
	}
	if got, want := hashTag(rediskeys.Marked("llmsched")), hashTag(rediskeys.Epoch("llmsched")); got != want {
		t.Errorf("the marked set hashes as %q, the epoch key as %q", got, want)
	}
	if got := hashTag(rediskeys.AsynqPending("high")); got != "high" {
		t.Errorf("asynq's pending list hashes as %q, want its queue", got)
	}
}
