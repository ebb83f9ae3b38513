package providers

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/tidwall/gjson"
)

// ErrorBody is what an error answer says, whatever its shape. Servers that
// call themselves OpenAI-compatible answer errors in at least five shapes:
//
//	{"error": {"message": "...", "type": "...", "code": "..."}}   OpenAI, llama.cpp, LM Studio, Ollama's /v1, vLLM (newer)
//	{"error": "..."}                                             Ollama's native API, llama.cpp (older), LM Studio
//	{"error": "...", "error_type": "validation"}                  TGI
//	{"object": "error", "message": "...", "code": 400}            vLLM (older)
//	{"detail": "..."} or {"detail": [{"loc": [...], "msg": "..."}]}  FastAPI servers (vLLM's 422s)
//
// and proxies add {"error": "Not Found", "message": "Cannot POST /x"}.
type ErrorBody struct {
	// Message is the readable message: the error's own text, else the
	// first 200 bytes of the body.
	Message string
	// Code is a string code or type naming the error ("invalid_api_key",
	// "rate_limit_exceeded", "validation"), empty when there is none.
	Code string
	// Type is the error's type when it also has a code.
	Type string
	// Status is a numeric code the body carries (llama.cpp, vLLM), 0 when
	// none.
	Status int
}

// ParseErrorBody reads an error answer of any of the shapes above.
func ParseErrorBody(raw []byte) ErrorBody {
	var b ErrorBody
	if !gjson.ValidBytes(raw) {
		b.Message = bodyPrefix(raw)
		return b
	}
	root := gjson.ParseBytes(raw)
	var parts []string
	add := func(r gjson.Result) {
		if r.Type != gjson.String {
			return
		}
		s := strings.TrimSpace(r.String())
		for _, p := range parts {
			if p == s {
				return
			}
		}
		if s != "" {
			parts = append(parts, s)
		}
	}
	codes := func(obj gjson.Result) {
		for _, k := range []string{"code", "type", "error_type"} {
			r := obj.Get(k)
			switch {
			case r.Type == gjson.Number && b.Status == 0:
				b.Status = int(r.Int())
			case r.Type == gjson.String && r.String() != "" && b.Code == "":
				b.Code = r.String()
			case r.Type == gjson.String && r.String() != "" && b.Type == "" && r.String() != b.Code:
				b.Type = r.String()
			}
		}
	}
	if e := root.Get("error"); e.IsObject() {
		add(e.Get("message"))
		codes(e)
	} else {
		add(e)
	}
	add(root.Get("message"))
	if d := root.Get("detail"); d.IsArray() {
		for _, item := range d.Array() {
			parts = append(parts, detailItem(item))
		}
	} else {
		add(d)
	}
	codes(root)
	if len(parts) == 0 {
		b.Message = bodyPrefix(raw)
		return b
	}
	b.Message = strings.Join(parts, ": ")
	return b
}

// detailItem renders one FastAPI validation error: "body.messages: Field
// required".
func detailItem(item gjson.Result) string {
	msg := item.Get("msg").String()
	if msg == "" {
		return item.Raw
	}
	var loc []string
	for _, l := range item.Get("loc").Array() {
		loc = append(loc, l.String())
	}
	if len(loc) == 0 {
		return msg
	}
	return strings.Join(loc, ".") + ": " + msg
}

// bodyPrefix is the first 200 bytes of a body as text (cut at a character
// boundary), for answers whose message cannot be found.
func bodyPrefix(raw []byte) string {
	s := strings.TrimSpace(string(raw))
	if len(s) <= 200 {
		return s
	}
	cut := 200
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

// text is the message with its code when the message does not already
// name it: "Incorrect API key provided (invalid_api_key)".
func (b ErrorBody) text() string {
	if b.Code != "" && !strings.Contains(b.Message, b.Code) {
		return fmt.Sprintf("%s (%s)", b.Message, b.Code)
	}
	return b.Message
}

// permanentCodes name errors that can never succeed when sent again: bad
// keys, bad requests, unknown models, prompts too long.
var permanentCodes = map[string]bool{
	"invalid_api_key": true, "invalid_request_error": true, "authentication_error": true,
	"permission_error": true, "permission_denied": true, "unauthorized": true, "forbidden": true,
	"not_found_error": true, "model_not_found": true, "not_found": true, "insufficient_quota": true,
	"context_length_exceeded": true, "exceed_context_size_error": true, "invalid_argument": true,
	"validation": true, "badrequesterror": true, "notfounderror": true, "billing_hard_limit_reached": true,
}

// rateLimitCodes name errors that ask the client to slow down.
var rateLimitCodes = map[string]bool{
	"rate_limit_exceeded": true, "rate_limit_error": true, "too_many_requests": true,
	"ratelimiterror": true, "overloaded": true, "requests": true, "tokens": true,
}

// Kind classifies an error that came without an HTTP status (an error event
// inside a 200 stream): by a numeric code as if it were the status, else by
// its code or type; a context-length message is permanent; anything else
// (server errors, unknown codes) may succeed later.
func (b ErrorBody) Kind() ErrorKind {
	switch {
	case IsContextLength(b.Message) || IsContextLength(b.Code):
		return KindPermanent
	case b.Status >= 400 && b.Status < 600:
		return StatusKind(b.Status)
	}
	for _, c := range []string{b.Code, b.Type} {
		c = strings.ToLower(c)
		switch {
		case permanentCodes[c]:
			return KindPermanent
		case rateLimitCodes[c]:
			return KindRateLimited
		}
	}
	return KindRetryable
}
