package providers

import (
	"fmt"
	"strings"

	"github.com/llmsched/llm-scheduler/internal/domain"
)

// BuildRequest maps a task's type, input and parameters to a provider
// request. Adding a task type means adding a case here.
func BuildRequest(taskID, attempt int, t domain.TaskType, input string, params map[string]any) (Request, error) {
	req := Request{TaskID: taskID, Attempt: attempt, TaskType: t, Input: input, Params: params}
	if body, ok := params["openai"].(map[string]any); ok {
		req.OpenAI = body
	}
	if v, ok := intParam(params, "max_tokens"); ok {
		req.MaxTokens = &v
	}
	if v, ok := floatParam(params, "temperature"); ok {
		req.Temperature = &v
	}
	var msgs []Message
	if sp, _ := params["system_prompt"].(string); sp != "" {
		msgs = append(msgs, Message{Role: "system", Content: sp})
	}
	switch t {
	case domain.TypeTextGeneration:
		if req.OpenAI != nil {
			msgs = append(msgs, openAIMessages(req.OpenAI)...)
		} else {
			msgs = append(msgs, Message{Role: "user", Content: input})
		}
	case domain.TypeTranslation:
		target, _ := params["target_language"].(string)
		source, _ := params["source_language"].(string)
		instr := "Translate the following text into " + target + "."
		if source != "" {
			instr = "Translate the following text from " + source + " into " + target + "."
		}
		msgs = append(msgs, Message{Role: "system", Content: instr + " Reply with the translation only."},
			Message{Role: "user", Content: input})
	case domain.TypeSummarization:
		instr := "Summarize the following text."
		if l, _ := params["length"].(string); l != "" {
			instr = fmt.Sprintf("Summarize the following text. Length: %s.", l)
		}
		msgs = append(msgs, Message{Role: "system", Content: instr}, Message{Role: "user", Content: input})
	case domain.TypeEmbedding:
		// Embeddings take the raw input.
	case domain.TypeCustom:
		if raw, ok := params["messages"].([]any); ok {
			for i, m := range raw {
				mm, _ := m.(map[string]any)
				role, _ := mm["role"].(string)
				content, _ := mm["content"].(string)
				if role == "" || content == "" {
					return req, fmt.Errorf("params.messages[%d] needs a role and a content string", i)
				}
				msgs = append(msgs, Message{Role: role, Content: content})
			}
		} else {
			msgs = append(msgs, Message{Role: "user", Content: input})
		}
		req.Extra = map[string]any{}
		if extra, ok := params["parameters"].(map[string]any); ok {
			req.Extra = extra
		}
	default:
		return req, fmt.Errorf("unknown task type %q", t)
	}
	req.Messages = msgs
	return req, nil
}

func intParam(p map[string]any, k string) (int, bool) {
	switch v := p[k].(type) {
	case float64:
		return int(v), true
	case int:
		return v, true
	case int64:
		return int(v), true
	}
	return 0, false
}

func floatParam(p map[string]any, k string) (float64, bool) {
	switch v := p[k].(type) {
	case float64:
		return v, true
	case int:
		return float64(v), true
	}
	return 0, false
}

// openAIMessages reads the messages of an OpenAI chat request body, with
// the text of each: a content string, or the text parts of a content
// array. Parts that are not text (images, audio) are left out: only
// providers that speak OpenAI's protocol, which send the body as it is,
// see them.
func openAIMessages(body map[string]any) []Message {
	raw, _ := body["messages"].([]any)
	msgs := make([]Message, 0, len(raw))
	for _, m := range raw {
		mm, _ := m.(map[string]any)
		role, _ := mm["role"].(string)
		msgs = append(msgs, Message{Role: role, Content: OpenAIText(mm["content"])})
	}
	return msgs
}

// OpenAIText is the text of an OpenAI message content: the string itself,
// or the text parts of a content array joined by newlines.
func OpenAIText(content any) string {
	switch c := content.(type) {
	case string:
		return c
	case []any:
		var parts []string
		for _, p := range c {
			pm, _ := p.(map[string]any)
			if pm["type"] == "text" {
				if s, ok := pm["text"].(string); ok {
					parts = append(parts, s)
				}
			}
		}
		return strings.Join(parts, "\n")
	}
	return ""
}
