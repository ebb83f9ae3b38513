// Package metrics exposes the scheduler to Prometheus. Each process owns a
// Metrics with its own registry, and every collector lives in it (no
// package-global collectors, so two processes in one test binary count
// apart):
//
//   - from the worker's hooks: pickup latency and run duration histograms,
//     provider errors by kind, tokens used;
//   - from the event bus: retries (automatic and manual);
//   - from the REST and GraphQL error paths: rejected submissions by code
//     (Rejected; the server hands its Metrics to both);
//   - on an api process, read from the database on each scrape: tasks by
//     status and model, queue depth by model and priority, model info;
//   - Go runtime and process metrics.
//
// Series counted in a process (histograms, counters) are summed across
// processes in queries; database-derived gauges are exported by api
// processes only, so that a cluster does not report them once per worker.
// deploy/alerts.yml and deploy/grafana-dashboard.json use these names.
package metrics
