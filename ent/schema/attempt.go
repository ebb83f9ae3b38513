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

// Attempt is one try of a task: when it ran, on which model and worker, and
// how it ended. Every try is kept, including one whose worker was lost.
type Attempt struct {
	ent.Schema
}

// Fields of the Attempt.
func (Attempt) Fields() []ent.Field {
	return []ent.Field{
		field.Int("task_id"),
		// Number counts from 1 within a task; a worker that finishes an
		// attempt must still own this number (fencing).
		field.Int("number").Positive(),
		// ModelID is the model this try ran on (a fallback may differ from
		// the task's model).
		field.Int("model_id"),
		field.Enum("status").GoType(domain.AttemptStatus("")).
			Annotations(entgql.Type("AttemptStatus"), entgql.Skip(entgql.SkipEnumField)),
		field.Text("error").Optional(),
		// ErrorKind classifies the error: retryable, permanent, timeout,
		// rate_limited, lost, cancelled.
		field.String("error_kind").Optional(),
		// Output keeps partial output of a try that was cut off.
		field.Text("output").Optional(),
		field.String("worker").Optional(),
		field.Int("prompt_tokens").Default(0),
		field.Int("completion_tokens").Default(0),
		// Cost is what the try cost at its model's prices (per million
		// input and output tokens) when it ended; CostEstimated says the
		// token counts behind it were estimated, not reported.
		field.Float("cost").Default(0),
		field.Bool("cost_estimated").Default(false),
		// Caller and APIKeyID copy the task's submitter, so usage and cost
		// per caller are read from attempts alone.
		field.String("caller").Default(domain.AnonymousCaller).MaxLen(128),
		field.Int("api_key_id").Optional().Nillable(),
		// TokenSource says where the token counts came from: "reported"
		// by the provider or "estimated" from the text (the provider sent
		// no usage). Empty until the attempt succeeds.
		field.String("token_source").Optional(),
		// FinishReason is why the model stopped ("stop", "length", ...),
		// "unknown" when an answer ended properly without saying. Empty
		// for failed attempts and embeddings.
		field.String("finish_reason").Optional(),
		field.Time("started_at").Default(time.Now).SchemaType(micros()),
		field.Time("finished_at").Optional().Nillable().SchemaType(micros()),
	}
}

// Edges of the Attempt.
func (Attempt) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("task", Task.Type).Ref("attempt_history").Field("task_id").Unique().Required(),
	}
}

// Indexes of the Attempt.
func (Attempt) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("task_id", "number").Unique(),
		index.Fields("model_id", "started_at"),
		index.Fields("api_key_id", "started_at"),
		index.Fields("started_at"),
	}
}

// Annotations of the Attempt.
func (Attempt) Annotations() []schema.Annotation {
	return []schema.Annotation{entgql.Skip(entgql.SkipWhereInput, entgql.SkipOrderField)}
}
