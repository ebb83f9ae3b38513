// Package ent holds the ent schemas (schema/) and the code generated from
// them. Regenerate with `go generate ./...` from the module root.
package ent

//go:generate sh -c "cd .. && go run -mod=mod ./ent/entc.go"
