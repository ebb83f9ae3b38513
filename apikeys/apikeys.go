// Package apikeys manages API keys: create (the key is shown once and only
// its SHA-256 is stored), list and revoke. The HTTP side (server.
// Authenticator) looks keys up by the same hash on every request, so a
// revoked key stops working at once.
package apikeys

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/llmsched/llm-scheduler/domain"
	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/ent/apikey"
)

// KeyPrefix starts every key, so a leaked one is easy to recognise (secret
// scanners, logs).
const KeyPrefix = "lls_"

// shownPrefix is how many characters of a key are stored in clear to tell
// keys apart ("lls_3f9a0c").
const shownPrefix = len(KeyPrefix) + 6

// Hash is the stored form of a key: hex SHA-256.
func Hash(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// Service creates, lists and revokes keys.
type Service struct {
	db  *ent.Client
	now func() time.Time
}

// New returns a service on db.
func New(db *ent.Client) *Service { return &Service{db: db, now: time.Now} }

// Created is a new key. Secret is the key itself; it exists only here.
type Created struct {
	Key    *ent.APIKey
	Secret string
}

// ErrInvalid reports a bad name or role.
var ErrInvalid = errors.New("invalid api key request")

// ErrNotFound reports an unknown key id.
var ErrNotFound = errors.New("api key not found")

// Create makes a key with a role.
func (s *Service) Create(ctx context.Context, name, role string) (Created, error) {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 128 {
		return Created{}, fmt.Errorf("%w: --name must be 1 to 128 characters", ErrInvalid)
	}
	r, err := domain.ParseRole(role)
	if err != nil {
		return Created{}, fmt.Errorf("%w: --role must be one of admin, operator, submitter, viewer, got %q", ErrInvalid, role)
	}
	raw := make([]byte, 24)
	if _, err := rand.Read(raw); err != nil {
		return Created{}, fmt.Errorf("generate api key: %w", err)
	}
	secret := KeyPrefix + hex.EncodeToString(raw)
	k, err := s.db.APIKey.Create().SetName(name).SetRole(r).SetPrefix(secret[:shownPrefix]).
		SetHash(Hash(secret)).SetCreatedAt(s.now()).Save(ctx)
	if err != nil {
		return Created{}, fmt.Errorf("store api key: %w", err)
	}
	return Created{Key: k, Secret: secret}, nil
}

// List returns every key, revoked ones included, oldest first.
func (s *Service) List(ctx context.Context) ([]*ent.APIKey, error) {
	ks, err := s.db.APIKey.Query().Order(ent.Asc(apikey.FieldID)).All(ctx)
	if err != nil {
		return nil, fmt.Errorf("list api keys: %w", err)
	}
	return ks, nil
}

// Revoke disables a key at once. Revoking a revoked key keeps its first
// revocation time.
func (s *Service) Revoke(ctx context.Context, id int) (*ent.APIKey, error) {
	k, err := s.db.APIKey.Get(ctx, id)
	if ent.IsNotFound(err) {
		return nil, fmt.Errorf("%w: no key with id %d", ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("revoke api key %d: %w", id, err)
	}
	if k.RevokedAt != nil {
		return k, nil
	}
	k, err = k.Update().SetRevokedAt(s.now()).Save(ctx)
	if err != nil {
		return nil, fmt.Errorf("revoke api key %d: %w", id, err)
	}
	return k, nil
}
