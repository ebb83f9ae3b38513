package server

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/llmsched/llm-scheduler/internal/domain"
	"github.com/llmsched/llm-scheduler/internal/scheduler"
)

// embeddingInputs reads an embeddings request's input: a string or an
// array of strings, each of which becomes a task. Token arrays are not
// supported: tasks hold text.
func embeddingInputs(v any) ([]string, error) {
	switch in := v.(type) {
	case string:
		if strings.TrimSpace(in) == "" {
			return nil, invalidParam("input", "must not be empty")
		}
		return []string{in}, nil
	case []any:
		if len(in) == 0 {
			return nil, invalidParam("input", "must not be an empty array")
		}
		out := make([]string, len(in))
		for i, x := range in {
			s, ok := x.(string)
			if !ok {
				return nil, invalidParam(fmt.Sprintf("input[%d]", i), "must be a string: token arrays are not supported, send text")
			}
			if strings.TrimSpace(s) == "" {
				return nil, invalidParam(fmt.Sprintf("input[%d]", i), "must not be empty")
			}
			out[i] = s
		}
		return out, nil
	case nil:
		return nil, invalidParam("input", "is required: a string or an array of strings")
	}
	return nil, invalidParam("input", "must be a string or an array of strings")
}

var batchField = regexp.MustCompile(`^inputs\[(\d+)\]\.(.*)$`)

// embeddingFields names the request's fields for the scheduler's (a batch
// names them inputs[i].field).
func embeddingFields(f string) string {
	if m := batchField.FindStringSubmatch(f); m != nil {
		if m[2] == "input" {
			return "input[" + m[1] + "]"
		}
		f = m[2]
	}
	switch {
	case f == "input" || f == "inputs":
		return "input"
	case f == "model_id":
		return "model"
	case strings.HasPrefix(f, "params."):
		return strings.TrimPrefix(f, "params.")
	}
	return ""
}

// embeddingsRequest is a checked embeddings request.
type embeddingsRequest struct {
	model  string
	inputs []string
	format string // float or base64
	// pass holds the fields that go to the provider (dimensions, user).
	pass map[string]any
}

// parseEmbeddings checks an embeddings body.
func parseEmbeddings(body map[string]any) (embeddingsRequest, error) {
	var e embeddingsRequest
	e.model, _ = body["model"].(string)
	if strings.TrimSpace(e.model) == "" {
		return e, invalidParam("model", "is required: the name of a registered model (GET /v1/models lists them)")
	}
	inputs, err := embeddingInputs(body["input"])
	if err != nil {
		return e, err
	}
	e.inputs = inputs
	e.format = "float"
	if v, ok := body["encoding_format"]; ok && v != nil {
		if v != "float" && v != "base64" {
			return e, invalidParam("encoding_format", "must be float or base64, got %v", v)
		}
		e.format = v.(string)
	}
	e.pass = map[string]any{}
	for k, v := range body {
		switch k {
		case "model", "input", "encoding_format", "service_tier":
		default:
			e.pass[k] = v
		}
	}
	return e, nil
}

func (d *openaiDoor) embeddings(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	ctx := r.Context()
	body, err := readBody(r)
	if err != nil {
		d.fail(w, r, err, nil)
		return
	}
	req, err := parseEmbeddings(body)
	if err != nil {
		d.fail(w, r, err, nil)
		return
	}
	prio, err := priority(r, body)
	if err != nil {
		d.fail(w, r, err, nil)
		return
	}
	deadline, timeout, err := d.queueDeadline(r, start)
	if err != nil {
		d.fail(w, r, err, nil)
		return
	}
	m, err := d.model(ctx, req.model)
	if err != nil {
		d.fail(w, r, err, nil)
		return
	}
	fs := make([]*follower, len(req.inputs))
	for i := range fs {
		fs[i] = newFollower(d.bus, false)
	}
	defer func() {
		for _, f := range fs {
			f.close()
		}
	}()
	if err := d.submitEmbeddings(ctx, fs, m.ID, prio, req); err != nil {
		d.fail(w, r, err, embeddingFields)
		return
	}
	ids := make([]string, len(fs))
	for i, f := range fs {
		ids[i] = strconv.Itoa(f.taskID())
	}
	w.Header().Set("X-Task-ID", strings.Join(ids, ","))
	data, prompt, err := d.waitEmbeddings(ctx, fs, deadline, timeout, req.format)
	if err != nil {
		if ctx.Err() == nil {
			d.fail(w, r, err, nil)
		}
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data, "model": req.model,
		"usage": map[string]any{"prompt_tokens": prompt, "total_tokens": prompt}})
}

// submitEmbeddings submits one embedding task per input, followed by fs
// (one each); a batch whose submission failed has its stored tasks
// cancelled.
func (d *openaiDoor) submitEmbeddings(ctx context.Context, fs []*follower, modelID, prio int, req embeddingsRequest) error {
	ns := make([]scheduler.NewTask, len(req.inputs))
	for i, in := range req.inputs {
		ns[i] = scheduler.NewTask{ModelID: modelID, Type: string(domain.TypeEmbedding), Input: in, Priority: &prio,
			Params: map[string]any{"openai": req.pass}, OnStored: fs[i].stored, APIKeyID: callerKeyID(ctx)}
	}
	if len(ns) == 1 {
		return d.submit(ctx, fs[0], ns[0])
	}
	if _, err := d.svc.CreateTasks(ctx, ns); err != nil {
		d.cancelAll(fs, "its submission failed")
		return d.modelGone(err)
	}
	return nil
}

// waitEmbeddings waits for every task in order and returns the response's
// data and prompt tokens; when one fails, the others are cancelled.
func (d *openaiDoor) waitEmbeddings(ctx context.Context, fs []*follower, deadline time.Time, timeout time.Duration, format string) ([]any, int, error) {
	data := make([]any, len(fs))
	prompt := 0
	for i, f := range fs {
		end, err := d.wait(ctx, f, deadline, nil, nil)
		if err == nil && end.task.Status != domain.StatusCompleted {
			err = endError(end)
		}
		if errors.Is(err, errQueueTimeout) {
			err = queueTimeoutError(f.taskID(), timeout)
		}
		if err != nil {
			d.cancelAll(fs, "another input of its request failed")
			return nil, 0, err
		}
		var vec any = end.task.Embedding
		if format == "base64" {
			vec = base64Floats(end.task.Embedding)
		}
		data[i] = map[string]any{"object": "embedding", "index": i, "embedding": vec}
		prompt += end.task.PromptTokens
	}
	return data, prompt, nil
}

// cancelAll cancels the followed tasks that are still unfinished.
func (d *openaiDoor) cancelAll(fs []*follower, why string) {
	for _, f := range fs {
		d.cancel(f.taskID(), why)
	}
}

// base64Floats is OpenAI's base64 encoding of a vector: little-endian
// float32s (what the SDKs ask for by default and decode).
func base64Floats(v []float64) string {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(float32(x)))
	}
	return base64.StdEncoding.EncodeToString(b)
}
