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

	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/ent/apikey"
	"github.com/llmsched/llm-scheduler/ent/model"
	"github.com/llmsched/llm-scheduler/internal/domain"
)

// KeyPrefix starts every key, so a leaked one is easy to recognise (secret
// scanners, logs).
const KeyPrefix = "lls_"

// shownPrefix is how many characters of a key are stored in clear to tell
// keys apart ("lls_3f9a0c").
const shownPrefix = len(KeyPrefix) + 6

// Hash is the stored form of a key: hex SHA-256. It is the only key hash:
// Create stores it and server.Authenticator looks every bearer token up by
// it.
func Hash(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// Service creates, lists and revokes keys.
type Service struct {
	db       *ent.Client
	now      func() time.Time
	seal     func(string) (string, error)
	checkURL func(raw, field string) error
}

// Option configures a Service.
type Option func(*Service)

// WithSealer seals webhook secrets before they are stored (secrets.
// Keyring.Seal). Without it they are stored as generated, as provider
// secrets are in plaintext mode.
func WithSealer(seal func(string) (string, error)) Option { return func(s *Service) { s.seal = seal } }

// WithURLCheck validates a key's default callback_url
// (scheduler.Tasks.CheckCallbackURL). Without it a callback_url setting is
// refused.
func WithURLCheck(check func(raw, field string) error) Option {
	return func(s *Service) { s.checkURL = check }
}

// New returns a service on db.
func New(db *ent.Client, opts ...Option) *Service {
	s := &Service{db: db, now: time.Now}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Created is a new key. Secret is the key itself and WebhookSecret the
// secret that signs its tasks' webhooks; they exist only here.
type Created struct {
	Key           *ent.APIKey
	Secret        string
	WebhookSecret string
}

// WebhookSecretPrefix starts every webhook secret.
const WebhookSecretPrefix = "whsec_"

// newWebhookSecret generates a webhook secret and its stored (sealed) form.
func (s *Service) newWebhookSecret() (plain, stored string, err error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", "", fmt.Errorf("generate webhook secret: %w", err)
	}
	plain = WebhookSecretPrefix + hex.EncodeToString(raw)
	stored = plain
	if s.seal != nil {
		if stored, err = s.seal(plain); err != nil {
			return "", "", fmt.Errorf("seal webhook secret: %w", err)
		}
	}
	return plain, stored, nil
}

// RotateWebhookSecret gives a key a new webhook secret (the first one, for
// a key made before webhooks) and returns it: it is shown only here.
// Deliveries sent from then on are signed with it.
func (s *Service) RotateWebhookSecret(ctx context.Context, id int) (*ent.APIKey, string, error) {
	plain, stored, err := s.newWebhookSecret()
	if err != nil {
		return nil, "", err
	}
	n, err := s.db.APIKey.Update().Where(apikey.ID(id), apikey.RevokedAtIsNil()).SetWebhookSecret(stored).Save(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("rotate webhook secret of api key %d: %w", id, err)
	}
	if n == 0 {
		return nil, "", fmt.Errorf("%w: no live key with id %d", ErrNotFound, id)
	}
	k, err := s.Get(ctx, id)
	return k, plain, err
}

// ErrInvalid reports a bad name or role.
var ErrInvalid = errors.New("invalid api key request")

// InvalidError is bad input in one field; errors.Is(err, ErrInvalid) holds.
type InvalidError struct {
	Field   string
	Message string
}

func (e *InvalidError) Error() string        { return ErrInvalid.Error() + ": " + e.Field + " " + e.Message }
func (e *InvalidError) Is(target error) bool { return target == ErrInvalid }

func invalid(field, format string, args ...any) error {
	return &InvalidError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// ErrNotFound reports an unknown key id.
var ErrNotFound = errors.New("api key not found")

// Create makes a key with a role.
func (s *Service) Create(ctx context.Context, name, role string) (Created, error) {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 128 {
		return Created{}, invalid("name", "must be 1 to 128 characters")
	}
	r, err := domain.ParseRole(role)
	if err != nil {
		return Created{}, invalid("role", "must be one of admin, operator, submitter, viewer, got %q", role)
	}
	raw := make([]byte, 24)
	if _, err := rand.Read(raw); err != nil {
		return Created{}, fmt.Errorf("generate api key: %w", err)
	}
	secret := KeyPrefix + hex.EncodeToString(raw)
	hook, stored, err := s.newWebhookSecret()
	if err != nil {
		return Created{}, err
	}
	k, err := s.db.APIKey.Create().SetName(name).SetRole(r).SetPrefix(secret[:shownPrefix]).
		SetHash(Hash(secret)).SetCreatedAt(s.now()).SetWebhookSecret(stored).Save(ctx)
	if err != nil {
		return Created{}, fmt.Errorf("store api key: %w", err)
	}
	return Created{Key: k, Secret: secret, WebhookSecret: hook}, nil
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

// Settings are a key's fair-share weight and token budgets. Nil fields
// are left as they are (on Create: weight 1, no budgets); a cap of 0
// removes it; ModelBudgets, when set, replaces the key's list.
type Settings struct {
	Weight         *int
	TokensPerDay   *int
	TokensPerMonth *int
	ModelBudgets   *[]domain.ModelBudget
	// CallbackURL is the default callback_url of the key's tasks; "" removes it.
	CallbackURL *string
}

// maxModelBudgets bounds how many models a key may have caps on.
const maxModelBudgets = 100

// validate checks s and that budgets name existing models. Errors name the
// field (as the CLI flag spells it, or the JSON field) and the rule.
func (s *Service) validate(ctx context.Context, st Settings) error {
	if st.Weight != nil && (*st.Weight < 1 || *st.Weight > 1000) {
		return invalid("weight", "must be between 1 and 1000, got %d", *st.Weight)
	}
	for _, c := range []struct {
		name string
		v    *int
	}{{"tokens_per_day", st.TokensPerDay}, {"tokens_per_month", st.TokensPerMonth}} {
		if c.v != nil && *c.v < 0 {
			return invalid(c.name, "must be 0 (no cap) or a positive number of tokens, got %d", *c.v)
		}
	}
	if st.CallbackURL != nil && *st.CallbackURL != "" {
		if s.checkURL == nil {
			return invalid("callback_url", "cannot be checked here; set it through the REST or GraphQL API")
		}
		if err := s.checkURL(*st.CallbackURL, "callback_url"); err != nil {
			return err
		}
	}
	if st.ModelBudgets == nil {
		return nil
	}
	bs := *st.ModelBudgets
	if len(bs) > maxModelBudgets {
		return invalid("model_budgets", "may hold at most %d models, got %d", maxModelBudgets, len(bs))
	}
	seen := map[int]bool{}
	for i, b := range bs {
		f := fmt.Sprintf("model_budgets[%d]", i)
		if b.ModelID <= 0 {
			return invalid(f+".model_id", "must be a positive model id, got %d", b.ModelID)
		}
		if seen[b.ModelID] {
			return invalid(f+".model_id", "names model %d a second time", b.ModelID)
		}
		seen[b.ModelID] = true
		if b.TokensPerDay == nil && b.TokensPerMonth == nil {
			return invalid(f, "needs tokens_per_day or tokens_per_month")
		}
		for _, c := range []struct {
			name string
			v    *int
		}{{"tokens_per_day", b.TokensPerDay}, {"tokens_per_month", b.TokensPerMonth}} {
			if c.v != nil && *c.v <= 0 {
				return invalid(f+"."+c.name, "must be a positive number of tokens, got %d", *c.v)
			}
		}
		ok, err := s.db.Model.Query().Where(model.ID(b.ModelID), model.DeletedAtIsNil()).Exist(ctx)
		if err != nil {
			return fmt.Errorf("check model %d: %w", b.ModelID, err)
		}
		if !ok {
			return invalid(f+".model_id", "model %d does not exist", b.ModelID)
		}
	}
	return nil
}

// capOrClear sets a cap, or clears it when it is 0.
func capOrClear(v *int, set func(int), unset func()) {
	switch {
	case v == nil:
	case *v == 0:
		unset()
	default:
		set(*v)
	}
}

// CreateWith makes a key with a role and settings.
func (s *Service) CreateWith(ctx context.Context, name, role string, st Settings) (Created, error) {
	if err := s.validate(ctx, st); err != nil {
		return Created{}, err
	}
	c, err := s.Create(ctx, name, role)
	if err != nil {
		return Created{}, err
	}
	k, err := s.apply(ctx, c.Key, st)
	if err != nil {
		return Created{}, err
	}
	c.Key = k
	return c, nil
}

// Update changes a key's weight and budgets.
func (s *Service) Update(ctx context.Context, id int, st Settings) (*ent.APIKey, error) {
	if err := s.validate(ctx, st); err != nil {
		return nil, err
	}
	k, err := s.db.APIKey.Get(ctx, id)
	if ent.IsNotFound(err) {
		return nil, fmt.Errorf("%w: no key with id %d", ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("update api key %d: %w", id, err)
	}
	return s.apply(ctx, k, st)
}

func (s *Service) apply(ctx context.Context, k *ent.APIKey, st Settings) (*ent.APIKey, error) {
	id, u := k.ID, k.Update()
	if st.Weight != nil {
		u.SetWeight(*st.Weight)
	}
	capOrClear(st.TokensPerDay, func(v int) { u.SetTokensPerDay(v) }, func() { u.ClearTokensPerDay() })
	capOrClear(st.TokensPerMonth, func(v int) { u.SetTokensPerMonth(v) }, func() { u.ClearTokensPerMonth() })
	if st.ModelBudgets != nil {
		u.SetModelBudgets(*st.ModelBudgets)
	}
	if st.CallbackURL != nil {
		if *st.CallbackURL == "" {
			u.ClearCallbackURL()
		} else {
			u.SetCallbackURL(*st.CallbackURL)
		}
	}
	k, err := u.Save(ctx)
	if err != nil {
		return nil, fmt.Errorf("update api key %d: %w", id, err)
	}
	return k, nil
}

// Get returns one key.
func (s *Service) Get(ctx context.Context, id int) (*ent.APIKey, error) {
	k, err := s.db.APIKey.Get(ctx, id)
	if ent.IsNotFound(err) {
		return nil, fmt.Errorf("%w: no key with id %d", ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("read api key %d: %w", id, err)
	}
	return k, nil
}
