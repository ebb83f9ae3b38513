package cli

import (
	"errors"
	"strings"
	"testing"

	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/internal/apikeys"
)

// failingWriter refuses every write after the first n bytes.
type failingWriter struct{ n int }

func (w *failingWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		k := w.n
		w.n = 0
		return k, errors.New("disk full")
	}
	w.n -= len(p)
	return len(p), nil
}

// A new key's secrets are shown once: a write that fails fails the command.
func TestShowCreatedFailsWhenTheSecretsCannotBeWritten(t *testing.T) {
	c := apikeys.Created{Key: &ent.APIKey{ID: 7, Name: "ci", Role: "submitter", Weight: 1}, Secret: "sk-x", WebhookSecret: "whsec-x"}
	for _, room := range []int{0, 60} { // nothing written; the key but not the webhook secret
		err := showCreated(&failingWriter{n: room}, c)
		if err == nil || !strings.Contains(err.Error(), "key 7 was created but its secrets could not be shown") {
			t.Errorf("with room for %d bytes: %v, want the secrets-not-shown error", room, err)
		}
	}
	var out strings.Builder
	if err := showCreated(&out, c); err != nil || !strings.Contains(out.String(), "sk-x") || !strings.Contains(out.String(), "whsec-x") {
		t.Errorf("showCreated = %v, printed %q", err, out.String())
	}
}
