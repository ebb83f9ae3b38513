package events

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// keepMsgs are the outbox messages of an attempt's chunks texts (the last
// one Done) and then its ForgetOutput.
func keepMsgs(t *testing.T, b *Bus, taskID int, texts ...string) []outMsg {
	t.Helper()
	var ms []outMsg
	for i, text := range texts {
		k, err := b.keepOf(OutputChunk{TaskID: taskID, Attempt: 1, Seq: i + 1, Text: text, Done: i == len(texts)-1})
		if err != nil {
			t.Fatal(err)
		}
		ms = append(ms, outMsg{kind: kindOutput, keep: k})
	}
	return append(ms, outMsg{kind: kindKeep, keep: &kept{key: outputKey(b.prefix, taskID, 1), ttl: OutputForgetTTL}})
}

// keepRedis is a fresh miniredis and a client of it.
func keepRedis(t *testing.T) (*miniredis.Miniredis, *redis.Client) {
	t.Helper()
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	return mr, rdb
}

// TestKeptOutputIsWrittenOncePerList: a batch holding two attempts'
// chunks (the second's last chunk empty, so appended only to an existing
// list) and their outcomes stored writes each list with one RPUSH and one
// EXPIRE, and leaves what the writes one by one would: every chunk in
// order, the TTL of the last message. An attempt that streamed nothing
// creates no list.
func TestKeptOutputIsWrittenOncePerList(t *testing.T) {
	mr, rdb := keepRedis(t)
	ctx := context.Background()
	b := &Bus{prefix: "keep"}
	var batch []outMsg
	a := keepMsgs(t, b, 1, "one ", "two ", "three")
	c := keepMsgs(t, b, 2, "alone", "")
	batch = append(batch, a[0], c[0], a[1], c[1], a[2])
	batch = append(batch, keepMsgs(t, b, 3, "")...) // streamed nothing
	batch = append(batch, a[3], c[2])               // both outcomes stored
	pipe := rdb.Pipeline()
	if !keepOutput(ctx, pipe, batch) {
		t.Fatal("keepOutput queued nothing")
	}
	if got := len(pipe.(*redis.Pipeline).Cmds()); got != 6 {
		t.Fatalf("%d commands for three lists (two with chunks), want 6: an RPUSH and an EXPIRE for each list with text, an RPUSHX and an EXPIRE for the one without", got)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[int]string{1: "one two three", 2: "alone"} {
		raws, err := rdb.LRange(ctx, outputKey(b.prefix, id, 1), 0, -1).Result()
		if err != nil {
			t.Fatal(err)
		}
		cs, err := decodeKept(raws)
		if err != nil {
			t.Fatal(err)
		}
		if len(cs) == 0 {
			t.Fatalf("task %d kept nothing", id)
		}
		if got := JoinText(cs); got != want {
			t.Errorf("task %d kept %q, want %q", id, got, want)
		}
		for i, c := range cs {
			if c.Seq != i+1 {
				t.Errorf("task %d chunk %d has seq %d", id, i, c.Seq)
			}
		}
		if !cs[len(cs)-1].Done {
			t.Errorf("task %d: last kept chunk not Done", id)
		}
		if ttl := mr.TTL(outputKey(b.prefix, id, 1)); ttl != OutputForgetTTL {
			t.Errorf("task %d list TTL %s, want %s (its last message's)", id, ttl, OutputForgetTTL)
		}
	}
	if mr.Exists(outputKey(b.prefix, 3, 1)) {
		t.Error("an attempt that streamed nothing has a list")
	}
}

// TestKeptOutputStaysBounded: a list that may have reached OutputKept is
// trimmed to its first OutputKept entries.
func TestKeptOutputStaysBounded(t *testing.T) {
	_, rdb := keepRedis(t)
	ctx := context.Background()
	b := &Bus{prefix: "bound"}
	key := outputKey(b.prefix, 1, 1)
	full := make([]any, OutputKept)
	for i := range full {
		full[i] = fmt.Sprintf(`{"task_id":1,"attempt":1,"seq":%d,"text":"x"}`, i+1)
	}
	if err := rdb.RPush(ctx, key, full...).Err(); err != nil {
		t.Fatal(err)
	}
	k, err := b.keepOf(OutputChunk{TaskID: 1, Attempt: 1, Seq: OutputKept + 1, Text: "over"})
	if err != nil {
		t.Fatal(err)
	}
	pipe := rdb.Pipeline()
	keepOutput(ctx, pipe, []outMsg{{kind: kindOutput, keep: k}})
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	if n := rdb.LLen(ctx, key).Val(); n != OutputKept {
		t.Fatalf("list of %d entries after one more chunk, want %d", n, OutputKept)
	}
	if ttl := rdb.TTL(ctx, key).Val(); ttl <= 0 || ttl > OutputLiveTTL || ttl < OutputLiveTTL-time.Minute {
		t.Fatalf("TTL %s, want %s", ttl, OutputLiveTTL)
	}
}
