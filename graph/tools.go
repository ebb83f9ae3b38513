//go:build tools

package graph

// The gqlgen command that graph/generate.go runs; importing it here keeps its
// dependencies in go.mod and go.sum through `go mod tidy`.
import _ "github.com/99designs/gqlgen"
