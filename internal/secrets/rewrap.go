package secrets

import (
	"context"
	"fmt"

	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/ent/apikey"
)

// Rewrap re-seals every model's secrets with the primary key: plaintext
// values (stored before a key was configured) and values sealed with a
// previous key. After it, previous keys can be dropped from the
// configuration. It returns how many models changed.
func Rewrap(ctx context.Context, db *ent.Client, kr *Keyring, isSecret func(string) bool) (int, error) {
	if !kr.Enabled() {
		return 0, fmt.Errorf("rewrap: %w", ErrNoKey)
	}
	models, err := db.Model.Query().All(ctx)
	if err != nil {
		return 0, fmt.Errorf("rewrap: list models: %w", err)
	}
	changed := 0
	for _, m := range models {
		stale := false
		if _, err := walkSecrets(m.Config, isSecret, func(v string) (string, error) {
			stale = stale || kr.NeedsRewrap(v)
			return v, nil
		}); err != nil {
			return changed, err
		}
		if !stale {
			continue
		}
		open, err := kr.OpenConfig(m.Config)
		if err != nil {
			return changed, fmt.Errorf("rewrap model %d: %w", m.ID, err)
		}
		sealed, err := kr.SealConfig(open, isSecret)
		if err != nil {
			return changed, fmt.Errorf("rewrap model %d: %w", m.ID, err)
		}
		if err := db.Model.UpdateOneID(m.ID).SetConfig(sealed).Exec(ctx); err != nil {
			return changed, fmt.Errorf("rewrap model %d: %w", m.ID, err)
		}
		changed++
	}
	return changed, nil
}

// RewrapWebhookSecrets re-seals the API keys' webhook secrets (which sign
// their tasks' completion webhooks) with the primary key, as Rewrap does
// for models. It returns how many keys changed.
func RewrapWebhookSecrets(ctx context.Context, db *ent.Client, kr *Keyring) (int, error) {
	if !kr.Enabled() {
		return 0, fmt.Errorf("rewrap: %w", ErrNoKey)
	}
	keys, err := db.APIKey.Query().Where(apikey.WebhookSecretNEQ("")).All(ctx)
	if err != nil {
		return 0, fmt.Errorf("rewrap: list API keys: %w", err)
	}
	changed := 0
	for _, k := range keys {
		if !kr.NeedsRewrap(k.WebhookSecret) {
			continue
		}
		open, err := kr.Open(k.WebhookSecret)
		if err != nil {
			return changed, fmt.Errorf("rewrap webhook secret of API key %d: %w", k.ID, err)
		}
		sealed, err := kr.Seal(open)
		if err != nil {
			return changed, fmt.Errorf("rewrap webhook secret of API key %d: %w", k.ID, err)
		}
		if err := db.APIKey.UpdateOneID(k.ID).SetWebhookSecret(sealed).Exec(ctx); err != nil {
			return changed, fmt.Errorf("rewrap webhook secret of API key %d: %w", k.ID, err)
		}
		changed++
	}
	return changed, nil
}
