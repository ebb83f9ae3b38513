// Package domain holds the scheduler's vocabulary: task states and the
// transitions allowed between them, task types, priorities, model types,
// model statuses, and API key roles with the permissions table that REST,
// GraphQL and the GraphQL websocket check. It is a leaf package (it imports
// nothing of ours), so the ent schema, the domain service, the workers and
// both API layers share one definition of every enum.
package domain
