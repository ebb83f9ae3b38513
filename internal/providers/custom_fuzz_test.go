package providers_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/llmsched/llm-scheduler/internal/domain"
	"github.com/llmsched/llm-scheduler/internal/providers"
)

// FuzzCustomTemplate renders a custom model's request template with
// hostile input: quotes, backslashes, control characters, invalid UTF-8,
// braces that look like placeholders. The body must always be valid JSON,
// a lone placeholder must carry the value itself, and an embedded one its
// text, exactly (invalid UTF-8 becomes U+FFFD, as encoding/json writes it).
func FuzzCustomTemplate(f *testing.F) {
	for _, s := range [][2]string{
		{"plain", "fr"}, {`"quoted" \ back\slash`, `"}`}, {"{{input}}", "{{params.x}}"}, {"\x00\x1f\u2028\u2029", "\t"},
		{"\xff\xfe invalid", "ü"}, {`</script><script>`, "&<>"}, {"emoji 🦀 and 中文", "日本語"}, {"", ""},
	} {
		f.Add(s[0], s[1])
	}
	p, err := providers.NewCustom(map[string]any{
		"url":           "http://127.0.0.1:1/generate",
		"response_path": "text",
		"body": map[string]any{
			"prompt": "{{input}}", "wrapped": "Say: {{input}}!", "lang": "{{params.target_language}}",
			"nested": []any{map[string]any{"content": "{{ input }}", "system": "{{system_prompt}}"}},
			"n":      "{{max_tokens}}", "msgs": "{{messages}}",
		},
	})
	if err != nil {
		f.Fatal(err)
	}
	custom := providers.Unwrap(p).(*providers.Custom)
	f.Fuzz(func(t *testing.T, input, lang string) {
		n := 7
		req := providers.Request{
			TaskID: 1, TaskType: domain.TypeTranslation, Input: input, MaxTokens: &n,
			Messages: []providers.Message{{Role: "system", Content: lang}, {Role: "user", Content: input}},
			Params:   map[string]any{"target_language": lang},
		}
		raw, err := custom.Body(req)
		if err != nil {
			t.Fatalf("render: %v", err)
		}
		if !json.Valid(raw) {
			t.Fatalf("body is not valid JSON: %q", raw)
		}
		var got struct {
			Prompt  string `json:"prompt"`
			Wrapped string `json:"wrapped"`
			Lang    string `json:"lang"`
			Nested  []struct {
				Content, System string
			} `json:"nested"`
			N    int `json:"n"`
			Msgs []struct {
				Role, Content string
			} `json:"msgs"`
		}
		if err := json.Unmarshal(raw, &got); err != nil {
			t.Fatalf("decode %q: %v", raw, err)
		}
		in, lg := strings.ToValidUTF8(input, "\uFFFD"), strings.ToValidUTF8(lang, "\uFFFD")
		if got.Prompt != in || got.Wrapped != "Say: "+in+"!" || got.Lang != lg || got.N != 7 ||
			len(got.Nested) != 1 || got.Nested[0].Content != in || got.Nested[0].System != lg ||
			len(got.Msgs) != 2 || got.Msgs[1].Content != in {
			t.Fatalf("rendered %q from input %q, lang %q", raw, input, lang)
		}
	})
}
