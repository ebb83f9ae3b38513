// Command llm-scheduler queues LLM jobs and runs them against registered
// models. Run it with no arguments for the embedded default (SQLite and an
// in-process Redis); see README.md for everything else. Every command lives
// in internal/cli.
package main

import (
	"os"

	"github.com/llmsched/llm-scheduler/internal/cli"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	cli.Version = version
	os.Exit(cli.Run(os.Args[1:], os.Stdout, os.Stderr))
}
