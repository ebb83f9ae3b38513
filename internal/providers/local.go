package providers

import (
	"fmt"
	"net"
	"path"
	"strconv"
	"strings"

	"github.com/llmsched/llm-scheduler/internal/domain"
)

func init() { Register(domain.ModelLocal, NewLocal) }

// NewLocal builds the provider of a local model: an open model served on
// this network (vLLM, llama.cpp server, Ollama, LM Studio) that speaks the
// OpenAI-compatible protocol at http://host:port/v1.
//
// Config: host and port (required), model_path (where the server loaded
// the weights), model (the name the server serves the model under; default
// the last element of model_path, so "/models/llama-2-7b-chat" is asked for
// as "llama-2-7b-chat"), and like openai: api_key, max_tokens, temperature,
// headers, timeout_seconds, embedding_model. One of model and model_path is
// required.
func NewLocal(raw map[string]any) (Provider, error) {
	cfg, err := parseLocalConfig(raw)
	if err != nil {
		return nil, err
	}
	return newOpenAI(cfg), nil
}

func parseLocalConfig(raw map[string]any) (OpenAIConfig, error) {
	c := &configReader{raw: raw}
	host := strings.TrimSpace(c.required("host"))
	if strings.Contains(host, "/") || strings.Contains(host, "://") {
		c.fail("config.host must be a host name or IP address without scheme or path, got %q", host)
	}
	port := 0
	if !c.has("port") {
		c.fail("config.port is required")
	} else {
		// Ports arrive as numbers, or as strings from hand-written YAML.
		if s, ok := raw["port"].(string); ok {
			if n, err := strconv.Atoi(s); err == nil {
				raw = cloneWith(raw, "port", float64(n))
				c.raw = raw
			}
		}
		port = c.integer("port", 1, 65535)
	}
	modelPath := c.str("model_path")
	model := c.str("model")
	if model == "" {
		model = modelNameFromPath(modelPath)
	}
	if model == "" {
		c.fail("config.model or config.model_path is required (the name the server serves the model under)")
	}
	if host != "" && port > 0 {
		if err := Outbound().Check(fmt.Sprintf("http://%s/", net.JoinHostPort(host, strconv.Itoa(port)))); err != nil {
			c.fail("config.host: %v", err)
		}
	}
	cfg := OpenAIConfig{
		APIKey:         c.str("api_key"),
		BaseURL:        fmt.Sprintf("http://%s/v1", net.JoinHostPort(host, strconv.Itoa(port))),
		Model:          model,
		EmbeddingModel: c.str("embedding_model"),
		MaxTokens:      c.integer("max_tokens", 1, 10_000_000),
		Temperature:    c.number("temperature", 0, 2),
		Headers:        c.headers("headers"),
		Timeout:        c.seconds("timeout_seconds", 86400),
	}
	return cfg, c.err()
}

// modelNameFromPath derives a served model name from where the weights
// live: the last path element, without a trailing slash.
func modelNameFromPath(p string) string {
	p = strings.TrimRight(strings.TrimSpace(p), "/\\")
	if p == "" {
		return ""
	}
	p = strings.ReplaceAll(p, "\\", "/")
	return path.Base(p)
}

func cloneWith(m map[string]any, k string, v any) map[string]any {
	out := make(map[string]any, len(m))
	for kk, vv := range m {
		out[kk] = vv
	}
	out[k] = v
	return out
}
