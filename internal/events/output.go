package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/llmsched/llm-scheduler/internal/rediskeys"
	"github.com/redis/go-redis/v9"
)

// The output streamed so far.
//
// Pub/sub reaches only those listening: a taskOutput subscriber that joins
// mid-answer, or a read of a running task, would miss what was streamed
// before. So every output chunk is also appended to a list per attempt
// (key outputKey), written in the same outbox round trip and before the
// frame that publishes it (outbox.send). A reader that first subscribes
// and then reads the list therefore misses nothing: a chunk published
// before the subscription is in the list, one published after it arrives
// live, and one may be in both, which the sequence numbers (Seq, from 1
// per attempt) sort out.
//
// The lists hold text only (not the provider's raw chunks). They are
// bounded (OutputKept entries, the first ones; the streamer sends at most
// 20 chunks a second, so that is 54 minutes of streaming), expire
// OutputLiveTTL after their last chunk, OutputEndTTL after the attempt's
// last chunk, and OutputForgetTTL once the attempt's outcome is stored
// (ForgetOutput), when the database holds the output.

// OutputKept bounds an attempt's list.
const OutputKept = 1 << 16

// How long an attempt's list outlives its last write.
const (
	// OutputLiveTTL: after any chunk (an attempt silent this long has
	// lost its worker; the lease has long expired).
	OutputLiveTTL = time.Hour
	// OutputEndTTL: after the attempt's last chunk, until its outcome is
	// stored (the worker waits out a database outage up to 2 minutes).
	OutputEndTTL = 5 * time.Minute
	// OutputForgetTTL: after the outcome is stored; a reader that saw the
	// task running a moment before still finds the list.
	OutputForgetTTL = 10 * time.Second
)

// kept is what an outbox message stores in an output list.
type kept struct {
	key   string
	entry []byte // nil: only set the TTL
	// seq is the chunk's sequence number (from 1 per attempt): the list
	// holds at most seq entries once it is appended. 0: not known.
	seq int
	// onlyIfExists: append only to an existing list (an empty last chunk
	// of an attempt that streamed nothing creates no list).
	onlyIfExists bool
	ttl          time.Duration
}

// outputKey is the list of one attempt's chunks.
func outputKey(prefix string, taskID, attempt int) string {
	return rediskeys.Output(prefix, taskID, attempt)
}

// keepOutput queues the list writes of a batch on pipe; it reports
// whether there were any. The writes of one list are merged: its chunks
// go in one RPUSH (an attempt's chunks and its last one usually share a
// batch), then one LTRIM if the list may have reached OutputKept, then
// one EXPIRE with the TTL of the list's last message, which is what the
// messages' writes one by one would leave.
func keepOutput(ctx context.Context, pipe redis.Pipeliner, batch []outMsg) bool {
	type list struct {
		key     string
		entries []any
		// ifExists: the first write of the batch appends only to an
		// existing list (later ones follow it: the list exists then, or
		// they have nothing to append to either).
		ifExists bool
		// trim: the list may have reached OutputKept (a chunk's seq says
		// so, or is not known).
		trim bool
		ttl  time.Duration
	}
	var (
		lists []*list
		byKey map[string]*list
	)
	for _, m := range batch {
		k := m.keep
		if k == nil {
			continue
		}
		l := byKey[k.key]
		if l == nil {
			if byKey == nil {
				byKey = make(map[string]*list)
			}
			l = &list{key: k.key}
			byKey[k.key] = l
			lists = append(lists, l)
		}
		if k.entry != nil {
			if len(l.entries) == 0 {
				l.ifExists = k.onlyIfExists
			}
			l.entries = append(l.entries, k.entry)
			l.trim = l.trim || k.seq <= 0 || k.seq >= OutputKept
		}
		l.ttl = k.ttl
	}
	for _, l := range lists {
		if len(l.entries) > 0 {
			if l.ifExists {
				pipe.RPushX(ctx, l.key, l.entries...)
			} else {
				pipe.RPush(ctx, l.key, l.entries...)
			}
			if l.trim {
				pipe.LTrim(ctx, l.key, 0, OutputKept-1)
			}
		}
		pipe.Expire(ctx, l.key, l.ttl)
	}
	return len(lists) > 0
}

// keepOf is how a published chunk is stored.
func (b *Bus) keepOf(c OutputChunk) (*kept, error) {
	entry, err := json.Marshal(OutputChunk{TaskID: c.TaskID, Attempt: c.Attempt, Seq: c.Seq, Text: c.Text, Done: c.Done})
	if err != nil {
		return nil, fmt.Errorf("encode output chunk: %w", err)
	}
	k := &kept{key: outputKey(b.prefix, c.TaskID, c.Attempt), entry: entry, seq: c.Seq, ttl: OutputLiveTTL}
	if c.Done {
		k.ttl = OutputEndTTL
		k.onlyIfExists = c.Text == ""
	}
	return k, nil
}

// OutputSoFar returns the chunks one attempt of a task has streamed so far,
// in order (none once they have expired; see above).
func (b *Bus) OutputSoFar(ctx context.Context, taskID, attempt int) ([]OutputChunk, error) {
	// This process's own subscribers get its chunks at publish time, and
	// its outbox writes the lists later: a chunk published here before the
	// caller subscribed may not be kept yet. Wait until it is.
	if err := b.out.flush(ctx); err != nil {
		return nil, fmt.Errorf("read the output of task %d so far: %w", taskID, err)
	}
	raws, err := b.rdb.LRange(ctx, outputKey(b.prefix, taskID, attempt), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("read the output of task %d so far: %w", taskID, err)
	}
	return decodeKept(raws)
}

// OutputRef names one attempt of one task.
type OutputRef struct{ TaskID, Attempt int }

// OutputsSoFar returns the text streamed so far by each attempt, in one
// round trip; attempts with nothing kept are absent.
func (b *Bus) OutputsSoFar(ctx context.Context, refs []OutputRef) (map[OutputRef]string, error) {
	if len(refs) == 0 {
		return nil, nil
	}
	pipe := b.rdb.Pipeline()
	cmds := make([]*redis.StringSliceCmd, len(refs))
	for i, r := range refs {
		cmds[i] = pipe.LRange(ctx, outputKey(b.prefix, r.TaskID, r.Attempt), 0, -1)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read the output of running tasks so far: %w", err)
	}
	out := make(map[OutputRef]string, len(refs))
	for i, r := range refs {
		cs, err := decodeKept(cmds[i].Val())
		if err != nil {
			return nil, err
		}
		if len(cs) > 0 {
			out[r] = JoinText(cs)
		}
	}
	return out, nil
}

// ForgetOutput lets an attempt's list expire soon: its outcome is stored.
// It is queued like a publication (one round trip for many).
func (b *Bus) ForgetOutput(taskID, attempt int) {
	b.out.push(nil, outMsg{kind: kindKeep, keep: &kept{key: outputKey(b.prefix, taskID, attempt), ttl: OutputForgetTTL}})
}

// JoinText concatenates the text of chunks.
func JoinText(cs []OutputChunk) string {
	n := 0
	for _, c := range cs {
		n += len(c.Text)
	}
	buf := make([]byte, 0, n)
	for _, c := range cs {
		buf = append(buf, c.Text...)
	}
	return string(buf)
}

func decodeKept(raws []string) ([]OutputChunk, error) {
	cs := make([]OutputChunk, 0, len(raws))
	for _, raw := range raws {
		var c OutputChunk
		if err := json.Unmarshal([]byte(raw), &c); err != nil {
			return nil, fmt.Errorf("decode a kept output chunk: %w", err)
		}
		cs = append(cs, c)
	}
	return cs, nil
}
