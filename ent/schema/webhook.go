package schema

import (
	"time"

	"entgo.io/contrib/entgql"
	"entgo.io/ent"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/edge"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"

	"github.com/llmsched/llm-scheduler/internal/domain"
)

// WebhookDelivery is one completion webhook owed to a task's callback_url:
// the outbox row written in the same transaction as the task's move to
// completed, failed or cancelled (docs/webhooks.md). Any worker process
// claims due rows with a lease and POSTs them; each try is a
// WebhookAttempt.
type WebhookDelivery struct {
	ent.Schema
}

// Fields of the WebhookDelivery.
func (WebhookDelivery) Fields() []ent.Field {
	return []ent.Field{
		field.Int("task_id"),
		// Event is the status the task reached: completed, failed or
		// cancelled.
		field.Enum("event").GoType(domain.TaskStatus("")).
			Annotations(entgql.Type("TaskStatus"), entgql.Skip(entgql.SkipEnumField)),
		field.String("url").MaxLen(2048),
		// APIKeyID is the key whose webhook secret signs the body (nil:
		// webhooks.secret from the configuration).
		field.Int("api_key_id").Optional().Nillable().
			Annotations(entgql.Skip(entgql.SkipAll)),
		// Payload is the task as it was when it reached Event (JSON), the
		// "task" object of every body sent for this delivery.
		field.Text("payload").
			Annotations(entgql.Skip(entgql.SkipAll)),
		// Status is pending (due at next_attempt_at), delivered (a 2xx
		// answer) or failed (gave up after webhooks.max_age).
		field.Enum("status").GoType(domain.WebhookStatus("")).Default(string(domain.WebhookPending)).
			Annotations(entgql.Type("WebhookStatus"), entgql.Skip(entgql.SkipEnumField)),
		// Attempts counts tries made so far.
		field.Int("attempts").Default(0).NonNegative(),
		field.Time("next_attempt_at").SchemaType(micros()),
		// GiveUpAt ends the retries: created_at (or the last redelivery)
		// plus webhooks.max_age.
		field.Time("give_up_at").SchemaType(micros()),
		// LeaseUntil and Owner fence a claim: a process may send only while
		// it holds an unexpired lease, and records its try only if it still
		// owns the row.
		field.Time("lease_until").Optional().Nillable().SchemaType(micros()).
			Annotations(entgql.Skip(entgql.SkipAll)),
		field.String("owner").Optional().
			Annotations(entgql.Skip(entgql.SkipAll)),
		field.Int("last_status_code").Optional().Nillable(),
		field.Text("last_error").Optional(),
		field.Time("created_at").Default(time.Now).Immutable().SchemaType(micros()),
		field.Time("delivered_at").Optional().Nillable().SchemaType(micros()),
	}
}

// Edges of the WebhookDelivery.
func (WebhookDelivery) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("task", Task.Type).Ref("webhook_deliveries").Field("task_id").Unique().Required().
			Annotations(entgql.Skip(entgql.SkipAll)),
		edge.To("attempt_history", WebhookAttempt.Type).
			Annotations(entgql.Skip(entgql.SkipWhereInput)),
	}
}

// Indexes of the WebhookDelivery.
func (WebhookDelivery) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("status", "next_attempt_at"),
		index.Fields("task_id"),
	}
}

// Annotations of the WebhookDelivery.
func (WebhookDelivery) Annotations() []schema.Annotation {
	return []schema.Annotation{entgql.Skip(entgql.SkipWhereInput, entgql.SkipOrderField)}
}

// WebhookAttempt is one POST of a webhook delivery and how it ended.
type WebhookAttempt struct {
	ent.Schema
}

// Fields of the WebhookAttempt.
func (WebhookAttempt) Fields() []ent.Field {
	return []ent.Field{
		field.Int("delivery_id"),
		field.Int("number").Positive(),
		// StatusCode is the receiver's HTTP status (nil when no answer came:
		// refused, timed out, connection error).
		field.Int("status_code").Optional().Nillable(),
		field.Text("error").Optional(),
		field.Int("duration_ms").Default(0).NonNegative(),
		field.String("worker").Optional(),
		field.Time("started_at").SchemaType(micros()),
	}
}

// Edges of the WebhookAttempt.
func (WebhookAttempt) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("delivery", WebhookDelivery.Type).Ref("attempt_history").Field("delivery_id").Unique().Required().
			Annotations(entgql.Skip(entgql.SkipAll)),
	}
}

// Indexes of the WebhookAttempt.
func (WebhookAttempt) Indexes() []ent.Index {
	return []ent.Index{index.Fields("delivery_id", "number").Unique()}
}

// Annotations of the WebhookAttempt.
func (WebhookAttempt) Annotations() []schema.Annotation {
	return []schema.Annotation{entgql.Skip(entgql.SkipWhereInput, entgql.SkipOrderField)}
}
