//go:build ignore

package main

import (
	"log"

	"entgo.io/contrib/entgql"
	"entgo.io/ent/entc"
	"entgo.io/ent/entc/gen"
)

func main() {
	ex, err := entgql.NewExtension(
		entgql.WithSchemaGenerator(),
		entgql.WithSchemaPath("graph/ent.graphqls"),
		entgql.WithConfigPath("gqlgen.yml"),
		entgql.WithWhereInputs(true),
		entgql.WithNodeDescriptor(true),
	)
	if err != nil {
		log.Fatalf("creating entgql extension: %v", err)
	}
	opts := []entc.Option{entc.Extensions(ex), entc.FeatureNames("sql/execquery", "sql/lock", "sql/modifier", "sql/upsert")}
	// No gen.FeatureGlobalID: every table numbers its rows 1, 2, 3, ...
	// GraphQL node ids carry the type instead (graph/nodeid), and the node
	// resolver names the table (ent.WithFixedNodeType).
	if err := entc.Generate("./ent/schema", &gen.Config{}, opts...); err != nil {
		log.Fatalf("running ent codegen: %v", err)
	}
}
