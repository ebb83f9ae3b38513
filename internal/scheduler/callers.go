package scheduler

import (
	"context"
	"errors"
	"github.com/llmsched/llm-scheduler/internal/secrets"
	"sync"
	"time"

	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/internal/apikeys"
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

// submitter loads the API key of a submission (nil without one). A key
// deleted meanwhile cannot submit.
func (s *Service) submitter(ctx context.Context, v *validated) error {
	if v.APIKeyID == nil {
		return nil
	}
	k, err := s.keys.get(ctx, s.db, *v.APIKeyID)
	if ent.IsNotFound(err) {
		return &Error{Code: CodeUnauthenticated, Message: "the API key does not exist"}
	}
	if err != nil {
		return dbErr(err, "api key", *v.APIKeyID)
	}
	v.key = k
	return nil
}

// KeyError maps the apikeys package's errors to the domain's codes, for
// the REST and GraphQL adapters.
func KeyError(err error) error {
	var ie *apikeys.InvalidError
	var se *Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &se):
		return se
	case errors.As(err, &ie):
		return Invalid(ie.Field, "%s", ie.Message)
	case errors.Is(err, apikeys.ErrNotFound):
		return &Error{Code: CodeNotFound, Message: err.Error()}
	}
	return Unavailable("database", err)
}

// ForgetKey drops a cached API key after a change, so that this process's
// next submission sees its new weight and budgets.
func (s *Service) ForgetKey(id int) { s.keys.forget(id) }

// Keys returns the API key service of this configuration: webhook secrets
// sealed with auth.encryption_key, default callback URLs checked like a
// task's.
func (s *Service) Keys() *apikeys.Service {
	return apikeys.New(s.db, apikeys.WithSealer(s.sealSecret), apikeys.WithURLCheck(func(raw, field string) error {
		return s.CheckCallbackURL(raw, field)
	}))
}

// sealSecret seals one secret with the configured keyring (unchanged in
// plaintext mode).
func (s *Service) sealSecret(v string) (string, error) {
	kr, err := secrets.FromConfig(s.cfg)
	if err != nil {
		return "", err
	}
	return kr.Seal(v)
}
