package graph

import (
	"context"
	"fmt"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/parser"
)

// Defaults of SelectionLimit.
const (
	// DefaultMaxSelections bounds how many field selections a document
	// holds once every fragment spread is expanded.
	DefaultMaxSelections = 2000
	// DefaultMaxQueryBytes bounds the query document itself (variables
	// carry data; a query of this size is far past any real one).
	DefaultMaxQueryBytes = 256 << 10
	// DefaultMaxRepeats bounds how often one response key (alias or field
	// name) is selected in one selection set, fragments merged in.
	DefaultMaxRepeats = 20
)

// SelectionLimit refuses a document whose fragment-expanded size exceeds
// Max field selections, before gqlgen validates it or computes its
// complexity. Both of those walk fragment spreads where they are used: a
// query of a kilobyte whose fragments each spread the next one twice
// expands to 2^30 selections, and walking them kept a core busy for
// minutes. Here each fragment's expanded size is computed once
// (memoized), so the check costs time linear in the document's length,
// and every later walk is bounded by Max. Introspection fields count like
// any other.
//
// Within that bound one more walk is quadratic: validation compares every
// pair of fields that share a response key in a selection set (2,500
// copies of one field took 3 s to validate). MaxRepeats bounds how often
// one key appears in one selection set, fragments merged in, so those
// comparisons stay under Max*MaxRepeats/2. The errors have extensions code
// COMPLEXITY_LIMIT_EXCEEDED.
//
// A query document longer than MaxQueryBytes is refused before it is
// parsed (twice: here and by gqlgen).
type SelectionLimit struct{ Max, MaxRepeats, MaxQueryBytes int }

var (
	_ graphql.HandlerExtension          = SelectionLimit{}
	_ graphql.OperationParameterMutator = SelectionLimit{}
)

func (SelectionLimit) ExtensionName() string                   { return "SelectionLimit" }
func (SelectionLimit) Validate(graphql.ExecutableSchema) error { return nil }

func (l SelectionLimit) MutateOperationParameters(_ context.Context, p *graphql.RawParams) *gqlerror.Error {
	if l.MaxQueryBytes > 0 && len(p.Query) > l.MaxQueryBytes {
		e := gqlerror.Errorf("the query document is %d bytes, over the limit of %d (pass data in variables)", len(p.Query), l.MaxQueryBytes)
		e.Extensions = map[string]any{"code": "COMPLEXITY_LIMIT_EXCEEDED"}
		return e
	}
	doc, err := parser.ParseQuery(&ast.Source{Input: p.Query})
	if err != nil {
		return nil //nolint:nilerr // gqlgen parses again and reports the syntax error itself
	}
	if n := ExpandedSelections(doc, l.Max); n > l.Max {
		e := gqlerror.Errorf("operation has more than %d field selections once fragments are expanded; the limit is %d", l.Max, l.Max)
		e.Extensions = map[string]any{"code": "COMPLEXITY_LIMIT_EXCEEDED"}
		return e
	}
	if key, n := RepeatedKey(doc, l.MaxRepeats); n > l.MaxRepeats {
		e := gqlerror.Errorf("%q is selected %d times in one selection set; the limit is %d", key, n, l.MaxRepeats)
		e.Extensions = map[string]any{"code": "COMPLEXITY_LIMIT_EXCEEDED"}
		return e
	}
	return nil
}

// RepeatedKey finds a response key selected more than limit times in one
// selection set of doc (fragments and inline fragments merged into the set
// that spreads them) and returns it with its count; n is 0 when there is
// none. Each fragment's keys are counted once and reused, so on a document
// that passed ExpandedSelections the work is bounded by its expanded size.
func RepeatedKey(doc *ast.QueryDocument, limit int) (key string, n int) {
	c := repeats{doc: doc, limit: limit, frags: map[string]map[string]int{}, busy: map[string]bool{}}
	for _, op := range doc.Operations {
		c.check(op.SelectionSet)
	}
	// Every fragment, spread or not: validation walks each one.
	for _, f := range doc.Fragments {
		c.over(c.fragment(f.Name))
	}
	return c.key, c.n
}

type repeats struct {
	doc   *ast.QueryDocument
	limit int
	frags map[string]map[string]int
	busy  map[string]bool
	// key and n are the first violation found.
	key string
	n   int
}

// check counts the keys of one selection set and reports a violation.
func (c *repeats) check(set ast.SelectionSet) {
	counts := map[string]int{}
	c.collect(set, counts)
	c.over(counts)
}

// over records the first key counted more than limit times.
func (c *repeats) over(counts map[string]int) {
	for k, n := range counts {
		if n > c.limit && c.n == 0 {
			c.key, c.n = k, n
		}
	}
}

// collect adds the response keys of set to counts and checks the
// selection sets of its fields.
func (c *repeats) collect(set ast.SelectionSet, counts map[string]int) {
	for _, sel := range set {
		if c.n > 0 {
			return
		}
		switch s := sel.(type) {
		case *ast.Field:
			key := s.Alias
			if key == "" {
				key = s.Name
			}
			counts[key]++
			if len(s.SelectionSet) > 0 {
				c.check(s.SelectionSet)
			}
		case *ast.InlineFragment:
			c.collect(s.SelectionSet, counts)
		case *ast.FragmentSpread:
			for k, n := range c.fragment(s.Name) {
				counts[k] += n
			}
		default:
			panic(fmt.Sprintf("unknown selection %T", sel))
		}
	}
}

// fragment returns the keys a fragment contributes (computed once).
func (c *repeats) fragment(name string) map[string]int {
	if m, ok := c.frags[name]; ok {
		return m
	}
	def := c.doc.Fragments.ForName(name)
	if def == nil || c.busy[name] {
		return nil
	}
	c.busy[name] = true
	m := map[string]int{}
	c.collect(def.SelectionSet, m)
	delete(c.busy, name)
	c.frags[name] = m
	return m
}

// ExpandedSelections counts the field selections of every operation in doc
// with fragment spreads expanded, plus those of fragments no operation
// spreads (validation walks them too, then refuses them as unused),
// stopping once past limit (it then returns limit+1). Each fragment is
// sized once; a fragment cycle (which validation refuses) counts as empty.
// The work is linear in the size of doc whatever the fan-out.
func ExpandedSelections(doc *ast.QueryDocument, limit int) int {
	c := expansion{doc: doc, limit: limit, sizes: map[string]int{}, busy: map[string]bool{}}
	total := 0
	for _, op := range doc.Operations {
		total = c.add(total, c.set(op.SelectionSet))
	}
	for _, f := range doc.Fragments {
		if _, ok := c.sizes[f.Name]; !ok {
			total = c.add(total, c.fragment(f.Name))
		}
	}
	return total
}

type expansion struct {
	doc   *ast.QueryDocument
	limit int
	sizes map[string]int
	busy  map[string]bool
}

// add is a sum that saturates at limit+1 (no overflow on deep fan-outs).
func (c *expansion) add(a, b int) int {
	if a > c.limit-b {
		return c.limit + 1
	}
	return a + b
}

func (c *expansion) set(set ast.SelectionSet) int {
	n := 0
	for _, sel := range set {
		switch s := sel.(type) {
		case *ast.Field:
			n = c.add(n, c.add(1, c.set(s.SelectionSet)))
		case *ast.InlineFragment:
			n = c.add(n, c.set(s.SelectionSet))
		case *ast.FragmentSpread:
			n = c.add(n, c.fragment(s.Name))
		default:
			panic(fmt.Sprintf("unknown selection %T", sel))
		}
	}
	return n
}

func (c *expansion) fragment(name string) int {
	if n, ok := c.sizes[name]; ok {
		return n
	}
	def := c.doc.Fragments.ForName(name)
	if def == nil || c.busy[name] {
		return 0
	}
	c.busy[name] = true
	n := c.set(def.SelectionSet)
	delete(c.busy, name)
	c.sizes[name] = n
	return n
}
