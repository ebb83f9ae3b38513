package schema

import (
	"slices"
	"time"

	"entgo.io/contrib/entgql"
	"entgo.io/ent"
	"entgo.io/ent/dialect"
	"entgo.io/ent/schema"
	"entgo.io/ent/schema/edge"
	"entgo.io/ent/schema/field"
	"entgo.io/ent/schema/index"

	"github.com/llmsched/llm-scheduler/internal/domain"
)

// Task is one LLM job: an input run against a model.
type Task struct {
	ent.Schema
}

func micros() map[string]string { return map[string]string{dialect.MySQL: "datetime(6)"} }

// Fields of the Task, in column order: what was asked, how it ended, its
// attempts, its tokens, who submitted it, its cost, and its times.
func (Task) Fields() []ent.Field {
	return slices.Concat(taskRequestFields(), taskOutcomeFields(), taskAttemptFields(), taskTokenFields(),
		taskSubmitterFields(), taskCostFields(), taskTimeFields())
}

// taskRequestFields are what the submitter asked for: model, type, input,
// settings and priority.
func taskRequestFields() []ent.Field {
	return []ent.Field{
		// The id is an order field so that the GraphQL task connection can
		// break ties in the direction of the requested order
		// (scheduler.TaskConnection): entgql's own tiebreak is id ascending
		// whatever the direction, which no index serves.
		field.Int("id").
			Annotations(entgql.OrderField("ID")),
		field.Int("model_id"),
		field.Enum("type").GoType(domain.TaskType("")).
			Annotations(entgql.Type("TaskType"), entgql.Skip(entgql.SkipEnumField), entgql.OrderField("TYPE")),
		// Prompt is the task's input ("input" in the REST API and the column).
		// It is not called Input because entgql generates SetInput methods.
		// GraphQL exposes it as Task.input (graph/schema.graphqls).
		field.Text("prompt").StorageKey("input").
			Annotations(entgql.Skip(entgql.SkipAll)),
		// Params carries type-specific settings: target_language,
		// source_language, length, system_prompt, max_tokens, temperature,
		// messages (custom).
		field.JSON("params", map[string]any{}).Optional().
			Annotations(entgql.Type("Map")),
		field.Int("priority").Default(int(domain.PriorityMedium)).Range(1, 3).
			Annotations(entgql.OrderField("PRIORITY")),
	}
}

// taskOutcomeFields are the task's state and what it produced.
func taskOutcomeFields() []ent.Field {
	return []ent.Field{
		field.Enum("status").GoType(domain.TaskStatus("")).Default(string(domain.StatusPending)).
			Annotations(entgql.Type("TaskStatus"), entgql.Skip(entgql.SkipEnumField), entgql.OrderField("STATUS")),
		field.Text("output").Optional().
			Annotations(entgql.Skip(entgql.SkipWhereInput)),
		// Embedding is the vector of an embedding task.
		field.JSON("embedding", []float64{}).Optional(),
		field.Text("error").Optional().
			Annotations(entgql.Skip(entgql.SkipWhereInput)),
	}
}

// taskAttemptFields count and bound the task's tries.
func taskAttemptFields() []ent.Field {
	return []ent.Field{
		// Attempts counts tries started so far, including a lost one.
		field.Int("attempts").Default(0).NonNegative(),
		field.Int("max_retries").NonNegative(),
		// AttemptBase is the attempt count when the task was last retried by
		// hand; automatic retries left = max_retries - (attempts - attempt_base - 1).
		field.Int("attempt_base").Default(0).NonNegative().
			Annotations(entgql.Skip(entgql.SkipAll)),
		// TimeoutSeconds overrides queue.task_timeout for each attempt.
		field.Int("timeout_seconds").Optional().Nillable().Positive(),
	}
}

func taskTokenFields() []ent.Field {
	return []ent.Field{
		field.Int("prompt_tokens").Default(0).NonNegative(),
		field.Int("completion_tokens").Default(0).NonNegative(),
		field.Int("total_tokens").Default(0).NonNegative(),
		// TokenSource says where the token counts came from: "reported"
		// by the provider or "estimated" from the text. Empty until the
		// task completes.
		field.String("token_source").Optional(),
	}
}

// taskSubmitterFields say who submitted the task and how: its
// idempotency key, API key, caller and weight.
func taskSubmitterFields() []ent.Field {
	return []ent.Field{
		// IdempotencyKey makes a repeated create return the first task.
		field.String("idempotency_key").Optional().Nillable().MaxLen(255).
			Annotations(entgql.Skip(entgql.SkipAll)),
		// RequestHash is a digest of the create request, to tell a replay
		// from a different request reusing a key.
		field.String("request_hash").Optional().
			Annotations(entgql.Skip(entgql.SkipAll)),
		// APIKeyID is the key that submitted the task, when auth is on.
		field.Int("api_key_id").Optional().Nillable().
			Annotations(entgql.Skip(entgql.SkipWhereInput, entgql.SkipOrderField)),
		// Caller is who submitted the task: the API key's name, else the
		// caller label of the request, else "anonymous". Fair share
		// (docs/fairness.md) takes turns between callers.
		field.String("caller").Default(domain.AnonymousCaller).MaxLen(128),
		// Weight is the submitting key's weight when the task was created
		// (1 without a key): its caller's share in fair share.
		field.Int("weight").Default(1).Range(1, 1000).
			Annotations(entgql.Skip(entgql.SkipAll)),
	}
}

func taskCostFields() []ent.Field {
	return []ent.Field{
		// Cost totals the costs of every attempt, failed ones included;
		// CostEstimated is set when any of them rests on estimated tokens.
		field.Float("cost").Default(0),
		field.Bool("cost_estimated").Default(false),
	}
}

// taskTimeFields are the task's times, its schedule and its callback on
// ending.
func taskTimeFields() []ent.Field {
	return []ent.Field{
		field.Time("created_at").Default(time.Now).Immutable().SchemaType(micros()).
			Annotations(entgql.OrderField("CREATED_AT")),
		field.Time("updated_at").Default(time.Now).UpdateDefault(time.Now).SchemaType(micros()).
			Annotations(entgql.OrderField("UPDATED_AT")),
		field.Time("started_at").Optional().Nillable().SchemaType(micros()),
		field.Time("finished_at").Optional().Nillable().SchemaType(micros()).
			Annotations(entgql.OrderField("FINISHED_AT")),
		// NextAttemptAt is when a task waiting on retry backoff runs again.
		field.Time("next_attempt_at").Optional().Nillable().SchemaType(micros()),
		// RunAt is when the submitter asked the task to run (run_at or
		// delay_seconds on create); absent for a task that runs at once.
		field.Time("run_at").Optional().Nillable().SchemaType(micros()).
			Annotations(entgql.OrderField("RUN_AT")),
		// Scheduled is true while a pending task waits for its run_at: it is
		// in no queue yet. The due scanner (jobs/due.go) clears it and
		// admits the task when run_at comes; the reconciler leaves such
		// tasks alone.
		field.Bool("scheduled").Default(false).
			Annotations(entgql.Skip(entgql.SkipAll)),
		// CallbackURL receives a signed POST when the task reaches
		// completed, failed or cancelled (docs/webhooks.md): the request's
		// callback_url, else its API key's default. Set only at create.
		field.String("callback_url").Optional().Nillable().MaxLen(2048).Immutable().
			Annotations(entgql.Skip(entgql.SkipWhereInput, entgql.SkipOrderField)),
	}
}

// Edges of the Task.
func (Task) Edges() []ent.Edge {
	return []ent.Edge{
		edge.From("model", Model.Type).Ref("tasks").Field("model_id").Unique().Required(),
		edge.To("attempt_history", Attempt.Type).
			Annotations(entgql.Skip(entgql.SkipWhereInput)),
		edge.To("webhook_deliveries", WebhookDelivery.Type).
			Annotations(entgql.Skip(entgql.SkipWhereInput)),
	}
}

// Indexes of the Task.
func (Task) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("status", "model_id"),
		// The reconciler's window: pending tasks changed since its last
		// round (jobs.Reconciler.readmit), without walking the backlog.
		index.Fields("status", "updated_at"),
		index.Fields("model_id", "status", "priority", "created_at"),
		index.Fields("created_at"),
		index.Fields("idempotency_key").Unique(),
		index.Fields("caller"),
		index.Fields("scheduled", "run_at"),
	}
}

// Annotations of the Task.
func (Task) Annotations() []schema.Annotation {
	return []schema.Annotation{
		entgql.RelayConnection(),
		entgql.QueryField(),
		entgql.MultiOrder(),
	}
}
