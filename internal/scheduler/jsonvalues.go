package scheduler

import "encoding/json"

// NormalizeJSON returns a copy of a free-form JSON object from an API layer
// (task params, a model's config) with its numbers as float64, the form
// encoding/json gives a number decoded into any and the form the service's
// validation (validateParams) and the providers read. nil stays nil.
//
// The REST layer decodes with json.Decoder.UseNumber, so its numbers arrive
// as json.Number; GraphQL's Map scalar carries json.Number for values from
// variables and int64 for integer literals written inline in the query.
// Both become float64. A json.Number that does not fit a float64 ("1e400")
// becomes its text, as encoding/json cannot re-encode an infinity. Inside
// the object, lists and objects are always copied, so an empty list that
// gqlparser gives as a nil slice (an inline "[]") stays an empty list and
// is stored as [], not null.
//
// The input is left as it was: GraphQL's argument maps can be the request's
// own variables, which other parts of the request may still read.
func NormalizeJSON(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	return normalizeValue(m).(map[string]any)
}

func normalizeValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = normalizeValue(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalizeValue(e)
		}
		return out
	case json.Number:
		if f, err := x.Float64(); err == nil {
			return f
		}
		return x.String()
	case int64:
		return float64(x)
	case int:
		return float64(x)
	case int32:
		return float64(x)
	}
	return v
}
