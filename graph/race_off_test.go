//go:build !race

package graph_test

const raceSlowdown = 1
