package graph

// gqlgen runs from the module root, after ent (./ent sorts before ./graph in
// `go generate ./...`, and entgql writes graph/ent.graphqls).
//go:generate sh -c "cd .. && go run github.com/99designs/gqlgen generate --config gqlgen.yml"
