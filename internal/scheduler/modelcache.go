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
// (UpdateModel and DeleteModel forget the entry, and a read under way
// then is not stored); changes made by another process take effect here
// within modelTTL, plus the moment a refresh takes: a row past its TTL
// (but younger than modelStale) is still used once while a refresh runs
// in the background, so that no submission waits for the read.
const (
	modelTTL   = 500 * time.Millisecond
	modelStale = 2 * modelTTL
)

type cachedModel struct {
	m  *ent.Model
	at time.Time
}

// modelCache is a short-lived cache of model rows by id.
type modelCache struct {
	bg *background // runs the refreshes

	mu         sync.Mutex
	m          map[int]cachedModel
	refreshing map[int]bool
	gen        uint64 // bumped by forget: a refresh begun before must not write back
}

func newModelCache(bg *background) *modelCache {
	return &modelCache{bg: bg, m: map[int]cachedModel{}, refreshing: map[int]bool{}}
}

// get returns a copy of the model row, from the cache when it is fresh
// (or stale but young enough, refreshing it in the background). Not-found
// and other errors are not cached.
func (c *modelCache) get(ctx context.Context, db *ent.Client, id int) (*ent.Model, error) {
	now := time.Now()
	c.mu.Lock()
	e, ok := c.m[id]
	gen := c.gen
	age := now.Sub(e.at)
	if ok && age >= modelTTL && age < modelStale && !c.refreshing[id] {
		// After Service.Close no refresh starts: the row is served until
		// modelStale, then read by the caller.
		c.refreshing[id] = c.bg.spawn(func() { c.refresh(db, id, gen) })
	}
	c.mu.Unlock()
	if ok && age < modelStale {
		cp := *e.m
		return &cp, nil
	}
	m, err := db.Model.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	c.put(id, m, now, gen)
	cp := *m
	return &cp, nil
}

// refresh reads a model again for get. A failed read leaves the stale row
// to expire: the next get past modelStale reads (and reports) itself.
func (c *modelCache) refresh(db *ent.Client, id int, gen uint64) {
	ctx, cancel := context.WithTimeout(c.bg.ctx, 5*time.Second)
	defer cancel()
	at := time.Now()
	m, err := db.Model.Get(ctx, id)
	c.mu.Lock()
	delete(c.refreshing, id)
	c.mu.Unlock()
	if err == nil {
		c.put(id, m, at, gen)
	}
}

// put stores a row read at at, unless a model was forgotten since the
// read began (gen is c.gen from before the read): that read may predate
// the change.
func (c *modelCache) put(id int, m *ent.Model, at time.Time, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if len(c.m) > 10000 {
		clear(c.m) // bounded: models are few, ids of deleted ones stop mattering
	}
	c.m[id] = cachedModel{m: m, at: at}
}

// forget drops a model so the next read sees its new state.
func (c *modelCache) forget(id int) {
	c.mu.Lock()
	delete(c.m, id)
	c.gen++
	c.mu.Unlock()
}
