// Package bench is the `llm-scheduler bench` subcommand: it measures the
// scheduler against raw asynq on the same Redis and the same database, in
// one run, and checks the performance targets listed in
// docs/performance.md.
//
// On MySQL + Redis the scheduler under test runs as a child process (the
// same binary re-executed with `serve`) on its own database and its own
// Redis database number, so its peak RSS can be read from /proc. On the
// embedded default (SQLite + in-process Redis) it runs inside the bench
// process, exactly as `llm-scheduler` with no configuration would.
//
// Every throughput figure is a ratio against a baseline measured in the
// same run, because the machines it runs on are shared and noisy.
package bench
