package scheduler

import (
	"context"
	"testing"
	"time"
)

// TestModelCacheServesStaleWhileRefreshing: a row past modelTTL is still
// served once (no read on the caller's path) and refreshed in the
// background; past modelStale the caller reads; a change forgotten during
// a refresh is not overwritten by it.
func TestModelCacheServesStaleWhileRefreshing(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	c := newModelCache(f.svc.bg)
	db := f.svc.m.db
	id := f.model.ID
	if _, err := c.get(ctx, db, id); err != nil {
		t.Fatal(err)
	}
	if err := db.Model.UpdateOneID(id).SetName("renamed").Exec(ctx); err != nil {
		t.Fatal(err)
	}
	age := func(d time.Duration) {
		c.mu.Lock()
		e := c.m[id]
		e.at = time.Now().Add(-d)
		c.m[id] = e
		c.mu.Unlock()
	}

	age(modelTTL + 10*time.Millisecond)
	if m, err := c.get(ctx, db, id); err != nil || m.Name != "m" {
		t.Fatalf("stale get: %v %v, want the cached row (name m)", m, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		m, err := c.get(ctx, db, id)
		if err != nil {
			t.Fatal(err)
		}
		if m.Name == "renamed" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the background refresh never stored the new row")
		}
		time.Sleep(5 * time.Millisecond)
	}

	if err := db.Model.UpdateOneID(id).SetName("again").Exec(ctx); err != nil {
		t.Fatal(err)
	}
	age(modelStale + time.Millisecond)
	if m, err := c.get(ctx, db, id); err != nil || m.Name != "again" {
		t.Fatalf("get past modelStale: %v %v, want a fresh read (name again)", m, err)
	}

	// A refresh that began before a forget must not write its row back.
	gen := c.gen
	c.forget(id)
	c.refresh(db, id, gen)
	c.mu.Lock()
	_, cached := c.m[id]
	c.mu.Unlock()
	if cached {
		t.Fatal("a refresh begun before forget stored its row")
	}
}
