package graph

import (
	"context"
	"errors"
	"reflect"

	"entgo.io/contrib/entgql"
	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/ent/model"
	"github.com/llmsched/llm-scheduler/ent/task"
	"github.com/llmsched/llm-scheduler/internal/domain"
	"github.com/llmsched/llm-scheduler/internal/scheduler"
)

// This file holds the Relay connections (cursor pagination with entgql's
// where-inputs and orderings) that the task and model lists are read
// through. They read Resolver.DB directly; the domain service supplies the
// cached counts by status and the error kinds.

// defaultConnectionSize is the page size of a connection asked for without
// first or last; scheduler.MaxPageSize caps both.
const defaultConnectionSize = 20

// window is a Relay pagination window.
type window struct {
	After, Before *ent.Cursor
	First, Last   *int
}

func (w *window) validate() error {
	if w.First != nil && w.Last != nil {
		return scheduler.Invalid("first", "cannot be combined with last")
	}
	for _, p := range []struct {
		name string
		v    *int
	}{{"first", w.First}, {"last", w.Last}} {
		if p.v != nil && (*p.v < 0 || *p.v > scheduler.MaxPageSize) {
			return scheduler.Invalid(p.name, "must be between 0 and %d, got %d", scheduler.MaxPageSize, *p.v)
		}
	}
	if w.First == nil && w.Last == nil {
		n := defaultConnectionSize
		w.First = &n
	}
	return nil
}

// taskScope narrows a task connection.
type taskScope struct {
	// ModelID limits the connection to one model's tasks (0: all models).
	ModelID int
	// Owner limits it to the tasks one API key submitted (nil: everyone's).
	Owner *int
}

// taskConnection returns a page of tasks filtered by where and sorted by
// orderBy (newest first when orderBy is empty).
//
// Two things keep the first page cheap on a table of millions of tasks:
//
//   - Ties are broken on id in the direction of the last order term
//     (tieBreak): entgql's own tiebreak is id ascending whatever the
//     direction, and "created_at DESC, id ASC" is an order no index serves,
//     so MySQL sorted the whole table for every page (seconds at a million
//     rows). "created_at DESC, id DESC" is the created_at index read
//     backwards (InnoDB's secondary indexes end with the primary key).
//   - totalCount is read only when it is selected, and pageInfo needs no
//     count (entgql counted for either on every page). Unfiltered or
//     filtered by status alone, the total comes from the cached counts by
//     status (scheduler.Stats.StatusCounts): on a big table it lags by
//     about ten times the cost of a count, as the REST list's total and
//     the dashboard do.
//     Other filters count the matching rows exactly.
func (r *Resolver) taskConnection(ctx context.Context, w window, orderBy []*ent.TaskOrder, where *ent.TaskWhereInput, scope taskScope) (*ent.TaskConnection, error) {
	if err := w.validate(); err != nil {
		return nil, err
	}
	if len(orderBy) == 0 {
		orderBy = []*ent.TaskOrder{{Direction: entgql.OrderDirectionDesc, Field: ent.TaskOrderFieldCreatedAt}}
	}
	orderBy = tieBreak(orderBy)
	q := r.DB.Task.Query()
	if scope.ModelID != 0 {
		q = q.Where(task.ModelID(scope.ModelID))
	}
	if scope.Owner != nil {
		q = q.Where(task.APIKeyID(*scope.Owner))
	}
	opts := []ent.TaskPaginateOption{ent.WithTaskOrder(orderBy)}
	if where != nil {
		opts = append(opts, ent.WithTaskFilter(where.Filter))
	}
	sel, inGraphQL := connectionSelection(ctx)
	if !inGraphQL {
		// Not resolving a GraphQL field (a direct call): entgql fills in
		// everything.
		conn, err := q.Paginate(ctx, w.After, w.First, w.Before, w.Last, opts...)
		return conn, connErr(err, "task")
	}
	countQ := q.Clone()
	conn, err := q.Paginate(sel.withoutCounts(ctx), w.After, w.First, w.Before, w.Last, opts...)
	if err != nil {
		return nil, connErr(err, "task")
	}
	if sel.totalCount || (sel.pageInfo && !sel.edges) {
		total, err := r.connectionTotal(ctx, countQ, where, scope)
		if err != nil {
			return nil, err
		}
		conn.TotalCount = total
		if !sel.edges {
			// What entgql answers without edges.
			conn.PageInfo.HasNextPage = w.First != nil && total > 0
			conn.PageInfo.HasPreviousPage = w.Last != nil && total > 0
		}
	}
	return conn, nil
}

// tieBreak appends id to an order that lacks it, in the direction of the
// order's last term (see TaskConnection).
func tieBreak(orderBy []*ent.TaskOrder) []*ent.TaskOrder {
	for _, o := range orderBy {
		if o.Field != nil && o.Field.String() == ent.TaskOrderFieldID.String() {
			return orderBy
		}
	}
	out := make([]*ent.TaskOrder, 0, len(orderBy)+1)
	out = append(out, orderBy...)
	return append(out, &ent.TaskOrder{Direction: orderBy[len(orderBy)-1].Direction, Field: ent.TaskOrderFieldID})
}

// connectionTotal counts the tasks of a connection: from the cached counts
// by status when neither a scope nor a filter other than one status narrows
// it, else exactly.
func (r *Resolver) connectionTotal(ctx context.Context, q *ent.TaskQuery, where *ent.TaskWhereInput, scope taskScope) (int, error) {
	if scope.ModelID == 0 && scope.Owner == nil {
		var status *domain.TaskStatus
		rest := ent.TaskWhereInput{}
		if where != nil {
			rest = *where
			status, rest.Status = where.Status, nil
		}
		if reflect.DeepEqual(rest, ent.TaskWhereInput{}) {
			byStatus, err := r.Svc.StatusCounts(ctx)
			if err != nil {
				return 0, err
			}
			if status != nil {
				return byStatus[*status], nil
			}
			total := 0
			for _, n := range byStatus {
				total += n
			}
			return total, nil
		}
	}
	if where != nil {
		var err error
		if q, err = where.Filter(q); err != nil {
			return 0, connErr(err, "task")
		}
	}
	n, err := q.Count(ctx)
	return n, connErr(err, "task")
}

// connSelection is what a GraphQL query selects of a connection.
type connSelection struct {
	fc                          *graphql.FieldContext
	edges, pageInfo, totalCount bool
}

// connectionSelection reads the connection's selected fields; false outside
// a GraphQL field.
func connectionSelection(ctx context.Context) (connSelection, bool) {
	fc := graphql.GetFieldContext(ctx)
	oc := graphql.GetOperationContext(ctx)
	if fc == nil || oc == nil {
		return connSelection{}, false
	}
	sel := connSelection{fc: fc}
	for _, f := range graphql.CollectFields(oc, fc.Field.Selections, nil) {
		switch f.Name {
		case "edges":
			sel.edges = true
		case "pageInfo":
			sel.pageInfo = true
		case "totalCount":
			sel.totalCount = true
		}
	}
	return sel, true
}

// withoutCounts returns ctx with the connection's field seen without
// totalCount and pageInfo, so that entgql's Paginate does not count: the
// total is TaskConnection's business, and the page info comes from the
// page itself (entgql fetches one row more than asked).
func (sel connSelection) withoutCounts(ctx context.Context) context.Context {
	oc := graphql.GetOperationContext(ctx)
	var keep ast.SelectionSet
	for _, f := range graphql.CollectFields(oc, sel.fc.Field.Selections, nil) {
		if f.Name == "pageInfo" || f.Name == "totalCount" {
			continue
		}
		af := *f.Field
		af.SelectionSet = f.Selections
		keep = append(keep, &af)
	}
	fc := *sel.fc
	fc.Field = graphql.CollectedField{Field: sel.fc.Field.Field, Selections: keep}
	return graphql.WithFieldContext(ctx, &fc)
}

// modelConnection returns a page of models, by id unless orderBy says
// otherwise. Deleted models are left out unless the filter asks for them
// (where: {deletedAtNotNil: true}).
func (r *Resolver) modelConnection(ctx context.Context, w window, orderBy []*ent.ModelOrder, where *ent.ModelWhereInput) (*ent.ModelConnection, error) {
	if err := w.validate(); err != nil {
		return nil, err
	}
	opts := []ent.ModelPaginateOption{ent.WithModelOrder(orderBy)}
	if where != nil {
		opts = append(opts, ent.WithModelFilter(where.Filter))
	}
	q := r.DB.Model.Query()
	if where == nil || !where.DeletedAtNotNil {
		q = q.Where(model.DeletedAtIsNil())
	}
	conn, err := q.Paginate(ctx, w.After, w.First, w.Before, w.Last, opts...)
	return conn, connErr(err, "model")
}

// connErr classifies a pagination error: entgql reports bad cursors,
// windows and filters as gqlerrors or plain errors from the where-input,
// which are the client's mistake; database failures are not.
func connErr(err error, what string) error {
	var ge *gqlerror.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ge):
		return &scheduler.Error{Code: scheduler.CodeInvalid, Message: ge.Message, Err: err}
	case errors.Is(err, ent.ErrEmptyTaskWhereInput), errors.Is(err, ent.ErrEmptyModelWhereInput):
		return &scheduler.Error{Code: scheduler.CodeInvalid, Field: "where", Message: "where: " + err.Error(), Err: err}
	}
	return scheduler.DBError(err, what, 0)
}
