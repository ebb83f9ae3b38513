// Package server wires HTTP: the REST compatibility layer under /api/v1,
// GraphQL on /graphql, the playground, asynqmon on /monitoring, Prometheus
// metrics on /metrics, and the embedded React dashboard on /. Handlers are
// thin adapters over scheduler.Service.
package server
