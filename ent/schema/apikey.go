package schema

import (
	"time"

	"entgo.io/contrib/entgql"
	"entgo.io/ent"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/field"

	"github.com/llmsched/llm-scheduler/internal/domain"
)

// APIKey grants a role to whoever presents it. Only a hash is stored.
type APIKey struct {
	ent.Schema
}

// Fields of the APIKey.
func (APIKey) Fields() []ent.Field {
	return []ent.Field{
		field.String("name").NotEmpty().MaxLen(128),
		field.Enum("role").GoType(domain.Role("")),
		// Prefix is the key's first characters, shown to tell keys apart.
		field.String("prefix").NotEmpty(),
		// Hash is the hex SHA-256 of the whole key.
		field.String("hash").NotEmpty().Unique().Sensitive(),
		field.Time("created_at").Default(time.Now).Immutable().SchemaType(micros()),
		field.Time("last_used_at").Optional().Nillable().SchemaType(micros()),
		field.Time("revoked_at").Optional().Nillable().SchemaType(micros()),
		// Weight is the key's share of a model's slots against other
		// callers of the same priority (fair share, docs/fairness.md).
		field.Int("weight").Default(1).Range(1, 1000),
		// TokensPerDay and TokensPerMonth cap the tokens the key's tasks
		// may use per UTC day and calendar month (nil: no cap).
		field.Int("tokens_per_day").Optional().Nillable().Positive(),
		field.Int("tokens_per_month").Optional().Nillable().Positive(),
		// ModelBudgets are caps on single models, on top of the above.
		field.JSON("model_budgets", []domain.ModelBudget{}).Optional(),
		// WebhookSecret signs the completion webhooks of the key's tasks
		// (sealed with auth.encryption_key like provider secrets; shown
		// once, when the key is created or the secret rotated).
		field.String("webhook_secret").Optional().Sensitive(),
		// CallbackURL is the default callback_url of the key's tasks.
		field.String("callback_url").Optional().Nillable().MaxLen(2048),
	}
}

// Annotations of the APIKey.
func (APIKey) Annotations() []schema.Annotation {
	return []schema.Annotation{entgql.Skip(entgql.SkipAll)}
}
