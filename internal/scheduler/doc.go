// Package scheduler is the domain service: every rule of LLM Scheduler lives
// here. Validation, backpressure, idempotency, the task state machine (as
// conditional updates through one function), cancel, retry, model
// management, pending-task diagnosis and statistics. The REST handlers and
// GraphQL resolvers are thin adapters over Service, and the workers in jobs/
// move tasks through the same transition function.
package scheduler
