package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/llmsched/llm-scheduler/internal/scheduler"
)

// decodeJSON reads a JSON object body into dst strictly: the body must be
// one object, within the size limit, with known fields of the right types.
// Errors name the field and the rule.
func decodeJSON(r *http.Request, dst any) error {
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &scheduler.Error{Code: scheduler.CodeTooLarge,
				Message: fmt.Sprintf("request body is over the limit of %d bytes", mbe.Limit)}
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return errBodyTimeout
		}
		return scheduler.Invalid("body", "could not be read: %v", err)
	}
	return decodeBytes(raw, dst)
}

// decodeBytes is decodeJSON's parser, separate so it can be fuzzed.
func decodeBytes(raw []byte, dst any) error {
	if len(bytes.TrimSpace(raw)) == 0 {
		return scheduler.Invalid("body", "must be a JSON object, got an empty body")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(dst); err != nil {
		return jsonError(err)
	}
	if dec.More() {
		return scheduler.Invalid("body", "must hold exactly one JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return scheduler.Invalid("body", "must hold exactly one JSON object")
	}
	return nil
}

func jsonError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return scheduler.Invalid("body", "is not valid JSON (at byte %d): %v", syn.Offset, syn)
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			return scheduler.Invalid("body", "must be a JSON object, got %s", typ.Value)
		}
		return scheduler.Invalid(field, "must be %s, got %s", typeName(typ.Type.String()), typ.Value)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return scheduler.Invalid("body", "is truncated JSON")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		if name == "" {
			// Found by FuzzDecodeBodies: {"": 1} named no field at all.
			return scheduler.Invalid("body", `has a field with an empty name ""; it is not a known field`)
		}
		return scheduler.Invalid(name, "is not a known field")
	}
	return scheduler.Invalid("body", "is not valid JSON: %v", err)
}

func typeName(goType string) string {
	switch {
	case strings.Contains(goType, "int"):
		return "an integer"
	case strings.Contains(goType, "float"):
		return "a number"
	case goType == "string" || goType == "*string":
		return "a string"
	case strings.HasPrefix(goType, "map"):
		return "an object"
	case strings.HasPrefix(goType, "[]") || strings.HasPrefix(goType, "*[]"):
		return "an array"
	case strings.Contains(goType, "bool"):
		return "true or false"
	}
	return "of type " + goType
}
