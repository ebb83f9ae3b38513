package events

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/llmsched/llm-scheduler/internal/rediskeys"
)

// Channel is the Redis pub/sub channel of the event bus of the deployment
// whose keys are named under prefix.
func Channel(prefix string) string { return rediskeys.Events(prefix) }

// The bus publishes frames: one Redis message carrying many bus messages,
// in publish order, as a JSON array of entries that hold either a task
// event or an output chunk:
//
//	[{"task":{"task_id":7,...}},{"output":{"task_id":7,...}},...]
//
// One channel for both kinds keeps their order (a task's last output chunk
// is published before its final transition, and readers rely on it). A
// frame per outbox round trip instead of a message per event: every Redis
// message costs Redis a delivery to each subscribed process and each of
// those processes a read and a wake-up, and a task publishes four or five.
//
// Each frame opens with an entry naming the bus that sent it
// ({"origin":"..."}): a process delivers its own messages to its own
// subscribers when it publishes them (Bus.publish) and skips its frames
// when Redis echoes them back.
type entry struct {
	Origin string          `json:"origin,omitempty"`
	Task   json.RawMessage `json:"task,omitempty"`
	Output json.RawMessage `json:"output,omitempty"`
}

// originPrefix is how every frame of the bus named origin begins.
func originPrefix(origin string) []byte {
	raw, _ := json.Marshal(origin) // a string always encodes
	return []byte(`[{"origin":` + string(raw) + `}`)
}

// Entry kinds in the outbox (outMsg.kind).
const (
	kindTask byte = iota
	kindOutput
	kindKeep // only stores (or expires) an output list; nothing is published
)

// frameMax bounds a frame's size; a single larger message goes alone.
const frameMax = 256 << 10

// frames packs encoded messages into frames of at most frameMax bytes,
// each opening with the origin entry (originPrefix).
func frames(origin []byte, ms []outMsg) [][]byte {
	var out [][]byte
	var buf bytes.Buffer
	for _, m := range ms {
		if m.kind == kindKeep {
			continue
		}
		if buf.Len() > len(origin) && buf.Len()+len(m.raw)+len(`,{"output":}]`) > frameMax {
			buf.WriteByte(']')
			out = append(out, bytes.Clone(buf.Bytes()))
			buf.Reset()
		}
		if buf.Len() == 0 {
			buf.Write(origin)
		}
		buf.WriteByte(',')
		if m.kind == kindTask {
			buf.WriteString(`{"task":`)
		} else {
			buf.WriteString(`{"output":`)
		}
		buf.Write(m.raw)
		buf.WriteByte('}')
	}
	if buf.Len() > len(origin) {
		buf.WriteByte(']')
		out = append(out, buf.Bytes())
	}
	return out
}

// Decode calls onTask or onOutput for each message of a frame, in order.
// Either may be nil: those messages are skipped without being decoded. A
// message that cannot be decoded is skipped and reported (the first such
// error) after the rest were delivered.
func Decode(frame []byte, onTask func(TaskEvent), onOutput func(OutputChunk)) error {
	var es []entry
	if err := json.Unmarshal(frame, &es); err != nil {
		return fmt.Errorf("decode event frame: %w", err)
	}
	var first error
	for _, e := range es {
		var err error
		switch {
		case e.Origin != "":
			// Who sent the frame: only the bus itself looks (Bus.dispatch).
		case e.Task != nil:
			err = deliver(e.Task, onTask, "task event")
		case e.Output != nil:
			err = deliver(e.Output, onOutput, "output chunk")
		default:
			err = fmt.Errorf("decode event frame: an entry with neither a task event nor an output chunk")
		}
		if err != nil && first == nil {
			first = err
		}
	}
	return first
}

// deliver decodes one entry's message and hands it to fn; with fn nil it
// decodes nothing.
func deliver[T any](raw json.RawMessage, fn func(T), what string) error {
	if fn == nil {
		return nil
	}
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		return fmt.Errorf("decode %s: %w", what, err)
	}
	fn(v)
	return nil
}
