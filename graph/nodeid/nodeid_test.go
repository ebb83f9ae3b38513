package nodeid_test

import (
	"strings"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/llmsched/llm-scheduler/graph"
	"github.com/llmsched/llm-scheduler/graph/nodeid"
)

func TestEncodeDecode(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want nodeid.Ref
		ok   bool
	}{
		{"VGFzazoz", nodeid.Ref{Type: "Task", ID: 3}, true},                                   // Task:3
		{nodeid.Encode("Model", 8589934593), nodeid.Ref{Type: "Model", ID: 8589934593}, true}, // an id of the global-id era
		{"VGFzazoz", nodeid.Ref{Type: "Task", ID: 3}, true},
		{"TW9kZWw6MTI", nodeid.Ref{Type: "Model", ID: 12}, true}, // unpadded
		{"3", nodeid.Ref{}, false},
		{"VXNlcjox", nodeid.Ref{}, false},     // User:1, no such type
		{"VGFzazow", nodeid.Ref{}, false},     // Task:0
		{"VGFzazotMQ==", nodeid.Ref{}, false}, // Task:-1
		{"VGFzazp4", nodeid.Ref{}, false},     // Task:x
		{"", nodeid.Ref{}, false},
	} {
		got, ok := nodeid.Decode(tc.in)
		if ok != tc.ok || got != tc.want {
			t.Errorf("Decode(%q) = %+v, %v; want %+v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
	if got := nodeid.Encode("Task", 1); got != "VGFzazox" {
		t.Errorf("Encode(Task, 1) = %q, want VGFzazox (base64 of Task:1)", got)
	}
}

// Every ID in the schema has a type: each output field, each argument
// and each input-object field below an argument (where-inputs nested to
// their edges). A new ID field nobody taught nodeid fails here, not at
// run time.
func TestEveryIDInTheSchemaHasAType(t *testing.T) {
	s := graph.NewExecutableSchema(graph.Config{}).Schema()
	isID := func(ty *ast.Type) bool {
		for ty.Elem != nil {
			ty = ty.Elem
		}
		return ty.NamedType == "ID"
	}
	outputs, inputs := 0, 0
	for _, def := range s.Types {
		if def.Kind != ast.Object || strings.HasPrefix(def.Name, "__") {
			continue
		}
		for _, f := range def.Fields {
			if isID(f.Type) {
				outputs++
				fc := &graphql.FieldContext{Object: def.Name, Field: graphql.CollectedField{Field: &ast.Field{Name: f.Name, Definition: f}}}
				if _, err := nodeid.TypeOfOutput(fc); err != nil {
					t.Errorf("output %s.%s: %v", def.Name, f.Name, err)
				}
			}
			fc := &graphql.FieldContext{Object: def.Name, Field: graphql.CollectedField{Field: &ast.Field{Name: f.Name, Definition: f}}}
			for _, a := range f.Arguments {
				walkInput(t, s, fc, nil, a.Name, a.Type, def.Name+"."+f.Name+"("+a.Name+")", "", map[string]bool{}, &inputs, isID)
			}
		}
	}
	if outputs < 15 || inputs < 50 {
		t.Fatalf("found %d ID outputs and %d ID inputs: the walk missed the schema", outputs, inputs)
	}
}

// walkInput checks an argument or input field at path pc.name; where is
// the type a where-input's ids must have ("" outside one).
func walkInput(t *testing.T, s *ast.Schema, fc *graphql.FieldContext, pc *graphql.PathContext, name string, ty *ast.Type, at, where string, seen map[string]bool, n *int, isID func(*ast.Type) bool) {
	p := graphql.NewPathWithField(name)
	p.Parent = pc
	if ty.Elem != nil { // a list: one element's path
		zero := 0
		idx := graphql.NewPathWithIndex(zero)
		idx.Parent = p
		p = idx
	}
	if isID(ty) {
		*n++
		typ, known := nodeid.TypeOfInput(fc, p)
		switch {
		case !known:
			t.Errorf("input %s: no type", at)
		case typ == "" && fc.Object+"."+fc.Field.Name != "Query.node" && fc.Object+"."+fc.Field.Name != "Query.nodes":
			t.Errorf("input %s: any type, only node and nodes take any", at)
		case where != "" && (name == "id" || strings.HasPrefix(name, "id")) && typ != where:
			t.Errorf("input %s: %s, want %s (its where-input's type)", at, typ, where)
		}
		return
	}
	def := s.Types[ty.Name()]
	if def == nil || def.Kind != ast.InputObject || seen[def.Name] {
		return
	}
	seen = copyWith(seen, def.Name)
	if w, ok := strings.CutSuffix(def.Name, "WhereInput"); ok {
		where = w
	}
	for _, f := range def.Fields {
		walkInput(t, s, fc, p, f.Name, f.Type, at+"."+f.Name, where, seen, n, isID)
	}
}

func copyWith(m map[string]bool, k string) map[string]bool {
	out := map[string]bool{k: true}
	for k, v := range m {
		out[k] = v
	}
	return out
}
