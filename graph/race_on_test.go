//go:build race

package graph_test

// raceSlowdown scales CPU budgets under the race detector, which makes
// the same code several times slower.
const raceSlowdown = 20
