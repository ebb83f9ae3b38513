// Package nodeid is the GraphQL ID scalar: opaque, type-tagged ids over
// the database's plain per-table ids.
//
// Every table numbers its rows 1, 2, 3, ... (REST and the CLI show those
// numbers). A GraphQL id is the Relay convention instead: base64 of
// "Type:number", e.g. "VGFzazoz" for Task 3, so node(id:) knows which table
// to read and two objects of different types never share an id.
//
// The Go side keeps plain ints: gqlgen maps the ID scalar to MarshalID and
// UnmarshalID, which take the type from where the value sits in the schema
// (see typeOfOutput and typeOfInput):
//
//   - an output field named id carries its object's type (Task.id is a
//     Task id); fields named taskID, modelID, keyID, apiKeyID, deliveryID
//     and fallbacks carry the type their name says;
//   - an argument or input field takes the type its name says (modelID,
//     modelIDs, fallbacks, taskID, apiKeyID, keyID, with entgql's filter
//     suffixes such as modelIDIn), and an id (ids, idIn, ...) the type of
//     what the field returns (task(id:) a Task, tasks(where: {id:}) a
//     Task; inside hasModelWith a Model);
//   - node(id:) and nodes(ids:) accept any node type and need the tag.
//
// An argument of a known type also accepts the bare number ("3" or 3), so
// task(id: 3) works and REST ids can be pasted as they are. An id of the
// wrong type, a malformed one or a number where the type is unknown is a
// BAD_USER_INPUT error naming the argument.
package nodeid

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/99designs/gqlgen/graphql"

	"github.com/llmsched/llm-scheduler/ent/apikey"
	"github.com/llmsched/llm-scheduler/ent/attempt"
	"github.com/llmsched/llm-scheduler/ent/model"
	"github.com/llmsched/llm-scheduler/ent/task"
	"github.com/llmsched/llm-scheduler/ent/webhookattempt"
	"github.com/llmsched/llm-scheduler/ent/webhookdelivery"
	"github.com/llmsched/llm-scheduler/internal/scheduler"
)

// GraphQL type names of the objects that have ids, and their tables.
const (
	Task            = "Task"
	Model           = "Model"
	Attempt         = "Attempt"
	APIKey          = "APIKey"
	WebhookDelivery = "WebhookDelivery"
	WebhookAttempt  = "WebhookAttempt"
)

var tables = map[string]string{
	Task: task.Table, Model: model.Table, Attempt: attempt.Table, APIKey: apikey.Table,
	WebhookDelivery: webhookdelivery.Table, WebhookAttempt: webhookattempt.Table,
}

// nodes are the types node(id:) can return (they implement Node).
var nodes = map[string]bool{Task: true, Model: true, Attempt: true, WebhookDelivery: true, WebhookAttempt: true}

// byName gives the type of an ID field or argument by its name, after
// filterSuffix is cut off. id is not here: its type is its object's or
// its field's.
var byName = map[string]string{
	"taskID": Task, "modelID": Model, "modelIDs": Model, "fallbacks": Model,
	"apiKeyID": APIKey, "keyID": APIKey, "deliveryID": WebhookDelivery,
}

// byField overrides the type an id argument takes from its field's return
// type, where that type has no id of its own.
var byField = map[string]string{"Subscription.taskOutput": Task}

// byEdge gives the type of the ids inside an entgql edge filter
// (hasModelWith: [ModelWhereInput!]).
var byEdge = map[string]string{"hasModelWith": Model, "hasTasksWith": Task}

// Ref is a decoded id.
type Ref struct {
	Type string
	ID   int
}

// Table is the database table of r's type.
func (r Ref) Table() string { return tables[r.Type] }

func (r Ref) String() string { return Encode(r.Type, r.ID) }

// Encode returns the opaque id of row id of type typ.
func Encode(typ string, id int) string {
	return base64.StdEncoding.EncodeToString([]byte(typ + ":" + strconv.Itoa(id)))
}

// Decode parses an opaque id. It accepts standard and URL-safe base64,
// with or without padding.
func Decode(s string) (Ref, bool) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		b, err := enc.DecodeString(s)
		if err != nil {
			continue
		}
		typ, num, ok := strings.Cut(string(b), ":")
		if _, known := tables[typ]; !ok || !known {
			return Ref{}, false
		}
		id, ok := number(num)
		if !ok {
			return Ref{}, false
		}
		return Ref{Type: typ, ID: id}, true
	}
	return Ref{}, false
}

// number parses a positive decimal id.
func number(s string) (int, bool) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, false
	}
	id, err := strconv.Atoi(s)
	return id, err == nil && id > 0
}

// MarshalID writes an int as the opaque id of the type its field carries.
func MarshalID(id int) graphql.ContextMarshaler {
	return graphql.ContextWriterFunc(func(ctx context.Context, w io.Writer) error {
		typ, err := typeOfOutput(graphql.GetFieldContext(ctx))
		if err != nil {
			return err
		}
		graphql.MarshalString(Encode(typ, id)).MarshalGQL(w)
		return nil
	})
}

// typeOfOutput is the type of the ID a field returns.
func typeOfOutput(fc *graphql.FieldContext) (string, error) {
	for fc != nil && fc.Field.Field == nil {
		fc = fc.Parent // an element of a list
	}
	if fc == nil {
		return "", fmt.Errorf("nodeid: an ID outside any field")
	}
	if _, ok := tables[fc.Object]; ok && fc.Field.Name == "id" {
		return fc.Object, nil
	}
	if typ, ok := byName[fc.Field.Name]; ok {
		return typ, nil
	}
	return "", fmt.Errorf("nodeid: no id type for field %s.%s (add it to graph/nodeid)", fc.Object, fc.Field.Name)
}

// UnmarshalID reads an ID argument or input field: an opaque id of the
// type its place in the schema says, or that type's bare number.
func UnmarshalID(ctx context.Context, v any) (int, error) {
	ref, err := parse(ctx, v)
	return ref.ID, err
}

// parse decodes v as the argument at ctx's path expects it.
func parse(ctx context.Context, v any) (Ref, error) {
	pc := graphql.GetPathContext(ctx)
	want, known := typeOfInput(graphql.GetFieldContext(ctx), pc)
	name := argName(pc)
	var raw string
	switch x := v.(type) {
	case string:
		if ref, ok := Decode(x); ok {
			switch {
			case want != "" && ref.Type != want:
				return Ref{}, scheduler.Invalid(name, "%q is a %s id, want a %s id", x, ref.Type, want)
			case want == "" && known && !nodes[ref.Type]:
				return Ref{}, scheduler.Invalid(name, "%q is a %s id, which node() does not fetch", x, ref.Type)
			}
			return ref, nil
		}
		raw = x
	case json.Number:
		raw = x.String()
	case int:
		raw = strconv.Itoa(x)
	case int64:
		raw = strconv.FormatInt(x, 10)
	default:
		return Ref{}, scheduler.Invalid(name, "must be an id string, got %T", v)
	}
	id, ok := number(raw)
	switch {
	case ok && want != "":
		return Ref{Type: want, ID: id}, nil
	case ok && !known:
		// No field context (gqlgen's complexity estimate parses
		// arguments outside the resolver): the number is all it needs.
		return Ref{ID: id}, nil
	case ok:
		return Ref{}, scheduler.Invalid(name, "%q is a bare number; node ids carry their type: pass the id field of the object (base64 of Type:number, e.g. %q for Task %d)", raw, Encode(Task, id), id)
	case want != "":
		return Ref{}, scheduler.Invalid(name, "%q is not a %s id: pass the %s's id field (base64 of %s:number) or its number", raw, want, want, want)
	}
	return Ref{}, scheduler.Invalid(name, "%q is not an id: pass the id field of an object (base64 of Type:number)", raw)
}

// typeOfInput is the type an ID argument or input field takes: "" with
// known for node(id:) (any node type), "" without known when nothing
// says it (no field context).
func typeOfInput(fc *graphql.FieldContext, pc *graphql.PathContext) (typ string, known bool) {
	var names []string // innermost first
	for p := pc; p != nil; p = p.Parent {
		if p.Field != nil {
			names = append(names, *p.Field)
		}
	}
	if len(names) > 0 {
		if typ, ok := byName[trimFilter(names[0])]; ok {
			return typ, true
		}
		for _, n := range names[1:] {
			if typ, ok := byEdge[n]; ok {
				return typ, true
			}
		}
	}
	if fc == nil || fc.Field.Field == nil || fc.Field.Definition == nil {
		return "", false
	}
	if typ, ok := byField[fc.Object+"."+fc.Field.Name]; ok {
		return typ, true
	}
	ret := strings.TrimSuffix(fc.Field.Definition.Type.Name(), "Connection")
	if ret == "Node" {
		return "", true
	}
	if _, ok := tables[ret]; ok {
		return ret, true
	}
	return "", false
}

// trimFilter cuts entgql's filter suffix off a where-input field name
// (idNEQ, modelIDIn, ...) and the plural of ids.
func trimFilter(name string) string {
	if name == "ids" {
		return "id"
	}
	for _, s := range []string{"NotIn", "NEQ", "GTE", "LTE", "In", "GT", "LT"} {
		if t, ok := strings.CutSuffix(name, s); ok && t != "" {
			return t
		}
	}
	return name
}

// argName is the argument's path below its field: "id", "input.modelID",
// "fallbacks[1]".
func argName(pc *graphql.PathContext) string {
	var parts []string
	for p := pc; p != nil; p = p.Parent {
		switch {
		case p.Index != nil:
			parts = append(parts, "["+strconv.Itoa(*p.Index)+"]")
		case p.Field != nil:
			parts = append(parts, "."+*p.Field)
		}
	}
	var b strings.Builder
	for i := len(parts) - 1; i >= 0; i-- {
		b.WriteString(parts[i])
	}
	return strings.TrimPrefix(b.String(), ".")
}

// Arg decodes argument name of the field at ctx (node(id:)) with its type.
// It reads the raw argument: the resolver got the number only.
func Arg(ctx context.Context, name string) (Ref, error) {
	refs, err := Args(ctx, name)
	if err != nil {
		return Ref{}, err
	}
	if len(refs) != 1 {
		return Ref{}, scheduler.Invalid(name, "must be one id")
	}
	return refs[0], nil
}

// Args decodes an ID or [ID!] argument of the field at ctx with its types.
func Args(ctx context.Context, name string) ([]Ref, error) {
	fc := graphql.GetFieldContext(ctx)
	if fc == nil || fc.Field.Field == nil {
		return nil, fmt.Errorf("nodeid: argument %s read outside its field", name)
	}
	v := fc.Field.ArgumentMap(graphql.GetOperationContext(ctx).Variables)[name]
	ctx = graphql.WithPathContext(ctx, graphql.NewPathWithField(name))
	list, ok := v.([]any)
	if !ok {
		ref, err := parse(ctx, v)
		return []Ref{ref}, err
	}
	refs := make([]Ref, len(list))
	for i, e := range list {
		ref, err := parse(graphql.WithPathContext(ctx, graphql.NewPathWithIndex(i)), e)
		if err != nil {
			return nil, err
		}
		refs[i] = ref
	}
	return refs, nil
}
