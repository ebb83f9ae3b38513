package schema

import (
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

// Model is a registered LLM endpoint that tasks run against.
type Model struct {
	ent.Schema
}

// Fields of the Model.
func (Model) Fields() []ent.Field {
	return []ent.Field{
		field.String("name").NotEmpty().MaxLen(128).
			Annotations(entgql.OrderField("NAME")),
		field.Enum("type").GoType(domain.ModelType("")).
			Annotations(entgql.Type("ModelType"), entgql.Skip(entgql.SkipEnumField), entgql.OrderField("TYPE")),
		// Config is the provider's settings (base_url, api_key, model, ...).
		// Secret values are encrypted at rest and masked on the way out; the
		// GraphQL layer exposes a masked copy, never this field.
		field.JSON("config", map[string]any{}).Optional().
			Annotations(entgql.Skip(entgql.SkipAll)),
		field.Enum("status").GoType(domain.ModelStatus("")).Default(string(domain.ModelOnline)).
			Annotations(entgql.Type("ModelStatus"), entgql.Skip(entgql.SkipEnumField), entgql.OrderField("STATUS")),
		// MaxWorkers bounds how many of this model's tasks run at once across
		// the whole cluster.
		field.Int("max_workers").Positive().
			Annotations(entgql.OrderField("MAX_WORKERS")),
		// Fallbacks are model ids tried in order when a task's retries on this
		// model are exhausted by retryable errors.
		field.JSON("fallbacks", []int{}).Optional(),
		field.String("description").Optional().MaxLen(1024),
		// InputPrice and OutputPrice are what a million input (prompt) and
		// output (completion) tokens cost, in the deployment's currency;
		// nil: the model's tasks cost nothing.
		field.Float("input_price").Optional().Nillable().Min(0),
		field.Float("output_price").Optional().Nillable().Min(0),
		field.Time("created_at").Default(time.Now).Immutable().
			SchemaType(map[string]string{dialect.MySQL: "datetime(6)"}).
			Annotations(entgql.OrderField("CREATED_AT")),
		field.Time("updated_at").Default(time.Now).UpdateDefault(time.Now).
			SchemaType(map[string]string{dialect.MySQL: "datetime(6)"}),
		// DeletedAt marks a deleted model. Rows stay so that historic tasks keep
		// their model; a deleted model takes no new tasks.
		field.Time("deleted_at").Optional().Nillable().
			SchemaType(map[string]string{dialect.MySQL: "datetime(6)"}),
	}
}

// Edges of the Model.
func (Model) Edges() []ent.Edge {
	return []ent.Edge{
		edge.To("tasks", Task.Type).Annotations(entgql.RelayConnection()),
	}
}

// Indexes of the Model.
func (Model) Indexes() []ent.Index {
	return []ent.Index{
		index.Fields("name"),
	}
}

// Annotations of the Model.
func (Model) Annotations() []schema.Annotation {
	return []schema.Annotation{
		entgql.RelayConnection(),
		entgql.QueryField(),
		entgql.MultiOrder(),
	}
}
