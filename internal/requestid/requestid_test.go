package requestid_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/llmsched/llm-scheduler/internal/requestid"
)

func TestLoggerAddsRequestID(t *testing.T) {
	var buf bytes.Buffer
	log := requestid.Logger(requestid.Logger(slog.New(slog.NewJSONHandler(&buf, nil))))
	ctx := requestid.With(context.Background(), "abc123")
	log.With("component", "x").InfoContext(ctx, "with id")
	log.InfoContext(context.Background(), "without id")
	dec := json.NewDecoder(&buf)
	var first, second map[string]any
	if err := dec.Decode(&first); err != nil {
		t.Fatal(err)
	}
	if err := dec.Decode(&second); err != nil {
		t.Fatal(err)
	}
	if first["request_id"] != "abc123" || first["component"] != "x" {
		t.Fatalf("record with a request context = %v, want request_id abc123", first)
	}
	if _, ok := second["request_id"]; ok {
		t.Fatalf("record without a request id got one: %v", second)
	}
	if got := requestid.From(ctx); got != "abc123" {
		t.Fatalf("From = %q", got)
	}
}
