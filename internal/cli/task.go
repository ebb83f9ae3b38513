package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

const taskUsage = `usage:
  llm-scheduler task submit --model NAME|ID [--type TYPE] [--priority high|medium|low] [--callback-url URL] [--wait] [INPUT | -]
  llm-scheduler task list [--status S] [--model NAME|ID] [--page N] [--page-size N]
  llm-scheduler task get ID
  llm-scheduler task watch ID
  llm-scheduler task cancel ID
  llm-scheduler task retry ID

Every command takes --server URL (env LLMSCHED_SERVER, default http://127.0.0.1:8080),
--api-key KEY (env LLMSCHED_API_KEY) and --json. See docs/cli.md.
`

func taskCommand(args []string, o IO) error {
	return sub("task", args, taskUsage, o, map[string]func([]string, IO) error{
		"submit": taskSubmit, "list": taskList, "get": taskGet, "watch": taskWatch,
		"cancel": taskAction("cancel"), "retry": taskAction("retry"),
	})
}

// task is the REST view of a task, as the client shows it.
type task struct {
	ID               int64          `json:"id"`
	ModelID          int64          `json:"model_id"`
	Type             string         `json:"type"`
	Input            string         `json:"input"`
	Params           map[string]any `json:"params,omitempty"`
	Priority         int            `json:"priority"`
	Status           string         `json:"status"`
	Output           string         `json:"output"`
	Embedding        []float64      `json:"embedding,omitempty"`
	Error            string         `json:"error,omitempty"`
	Attempts         int            `json:"attempts"`
	MaxRetries       int            `json:"max_retries"`
	PromptTokens     int            `json:"prompt_tokens"`
	CompletionTokens int            `json:"completion_tokens"`
	TotalTokens      int            `json:"total_tokens"`
	CreatedAt        time.Time      `json:"created_at"`
	StartedAt        *time.Time     `json:"started_at"`
	FinishedAt       *time.Time     `json:"finished_at"`
	NextAttemptAt    *time.Time     `json:"next_attempt_at,omitempty"`
	RunAt            *time.Time     `json:"run_at,omitempty"`
	CallbackURL      string         `json:"callback_url,omitempty"`
	PendingReason    string         `json:"pending_reason,omitempty"`
	PendingDetail    string         `json:"pending_detail,omitempty"`
	QueuePosition    int            `json:"queue_position,omitempty"`
	// WebhookDeliveries are the completion webhooks of a task with a
	// callback_url (detail view).
	WebhookDeliveries []struct {
		ID             int64  `json:"id"`
		Event          string `json:"event"`
		Status         string `json:"status"`
		Attempts       int    `json:"attempts"`
		LastStatusCode *int   `json:"last_status_code"`
		LastError      string `json:"last_error"`
	} `json:"webhook_deliveries,omitempty"`
}

func (t *task) terminal() bool {
	return t.Status == "completed" || t.Status == "failed" || t.Status == "cancelled"
}

// taskID reads the one positional ID argument.
func taskID(pos []string, cmd string) (int64, error) {
	if len(pos) != 1 {
		return 0, usageErr("task %s takes one task ID, got %d arguments", cmd, len(pos))
	}
	id, err := strconv.ParseInt(pos[0], 10, 64)
	if err != nil || id <= 0 {
		return 0, usageErr("task ID must be a positive integer, got %q", pos[0])
	}
	return id, nil
}

// priorities are the names --priority takes besides 1..3.
var priorities = map[string]int{"low": 1, "medium": 2, "high": 3, "1": 1, "2": 2, "3": 3}

// paramFlags collects repeated --param key=value.
type paramFlags map[string]any

func (p paramFlags) String() string { return "" }

// Set reads key=value; a value that is valid JSON (a number, true, an
// array) is taken as such, anything else as a string.
func (p paramFlags) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("want key=value, got %q", s)
	}
	var j any
	if json.Unmarshal([]byte(v), &j) == nil {
		p[k] = j
	} else {
		p[k] = v
	}
	return nil
}

// submitFlags are the flags of task submit besides the common ones.
type submitFlags struct {
	model, typ, prio, runAt, idem, callback *string
	params                                  paramFlags
	maxRetries, timeoutSecs                 *int
	delay, timeout                          *time.Duration
	wait                                    *bool
}

func registerSubmitFlags(fs *flag.FlagSet) *submitFlags {
	f := &submitFlags{params: paramFlags{}}
	f.model = fs.String("model", "", "model name or ID (required)")
	f.typ = fs.String("type", "text-generation", "text-generation, translation, summarization, embedding or custom")
	f.prio = fs.String("priority", "", "high, medium (default) or low (or 3, 2, 1)")
	fs.Var(f.params, "param", "a type-specific setting key=value (repeatable): target_language=French, max_tokens=200")
	f.maxRetries = fs.Int("max-retries", -1, "automatic retries (default: the server's queue.max_retries)")
	f.timeoutSecs = fs.Int("timeout-seconds", 0, "per-attempt timeout (default: the server's queue.task_timeout)")
	f.runAt = fs.String("run-at", "", "run at this RFC 3339 time instead of now")
	f.delay = fs.Duration("delay", 0, "run after this long (30s, 5m, 2h)")
	f.idem = fs.String("idempotency-key", "", "a repeated submit with the same key returns the first task")
	f.callback = fs.String("callback-url", "", "POST a signed completion webhook here when the task ends (docs/webhooks.md)")
	f.wait = fs.Bool("wait", false, "wait for the task to end, streaming its output; the exit code says how it ended")
	f.timeout = fs.Duration("timeout", 0, "with --wait: give up after this long (exit 6); 0 waits forever")
	return f
}

// body checks the flags and builds the request body for input; the model
// ID is added once the model is resolved.
func (f *submitFlags) body(input string) (map[string]any, error) {
	body := map[string]any{"type": *f.typ, "input": input}
	if *f.prio != "" {
		p, ok := priorities[strings.ToLower(*f.prio)]
		if !ok {
			return nil, usageErr("--priority must be high, medium or low (or 3, 2, 1), got %q", *f.prio)
		}
		body["priority"] = p
	}
	if len(f.params) > 0 {
		body["params"] = map[string]any(f.params)
	}
	if *f.maxRetries >= 0 {
		body["max_retries"] = *f.maxRetries
	}
	if *f.timeoutSecs > 0 {
		body["timeout_seconds"] = *f.timeoutSecs
	}
	if *f.callback != "" {
		body["callback_url"] = *f.callback
	}
	if *f.runAt != "" && *f.delay != 0 {
		return nil, usageErr("--run-at and --delay cannot be combined")
	}
	if *f.runAt != "" {
		body["run_at"] = *f.runAt
	}
	if *f.delay != 0 {
		if *f.delay < 0 || *f.delay%time.Second != 0 {
			return nil, usageErr("--delay must be a positive whole number of seconds, got %s", *f.delay)
		}
		body["delay_seconds"] = int(*f.delay / time.Second)
	}
	return body, nil
}

func taskSubmit(args []string, o IO) error {
	fs := newFlags("task submit", o)
	var c common
	c.register(fs, o)
	f := registerSubmitFlags(fs)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if *f.model == "" {
		return usageErr("task submit: --model is required")
	}
	input, err := readInput(pos, o.Stdin)
	if err != nil {
		return err
	}
	body, err := f.body(input)
	if err != nil {
		return err
	}
	cl, err := newClient(c)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	t, err := postTask(ctx, cl, *f.model, *f.idem, body)
	if err != nil {
		return err
	}
	if !*f.wait {
		if c.json {
			return writeJSON(o.Stdout, t)
		}
		fmt.Fprintf(o.Stdout, "%d\n", t.ID)
		fmt.Fprintf(o.Stderr, "task %d %s%s\n", t.ID, t.Status, reasonSuffix(t))
		return nil
	}
	if !c.json {
		fmt.Fprintf(o.Stderr, "task %d submitted\n", t.ID)
	}
	return follow(ctx, cl, t.ID, c.json, *f.timeout, o, true)
}

// postTask resolves the model reference and submits body, with an
// Idempotency-Key header when idem is set.
func postTask(ctx context.Context, cl *client, model, idem string, body map[string]any) (*task, error) {
	modelID, err := resolveModel(ctx, cl, model)
	if err != nil {
		return nil, err
	}
	body["model_id"] = modelID
	var headers []string
	if idem != "" {
		headers = []string{"Idempotency-Key", idem}
	}
	var t task
	if err := cl.do(ctx, "POST", "/api/v1/tasks", body, &t, headers...); err != nil {
		return nil, err
	}
	return &t, nil
}

// readInput is the positional input, or stdin for "-" or none.
func readInput(pos []string, stdin io.Reader) (string, error) {
	if len(pos) > 0 && !(len(pos) == 1 && pos[0] == "-") {
		return strings.Join(pos, " "), nil
	}
	if stdin == nil {
		return "", usageErr("no input: give it as an argument or on stdin")
	}
	raw, err := io.ReadAll(stdin)
	if err != nil {
		return "", usageErr("read input from stdin: %v", err)
	}
	return strings.TrimRight(string(raw), "\n"), nil
}

func reasonSuffix(t *task) string {
	var parts []string
	if t.PendingReason != "" {
		parts = append(parts, t.PendingReason)
	}
	if t.RunAt != nil && t.PendingReason == "scheduled" {
		parts = append(parts, "run_at "+t.RunAt.Local().Format(time.RFC3339))
	}
	if t.QueuePosition > 0 {
		parts = append(parts, fmt.Sprintf("position %d", t.QueuePosition))
	}
	if t.Attempts > 0 {
		parts = append(parts, fmt.Sprintf("attempt %d", t.Attempts))
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

func taskGet(args []string, o IO) error {
	fs := newFlags("task get", o)
	var c common
	c.register(fs, o)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	id, err := taskID(pos, "get")
	if err != nil {
		return err
	}
	cl, err := newClient(c)
	if err != nil {
		return err
	}
	var t task
	if err := cl.do(context.Background(), "GET", fmt.Sprintf("/api/v1/tasks/%d", id), nil, &t); err != nil {
		return err
	}
	if c.json {
		return writeJSON(o.Stdout, t)
	}
	printTask(o.Stdout, &t)
	return nil
}

func printTask(w io.Writer, t *task) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	line := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", k, v)
		}
	}
	ts := func(p *time.Time) string {
		if p == nil {
			return ""
		}
		return p.Local().Format(time.RFC3339)
	}
	line("id", strconv.FormatInt(t.ID, 10))
	line("status", t.Status)
	line("model", strconv.FormatInt(t.ModelID, 10))
	line("type", t.Type)
	line("priority", strconv.Itoa(t.Priority))
	line("attempts", strconv.Itoa(t.Attempts))
	line("created", ts(&t.CreatedAt))
	line("run at", ts(t.RunAt))
	line("started", ts(t.StartedAt))
	line("finished", ts(t.FinishedAt))
	line("next attempt", ts(t.NextAttemptAt))
	if t.PendingReason != "" {
		line("waiting", t.PendingReason+": "+t.PendingDetail)
	}
	line("callback", t.CallbackURL)
	for _, d := range t.WebhookDeliveries {
		v := fmt.Sprintf("%d %s: %s after %d attempts", d.ID, d.Event, d.Status, d.Attempts)
		if d.LastStatusCode != nil {
			v += fmt.Sprintf(" (last answer %d)", *d.LastStatusCode)
		} else if d.LastError != "" {
			v += " (" + d.LastError + ")"
		}
		line("webhook", v)
	}
	if t.TotalTokens > 0 {
		line("tokens", fmt.Sprintf("%d prompt + %d completion", t.PromptTokens, t.CompletionTokens))
	}
	line("error", t.Error)
	_ = tw.Flush()
	if t.Output != "" {
		fmt.Fprintf(w, "output:\n%s\n", t.Output)
	}
}

func taskList(args []string, o IO) error {
	fs := newFlags("task list", o)
	var c common
	c.register(fs, o)
	status := fs.String("status", "", "only tasks in this status")
	model := fs.String("model", "", "only tasks of this model (name or ID)")
	page := fs.Int("page", 1, "page number")
	size := fs.Int("page-size", 20, "tasks per page (1..100)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageErr("task list takes no arguments, got %q", pos)
	}
	cl, err := newClient(c)
	if err != nil {
		return err
	}
	ctx := context.Background()
	q := url.Values{"page": {strconv.Itoa(*page)}, "page_size": {strconv.Itoa(*size)}}
	if *status != "" {
		q.Set("status", *status)
	}
	if *model != "" {
		id, err := resolveModel(ctx, cl, *model)
		if err != nil {
			return err
		}
		q.Set("model_id", strconv.FormatInt(id, 10))
	}
	var ts []task
	if err := cl.do(ctx, "GET", "/api/v1/tasks?"+q.Encode(), nil, &ts); err != nil {
		return err
	}
	if c.json {
		return writeJSON(o.Stdout, ts)
	}
	tw := tabwriter.NewWriter(o.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATUS\tPRIORITY\tMODEL\tTYPE\tCREATED\tINPUT")
	for _, t := range ts {
		in := strings.ReplaceAll(t.Input, "\n", " ")
		if r := []rune(in); len(r) > 40 {
			in = string(r[:39]) + "…"
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%s\t%s\t%s\n", t.ID, t.Status, t.Priority, t.ModelID, t.Type,
			t.CreatedAt.Local().Format(time.RFC3339), in)
	}
	return tw.Flush()
}

func taskAction(action string) func([]string, IO) error {
	return func(args []string, o IO) error {
		fs := newFlags("task "+action, o)
		var c common
		c.register(fs, o)
		pos, err := parse(fs, args)
		if err != nil {
			return err
		}
		id, err := taskID(pos, action)
		if err != nil {
			return err
		}
		cl, err := newClient(c)
		if err != nil {
			return err
		}
		var t task
		if err := cl.do(context.Background(), "POST", fmt.Sprintf("/api/v1/tasks/%d/%s", id, action), nil, &t); err != nil {
			return err
		}
		if c.json {
			return writeJSON(o.Stdout, t)
		}
		fmt.Fprintf(o.Stdout, "task %d %s\n", t.ID, t.Status)
		return nil
	}
}

func taskWatch(args []string, o IO) error {
	fs := newFlags("task watch", o)
	var c common
	c.register(fs, o)
	timeout := fs.Duration("timeout", 0, "give up after this long (exit 6); 0 watches until the task ends")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	id, err := taskID(pos, "watch")
	if err != nil {
		return err
	}
	cl, err := newClient(c)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return follow(ctx, cl, id, c.json, *timeout, o, false)
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
