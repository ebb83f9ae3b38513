package providers

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/tidwall/gjson"

	"github.com/llmsched/llm-scheduler/internal/domain"
)

func init() { Register(domain.ModelCustom, NewCustom) }

// CustomConfig is the config of a custom model: any HTTP endpoint.
//
//	url            the endpoint (required, http or https)
//	method         POST (default), PUT, PATCH or GET
//	headers        extra headers; api_key, when set, is sent as a Bearer token
//	body           the JSON request template (required except for GET; also
//	               accepted as request_template); see below
//	response_path  where the answer text is in the response (gjson path,
//	               e.g. "choices.0.message.content"; required)
//	prompt_tokens_path, completion_tokens_path   where usage is (optional)
//	embedding_path where an embedding task's vector is (optional; without it
//	               the model takes no embedding tasks)
//	error_path     where an error answer's message is (default: tries
//	               error.message, error, message, detail)
//	stream         "sse" or "ndjson" to read a streamed answer (optional)
//	chunk_path     where each streamed piece's text is (required with stream)
//	done_path      a streamed piece whose value here is true ends the answer
//	               (SSE also ends at `data: [DONE]`); without it an NDJSON
//	               stream ends at the end of the body, and an SSE one must
//	               send [DONE]
//	model, max_tokens, temperature, timeout_seconds   as for openai
//
// The body is a JSON value. A string in it that is exactly one placeholder,
// "{{max_tokens}}", is replaced by the value itself (a number, an array,
// an object), and its key dropped when the value is missing; placeholders
// inside longer strings are replaced by their text. The request is built
// from decoded values and encoded once, so any input is escaped correctly.
// Placeholders: input, prompt (every message's text, system first), messages
// ([{role, content}]), system_prompt, max_tokens, temperature, model,
// task_type, task_id, parameters (a custom task's parameters object) and
// params.NAME (any task parameter, e.g. params.target_language).
type CustomConfig struct {
	URL              string
	Method           string
	Headers          map[string]string
	APIKey           string
	Body             any
	ResponsePath     string
	PromptTokensPath string
	CompletionPath   string
	EmbeddingPath    string
	ErrorPath        string
	Stream           string
	ChunkPath        string
	DonePath         string
	Model            string
	MaxTokens        int
	Temperature      *float64
	Timeout          time.Duration
}

var placeholderRE = regexp.MustCompile(`\{\{\s*([A-Za-z0-9_.\-]+)\s*\}\}`)

var placeholderNames = []string{"input", "prompt", "messages", "system_prompt", "max_tokens", "temperature",
	"model", "task_type", "task_id", "parameters"}

func knownPlaceholder(name string) bool {
	if strings.HasPrefix(name, "params.") && len(name) > len("params.") {
		return true
	}
	for _, n := range placeholderNames {
		if n == name {
			return true
		}
	}
	return false
}

func parseCustomConfig(raw map[string]any) (CustomConfig, error) {
	c := &configReader{raw: raw}
	cfg := CustomConfig{
		URL:              c.httpURL("url"),
		Method:           strings.ToUpper(c.str("method")),
		Headers:          c.headers("headers"),
		APIKey:           c.str("api_key"),
		ResponsePath:     c.str("response_path"),
		PromptTokensPath: c.str("prompt_tokens_path"),
		CompletionPath:   c.str("completion_tokens_path"),
		EmbeddingPath:    c.str("embedding_path"),
		ErrorPath:        c.str("error_path"),
		Stream:           strings.ToLower(c.str("stream")),
		ChunkPath:        c.str("chunk_path"),
		DonePath:         c.str("done_path"),
		Model:            c.str("model"),
		MaxTokens:        c.integer("max_tokens", 1, 10_000_000),
		Temperature:      c.number("temperature", 0, 2),
		Timeout:          c.seconds("timeout_seconds", 86400),
	}
	if !c.has("url") {
		c.fail("config.url is required")
	}
	switch cfg.Method {
	case "":
		cfg.Method = http.MethodPost
	case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodGet:
	default:
		c.fail("config.method must be POST, PUT, PATCH or GET, got %q", cfg.Method)
	}
	if cfg.ResponsePath == "" && cfg.EmbeddingPath == "" {
		c.fail("config.response_path is required (where the answer is in the response, e.g. \"choices.0.message.content\")")
	}
	switch cfg.Stream {
	case "", "sse", "ndjson":
	default:
		c.fail("config.stream must be \"sse\" or \"ndjson\", got %q", cfg.Stream)
	}
	if cfg.Stream != "" && cfg.ChunkPath == "" {
		c.fail("config.chunk_path is required with config.stream (where each streamed piece's text is)")
	}
	body := raw["body"]
	if body == nil {
		// The dashboard's model form calls it request_template.
		body = raw["request_template"]
	}
	switch b := body.(type) {
	case nil:
		if cfg.Method != http.MethodGet {
			c.fail("config.body is required for %s (the JSON request template)", cfg.Method)
		}
	case string:
		if err := json.Unmarshal([]byte(b), &cfg.Body); err != nil {
			c.fail("config.body must be a JSON value or a string holding one: %v", err)
		}
	case map[string]any, []any:
		cfg.Body = b
	default:
		c.fail("config.body must be a JSON object or array, got %T", b)
	}
	for _, name := range placeholdersIn(cfg.Body) {
		if !knownPlaceholder(name) {
			c.fail("config.body uses unknown placeholder {{%s}}; known: %s and params.NAME", name, strings.Join(placeholderNames, ", "))
		}
	}
	return cfg, c.err()
}

func placeholdersIn(v any) []string {
	seen := map[string]bool{}
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case string:
			for _, m := range placeholderRE.FindAllStringSubmatch(x, -1) {
				seen[m[1]] = true
			}
		case map[string]any:
			for k, vv := range x {
				walk(k)
				walk(vv)
			}
		case []any:
			for _, vv := range x {
				walk(vv)
			}
		}
	}
	walk(v)
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Custom calls a generic HTTP endpoint built from a request template.
type Custom struct {
	cfg CustomConfig
}

// NewCustom validates a custom model's config and builds its provider.
func NewCustom(raw map[string]any) (Provider, error) {
	cfg, err := parseCustomConfig(raw)
	if err != nil {
		return nil, err
	}
	return &Custom{cfg: cfg}, nil
}

// values are the placeholders' values for one request; a missing key is a
// value the task and model do not set.
func (p *Custom) values(req Request) map[string]any {
	v := map[string]any{
		"input": req.Input, "task_type": string(req.TaskType), "task_id": req.TaskID,
	}
	var all, system []string
	msgs := make([]any, 0, len(req.Messages))
	for _, m := range req.Messages {
		msgs = append(msgs, map[string]any{"role": m.Role, "content": m.Content})
		all = append(all, m.Content)
		if m.Role == "system" {
			system = append(system, m.Content)
		}
	}
	v["messages"] = msgs
	if len(all) > 0 {
		v["prompt"] = strings.Join(all, "\n\n")
	} else {
		v["prompt"] = req.Input
	}
	if len(system) > 0 {
		v["system_prompt"] = strings.Join(system, "\n\n")
	}
	switch {
	case req.MaxTokens != nil:
		v["max_tokens"] = *req.MaxTokens
	case p.cfg.MaxTokens > 0:
		v["max_tokens"] = p.cfg.MaxTokens
	}
	switch {
	case req.Temperature != nil:
		v["temperature"] = *req.Temperature
	case p.cfg.Temperature != nil:
		v["temperature"] = *p.cfg.Temperature
	}
	if p.cfg.Model != "" {
		v["model"] = p.cfg.Model
	}
	if req.Extra != nil {
		v["parameters"] = req.Extra
	}
	for k, pv := range req.Params {
		v["params."+k] = pv
	}
	return v
}

// render fills a template value. ok is false when v is a lone placeholder
// whose value is missing (its key is then dropped).
func render(v any, vals map[string]any) (out any, ok bool) {
	switch x := v.(type) {
	case string:
		if m := placeholderRE.FindStringSubmatchIndex(x); m != nil && m[0] == 0 && m[1] == len(x) {
			val, ok := vals[x[m[2]:m[3]]]
			return val, ok
		}
		return placeholderRE.ReplaceAllStringFunc(x, func(s string) string {
			name := placeholderRE.FindStringSubmatch(s)[1]
			switch val := vals[name].(type) {
			case nil:
				return ""
			case string:
				return val
			default:
				raw, _ := json.Marshal(val)
				return string(raw)
			}
		}), true
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, vv := range x {
			if r, ok := render(vv, vals); ok {
				m[k] = r
			}
		}
		return m, true
	case []any:
		a := make([]any, 0, len(x))
		for _, vv := range x {
			r, _ := render(vv, vals)
			a = append(a, r)
		}
		return a, true
	}
	return v, true
}

// Body renders the request body of req (exported for tests and docs).
func (p *Custom) Body(req Request) ([]byte, error) {
	if p.cfg.Body == nil {
		return nil, nil
	}
	b, _ := render(p.cfg.Body, p.values(req))
	return json.Marshal(validUTF8(b))
}

// validUTF8 replaces each run of invalid UTF-8 in the strings of v with one
// U+FFFD, so what is sent is well defined (encoding/json would write one per
// byte).
func validUTF8(v any) any {
	switch x := v.(type) {
	case string:
		return strings.ToValidUTF8(x, "\uFFFD")
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, vv := range x {
			m[strings.ToValidUTF8(k, "\uFFFD")] = validUTF8(vv)
		}
		return m
	case []any:
		a := make([]any, len(x))
		for i, vv := range x {
			a[i] = validUTF8(vv)
		}
		return a
	}
	return v
}

func (p *Custom) do(ctx context.Context, req Request) (*http.Response, error) {
	body, err := p.Body(req)
	if err != nil {
		return nil, Permanent(fmt.Errorf("render config.body: %w", err))
	}
	var rd io.Reader
	if body != nil && p.cfg.Method != http.MethodGet {
		rd = bytes.NewReader(body)
	}
	hr, err := http.NewRequestWithContext(ctx, p.cfg.Method, p.cfg.URL, rd)
	if err != nil {
		return nil, Permanent(err)
	}
	if rd != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	hr.Header.Set("Accept", "application/json, text/event-stream, application/x-ndjson")
	if p.cfg.APIKey != "" {
		hr.Header.Set("Authorization", "Bearer "+p.cfg.APIKey)
	}
	for k, v := range p.cfg.Headers {
		hr.Header.Set(k, v)
	}
	resp, err := sharedHTTP.Do(hr)
	if err != nil {
		return nil, transportError(ctx, err, "")
	}
	if resp.StatusCode >= 400 {
		defer resp.Body.Close()
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return nil, HTTPError(resp.StatusCode, resp.Header, p.errorMessage(raw))
	}
	return resp, nil
}

// errorMessage finds the provider's message in an error answer.
func (p *Custom) errorMessage(raw []byte) string {
	if p.cfg.ErrorPath == "" {
		return ParseErrorBody(raw).text()
	}
	if r := gjson.GetBytes(raw, p.cfg.ErrorPath); gjson.ValidBytes(raw) && r.Exists() && r.String() != "" {
		return r.String()
	}
	return snippet(raw)
}

func snippet(raw []byte) string {
	s := strings.TrimSpace(string(raw))
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

func (p *Custom) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if p.cfg.Timeout > 0 {
		return context.WithTimeout(ctx, p.cfg.Timeout)
	}
	return context.WithCancel(ctx)
}

// Generate sends the rendered request and reads the answer at
// response_path, or, with config stream, each piece at chunk_path.
func (p *Custom) Generate(ctx context.Context, req Request, stream StreamFunc) (Result, error) {
	if p.cfg.ResponsePath == "" && p.cfg.ChunkPath == "" {
		return Result{}, Permanent(errors.New("this custom model has no config.response_path, so it takes embedding tasks only"))
	}
	ctx, cancel := p.withTimeout(ctx)
	defer cancel()
	resp, err := p.do(ctx, req)
	if err != nil {
		return Result{}, err
	}
	defer resp.Body.Close()
	if p.cfg.Stream != "" {
		return p.readStream(ctx, resp.Body, req, stream)
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return Result{}, transportError(ctx, err, "")
	}
	if !gjson.ValidBytes(raw) {
		return Result{}, Retryable(fmt.Errorf("the answer is not JSON: %s", snippet(raw)))
	}
	out := gjson.GetBytes(raw, p.cfg.ResponsePath)
	if !out.Exists() {
		return Result{}, Permanent(fmt.Errorf("the answer has nothing at config.response_path %q: %s", p.cfg.ResponsePath, snippet(raw)))
	}
	res := Result{Output: out.String()}
	if stream != nil && res.Output != "" {
		if err := stream(res.Output); err != nil {
			return Result{}, &Error{Kind: KindRetryable, Err: err}
		}
	}
	res.Usage, res.TokenSource = p.finishUsage(p.usage(raw, Usage{}), req, res.Output)
	res.FinishReason = FinishUnknown
	return res, nil
}

// usage reads the usage paths from raw, keeping prev's values where raw has
// none.
func (p *Custom) usage(raw []byte, prev Usage) Usage {
	u := prev
	if p.cfg.PromptTokensPath != "" {
		if r := gjson.GetBytes(raw, p.cfg.PromptTokensPath); r.Exists() && r.Int() > 0 {
			u.PromptTokens = int(r.Int())
		}
	}
	if p.cfg.CompletionPath != "" {
		if r := gjson.GetBytes(raw, p.cfg.CompletionPath); r.Exists() && r.Int() > 0 {
			u.CompletionTokens = int(r.Int())
		}
	}
	return u
}

// finishUsage estimates what the answer did not report, and says whether
// it had to (TokensEstimated when any count is an estimate). An embedding
// (empty output) needs only its prompt count.
func (p *Custom) finishUsage(u Usage, req Request, output string) (Usage, string) {
	est := estimateUsage(req, output)
	source := TokensReported
	if u.PromptTokens == 0 {
		u.PromptTokens, source = est.PromptTokens, TokensEstimated
	}
	if u.CompletionTokens == 0 && output != "" {
		u.CompletionTokens, source = est.CompletionTokens, TokensEstimated
	}
	return u, source
}

// readStream reads SSE events or NDJSON lines, passing the text at
// chunk_path of each on. The answer is complete at [DONE] (SSE), at a
// piece whose done_path is true, or, for NDJSON without done_path, at the
// end of the body; anything else is a cut stream.
func (p *Custom) readStream(ctx context.Context, body io.Reader, req Request, stream StreamFunc) (Result, error) {
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	r := &streamReader{p: p, stream: stream}
	for !r.done && sc.Scan() {
		if err := r.line(sc.Bytes()); err != nil {
			return r.fail(ctx, err)
		}
	}
	if err := sc.Err(); err != nil && !r.done {
		return r.fail(ctx, err)
	}
	if !r.done && len(r.data) > 0 {
		// A last event without its blank line.
		if err := r.piece(r.data); err != nil {
			return r.fail(ctx, err)
		}
	}
	if !r.done && (p.cfg.Stream == "sse" || p.cfg.DonePath != "") {
		return r.fail(ctx, Retryable(errors.New("the stream ended before the answer was finished")))
	}
	if ctx.Err() != nil {
		return r.fail(ctx, ctx.Err())
	}
	res := Result{Output: r.out.String(), FinishReason: FinishUnknown}
	res.Usage, res.TokenSource = p.finishUsage(r.u, req, res.Output)
	return res, nil
}

// streamReader is the state of one streamed answer: the text so far, the
// usage reported so far, whether the provider said it is done, and (SSE)
// the data lines of the event being read.
type streamReader struct {
	p      *Custom
	stream StreamFunc
	out    strings.Builder
	u      Usage
	done   bool
	data   []byte
}

// line takes one line of the body: a whole piece for ndjson; for SSE, data
// lines accumulate until a blank line ends the event.
func (r *streamReader) line(line []byte) error {
	if r.p.cfg.Stream == "ndjson" {
		if len(bytes.TrimSpace(line)) == 0 {
			return nil
		}
		return r.piece(line)
	}
	switch {
	case len(line) == 0:
		if len(r.data) > 0 {
			ev := r.data
			r.data = nil
			return r.piece(ev)
		}
	case bytes.HasPrefix(line, []byte("data:")):
		v := bytes.TrimPrefix(line[5:], []byte(" "))
		if len(r.data) > 0 {
			r.data = append(r.data, '\n')
		}
		r.data = append(r.data, v...)
	}
	return nil
}

// piece reads one streamed JSON piece (or [DONE]): its text goes to the
// output and the stream callback, its usage and done flag are noted.
func (r *streamReader) piece(piece []byte) error {
	cfg := r.p.cfg
	if bytes.Equal(bytes.TrimSpace(piece), []byte("[DONE]")) {
		r.done = true
		return nil
	}
	if !gjson.ValidBytes(piece) {
		return Retryable(fmt.Errorf("a streamed piece is not JSON: %s", snippet(piece)))
	}
	if e := gjson.GetBytes(piece, "error"); e.Exists() && !gjson.GetBytes(piece, cfg.ChunkPath).Exists() {
		return streamedError(piece, e)
	}
	if t := gjson.GetBytes(piece, cfg.ChunkPath).String(); t != "" {
		r.out.WriteString(t)
		if r.stream != nil {
			if err := r.stream(t); err != nil {
				return &Error{Kind: KindRetryable, Err: err}
			}
		}
	}
	r.u = r.p.usage(piece, r.u)
	if cfg.DonePath != "" && gjson.GetBytes(piece, cfg.DonePath).Bool() {
		r.done = true
	}
	return nil
}

// streamedError is the error a provider sent in place of a piece:
// permanent when the input was too long, retryable otherwise.
func streamedError(piece []byte, e gjson.Result) error {
	msg := gjson.GetBytes(piece, "error.message").String()
	if msg == "" {
		msg = e.String()
	}
	kind := KindRetryable
	if IsContextLength(msg) {
		kind = KindPermanent
	}
	return &Error{Kind: kind, Err: errors.New(msg)}
}

// fail returns err carrying the text streamed so far.
func (r *streamReader) fail(ctx context.Context, err error) (Result, error) {
	var pe *Error
	if errors.As(err, &pe) {
		cp := *pe
		cp.Partial = r.out.String()
		return Result{}, &cp
	}
	return Result{}, transportError(ctx, err, r.out.String())
}

// Embed sends the rendered request and reads the vector at embedding_path.
func (p *Custom) Embed(ctx context.Context, req Request) (Result, error) {
	if p.cfg.EmbeddingPath == "" {
		return Result{}, Permanent(errors.New("this custom model takes no embedding tasks: its config has no embedding_path"))
	}
	ctx, cancel := p.withTimeout(ctx)
	defer cancel()
	resp, err := p.do(ctx, req)
	if err != nil {
		return Result{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return Result{}, transportError(ctx, err, "")
	}
	r := gjson.GetBytes(raw, p.cfg.EmbeddingPath)
	if !r.IsArray() {
		return Result{}, Permanent(fmt.Errorf("the answer has no array at config.embedding_path %q: %s", p.cfg.EmbeddingPath, snippet(raw)))
	}
	var vec []float64
	for _, x := range r.Array() {
		if x.Type != gjson.Number {
			return Result{}, Permanent(fmt.Errorf("the vector at config.embedding_path %q holds a non-number", p.cfg.EmbeddingPath))
		}
		vec = append(vec, x.Float())
	}
	u, source := p.finishUsage(p.usage(raw, Usage{}), req, "")
	u.CompletionTokens = 0
	return Result{Embedding: vec, Usage: u, TokenSource: source}, nil
}
