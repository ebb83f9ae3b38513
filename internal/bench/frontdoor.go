package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/llmsched/llm-scheduler/internal/providers/fakeopenai"
)

// The front-door phase (bench --frontdoor-only) measures the latency the
// OpenAI-compatible front door (/v1) adds over calling the upstream
// directly, with free capacity: one upstream fake (providers/fakeopenai,
// in the bench process), one openai-go client on it and one on the
// scheduler's /v1, called in turns, one request at a time. Each sample
// pairs a direct call with a call through the scheduler made right after
// it, so drift on a shared machine (other processes, GC) hits both; the
// added latency is the percentile of the paired differences. Plain chat
// completions are timed to the whole answer, streamed ones to the first
// content chunk (time to first token). Reps repeat the whole measurement;
// the report gives each rep and their median.

const frontDoorModel = "bench-frontdoor"

// frontDoorFigures are one rep's paired differences.
type frontDoorFigures struct {
	direct, door, added         latencies // plain
	directTTFT, doorTTFT, addTT latencies // streamed, first token
}

// frontDoor is the pair of clients a front-door sample calls in turns:
// one on the upstream fake, one on the scheduler's /v1.
type frontDoor struct {
	direct, door openai.Client
	params       openai.ChatCompletionNewParams
}

func runFrontDoor(ctx context.Context, s *sut, o Options, rep *report, progress func(string, ...any)) error {
	fake := fakeopenai.New()
	defer fake.Close()
	fake.SetHandler(func(fakeopenai.Request) fakeopenai.Reply {
		return fakeopenai.Reply{Chunks: []string{"four ", "words ", "of ", "answer"}}
	})
	if err := registerFrontDoorModel(ctx, s.url, fake.BaseURL()); err != nil {
		return err
	}
	opts := []option.RequestOption{option.WithAPIKey("bench"), option.WithMaxRetries(0), option.WithRequestTimeout(30 * time.Second)}
	fd := &frontDoor{
		direct: openai.NewClient(append(opts, option.WithBaseURL(fake.BaseURL()+"/"))...),
		door:   openai.NewClient(append(opts, option.WithBaseURL(s.url+"/v1/"))...),
		params: openai.ChatCompletionNewParams{Model: frontDoorModel,
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("How long does the front door take?")}},
	}
	progress("front door: warm-up")
	for range 20 {
		if err := fd.sample(ctx, &frontDoorFigures{}); err != nil {
			return err
		}
	}
	const phase = "front door (openai-go, one at a time, free capacity)"
	var p50s, p99s, t50s, t99s []time.Duration
	for r := 1; r <= o.FrontDoorReps; r++ {
		progress("front door: rep %d of %d, %d paired samples", r, o.FrontDoorReps, o.FrontDoorSamples)
		var f frontDoorFigures
		for range o.FrontDoorSamples {
			if err := fd.sample(ctx, &f); err != nil {
				return err
			}
		}
		rep.row(phase, fmt.Sprintf("rep %d plain: direct / via /v1", r), f.direct.summary()+"  /  "+f.door.summary())
		rep.row(phase, fmt.Sprintf("rep %d plain: added (paired)", r), f.added.summary())
		rep.row(phase, fmt.Sprintf("rep %d stream TTFT: direct / via /v1", r), f.directTTFT.summary()+"  /  "+f.doorTTFT.summary())
		rep.row(phase, fmt.Sprintf("rep %d stream TTFT: added (paired)", r), f.addTT.summary())
		p50s, p99s = append(p50s, f.added.pct(50)), append(p99s, f.added.pct(99))
		t50s, t99s = append(t50s, f.addTT.pct(50)), append(t99s, f.addTT.pct(99))
	}
	med := func(l []time.Duration) time.Duration {
		s := slices.Clone(l)
		slices.Sort(s)
		return s[len(s)/2]
	}
	rep.target("front door adds p50 <= 3 ms (plain, median of reps)", ms(med(p50s)), med(p50s) <= 3*time.Millisecond)
	rep.target("front door adds p99 <= 10 ms (plain, median of reps)", ms(med(p99s)), med(p99s) <= 10*time.Millisecond)
	rep.target("front door adds p50 <= 3 ms (stream TTFT, median of reps)", ms(med(t50s)), med(t50s) <= 3*time.Millisecond)
	rep.target("front door adds p99 <= 10 ms (stream TTFT, median of reps)", ms(med(t99s)), med(t99s) <= 10*time.Millisecond)
	return nil
}

// registerFrontDoorModel registers the upstream fake at upstream as the
// scheduler's model frontDoorModel.
func registerFrontDoorModel(ctx context.Context, url, upstream string) error {
	body, _ := json.Marshal(map[string]any{"name": frontDoorModel, "type": "openai", "max_workers": 8,
		"config": map[string]any{"base_url": upstream, "model": "bench-upstream"}})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/api/v1/models", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("register the front-door model: %w", err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("register the front-door model: status %d: %s", resp.StatusCode, answer)
	}
	return nil
}

// plain times a chat completion to the whole answer.
func (fd *frontDoor) plain(ctx context.Context, c *openai.Client) (time.Duration, error) {
	start := time.Now()
	res, err := c.Chat.Completions.New(ctx, fd.params)
	if err == nil && (len(res.Choices) == 0 || res.Choices[0].Message.Content == "") {
		err = fmt.Errorf("empty answer %s", res.RawJSON())
	}
	return time.Since(start), err
}

// ttft times a streamed chat completion to its first content chunk.
func (fd *frontDoor) ttft(ctx context.Context, c *openai.Client) (time.Duration, error) {
	start := time.Now()
	st := c.Chat.Completions.NewStreaming(ctx, fd.params)
	defer st.Close()
	var first time.Duration
	for st.Next() {
		if ch := st.Current(); first == 0 && len(ch.Choices) > 0 && ch.Choices[0].Delta.Content != "" {
			first = time.Since(start)
		}
	}
	if err := st.Err(); err != nil {
		return 0, err
	}
	if first == 0 {
		return 0, fmt.Errorf("the stream had no content")
	}
	return first, nil
}

// sample adds one paired sample, plain and streamed, to f.
func (fd *frontDoor) sample(ctx context.Context, f *frontDoorFigures) error {
	d, err := fd.plain(ctx, &fd.direct)
	if err != nil {
		return fmt.Errorf("direct call: %w", err)
	}
	g, err := fd.plain(ctx, &fd.door)
	if err != nil {
		return fmt.Errorf("call through the front door: %w", err)
	}
	dt, err := fd.ttft(ctx, &fd.direct)
	if err != nil {
		return fmt.Errorf("direct stream: %w", err)
	}
	gt, err := fd.ttft(ctx, &fd.door)
	if err != nil {
		return fmt.Errorf("stream through the front door: %w", err)
	}
	f.direct, f.door, f.added = append(f.direct, d), append(f.door, g), append(f.added, g-d)
	f.directTTFT, f.doorTTFT, f.addTT = append(f.directTTFT, dt), append(f.doorTTFT, gt), append(f.addTT, gt-dt)
	return nil
}
