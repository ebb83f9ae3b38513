package scheduler

import (
	"context"
	"sync"
	"time"

	"github.com/llmsched/llm-scheduler/ent"
)

// modelTTL bounds how long a model row read by this process is reused.
// Every task submission and every task a worker picks up needs its model;
// reading it once per TTL instead of once per task removes a query from
// both hot paths. Changes made through this process take effect at once
// (UpdateModel and DeleteModel forget the entry); changes made by another
// process take effect here within modelTTL.
const modelTTL = 500 * time.Millisecond

type cachedModel struct {
	m  *ent.Model
	at time.Time
}

// modelCache is a short-lived cache of model rows by id.
type modelCache struct {
	mu sync.Mutex
	m  map[int]cachedModel
}

func newModelCache() *modelCache { return &modelCache{m: map[int]cachedModel{}} }

// get returns a copy of the model row, from the cache when it is fresh.
// Not-found and other errors are not cached.
func (c *modelCache) get(ctx context.Context, db *ent.Client, id int) (*ent.Model, error) {
	now := time.Now()
	c.mu.Lock()
	e, ok := c.m[id]
	c.mu.Unlock()
	if ok && now.Sub(e.at) < modelTTL {
		cp := *e.m
		return &cp, nil
	}
	m, err := db.Model.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if len(c.m) > 10000 {
		clear(c.m) // bounded: models are few, ids of deleted ones stop mattering
	}
	c.m[id] = cachedModel{m: m, at: now}
	c.mu.Unlock()
	cp := *m
	return &cp, nil
}

// forget drops a model so the next read sees its new state.
func (c *modelCache) forget(id int) {
	c.mu.Lock()
	delete(c.m, id)
	c.mu.Unlock()
}
