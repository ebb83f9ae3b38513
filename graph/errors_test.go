package graph_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/99designs/gqlgen/graphql"

	"github.com/llmsched/llm-scheduler/graph"
)

// TestInternalErrorsAreHidden: an error the domain does not classify, and a
// resolver panic, answer INTERNAL with a fixed message; the cause goes to
// the log only. Breakage caught: the presenter passing the message through
// (it can carry SQL, paths or secrets) or giving no code.
func TestInternalErrorsAreHidden(t *testing.T) {
	var logged bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logged, nil))
	present := graph.ErrorPresenter(log)
	ctx := graphql.WithPathContext(context.Background(), graphql.NewPathWithField("task"))
	for name, cause := range map[string]func() error{
		"unclassified error": func() error { return errors.New("pq: secret table exploded") },
		"resolver panic":     func() error { return graph.Recover(log)(ctx, "secret panic value") },
	} {
		t.Run(name, func(t *testing.T) {
			logged.Reset()
			ge := present(ctx, cause())
			if ge.Extensions["code"] != "INTERNAL" {
				t.Fatalf("code %v, want INTERNAL", ge.Extensions["code"])
			}
			if strings.Contains(ge.Message, "secret") {
				t.Fatalf("message %q shows the cause", ge.Message)
			}
			if !strings.Contains(logged.String(), "secret") {
				t.Fatalf("the cause was not logged: %q", logged.String())
			}
		})
	}
}
