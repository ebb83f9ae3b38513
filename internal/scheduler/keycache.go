package scheduler

import (
	"context"
	"sync"
	"time"

	"github.com/llmsched/llm-scheduler/ent"
)

// keyTTL bounds how long an API key row read at submission is reused: its
// name becomes the task's caller, its weight the task's weight, its
// budgets are checked (budgets.go). Changes made through this process
// (UpdateAPIKey) apply at once; another process's within keyTTL.
const keyTTL = time.Second

type cachedKey struct {
	k  *ent.APIKey
	at time.Time
}

// keyCache is a short-lived cache of API key rows by id.
type keyCache struct {
	mu sync.Mutex
	m  map[int]cachedKey
}

func newKeyCache() *keyCache { return &keyCache{m: map[int]cachedKey{}} }

func (c *keyCache) get(ctx context.Context, db *ent.Client, id int) (*ent.APIKey, error) {
	now := time.Now()
	c.mu.Lock()
	e, ok := c.m[id]
	c.mu.Unlock()
	if ok && now.Sub(e.at) < keyTTL {
		return e.k, nil
	}
	k, err := db.APIKey.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if len(c.m) > 10000 {
		clear(c.m)
	}
	c.m[id] = cachedKey{k: k, at: now}
	c.mu.Unlock()
	return k, nil
}

func (c *keyCache) forget(id int) {
	c.mu.Lock()
	delete(c.m, id)
	c.mu.Unlock()
}
