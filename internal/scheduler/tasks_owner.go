package scheduler

import (
	"context"

	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/ent/attempt"
	"github.com/llmsched/llm-scheduler/ent/task"
)

// TaskFor returns a task the owner may see; another key's task is NOT_FOUND,
// so that ids of other users' tasks do not leak.
func (s *Tasks) TaskFor(ctx context.Context, id int, owner *int) (*ent.Task, error) {
	t, err := s.GetTask(ctx, id)
	if err != nil {
		return nil, err
	}
	if !OwnedBy(t, owner) {
		return nil, NotFound("task", id)
	}
	return t, nil
}

// OwnedBy reports whether the owner may see t (always, for a nil owner).
func OwnedBy(t *ent.Task, owner *int) bool {
	return owner == nil || (t.APIKeyID != nil && *t.APIKeyID == *owner)
}

// NodeRef names one row for node(id:): its table and its id.
type NodeRef struct {
	Table string
	ID    int
}

// Node returns the object ref names, hiding other keys' tasks and their
// attempts from an owner (nil: everyone's are visible).
func (s *Tasks) Node(ctx context.Context, ref NodeRef, owner *int) (ent.Noder, error) {
	n, err := s.db.Noder(ctx, ref.ID, ent.WithFixedNodeType(ref.Table))
	if err != nil {
		return nil, dbErr(err, "node", ref.ID)
	}
	if err := s.visible(ctx, n, owner); err != nil {
		return nil, err
	}
	return n, nil
}

// Nodes returns the objects refs name, in order; an unknown or hidden one
// yields a nil entry. One query per table.
func (s *Tasks) Nodes(ctx context.Context, refs []NodeRef, owner *int) ([]ent.Noder, error) {
	if len(refs) > MaxPageSize {
		return nil, Invalid("ids", "may name at most %d nodes, got %d", MaxPageSize, len(refs))
	}
	ns := make([]ent.Noder, len(refs))
	byTable := map[string][]int{} // table -> indexes into refs
	for i, r := range refs {
		byTable[r.Table] = append(byTable[r.Table], i)
	}
	for table, idx := range byTable {
		ids := make([]int, len(idx))
		for j, i := range idx {
			ids[j] = refs[i].ID
		}
		got, err := s.db.Noders(ctx, ids, ent.WithFixedNodeType(table))
		if err != nil {
			return nil, dbErr(err, "node", 0)
		}
		for j, i := range idx {
			ns[i] = got[j]
		}
	}
	for i, n := range ns {
		if n == nil {
			continue
		}
		if err := s.visible(ctx, n, owner); err != nil {
			if CodeOf(err) != CodeNotFound {
				return nil, err
			}
			ns[i] = nil
		}
	}
	return ns, nil
}

func (s *Tasks) visible(ctx context.Context, n ent.Noder, owner *int) error {
	if owner == nil {
		return nil
	}
	switch v := n.(type) {
	case *ent.Task:
		if !OwnedBy(v, owner) {
			return NotFound("node", v.ID)
		}
	case *ent.Attempt:
		ok, err := s.db.Attempt.Query().Where(attempt.ID(v.ID), attempt.HasTaskWith(task.APIKeyID(*owner))).Exist(ctx)
		if err != nil {
			return dbErr(err, "node", v.ID)
		}
		if !ok {
			return NotFound("node", v.ID)
		}
	}
	return nil
}

// TaskOwnedBy reports whether the owner submitted task id (true for a nil
// owner). Event subscribers use it to drop other keys' events.
func (s *Tasks) TaskOwnedBy(ctx context.Context, id int, owner *int) (bool, error) {
	if owner == nil {
		return true, nil
	}
	ok, err := s.db.Task.Query().Where(task.ID(id), task.APIKeyID(*owner)).Exist(ctx)
	return ok, dbErr(err, "task", id)
}
