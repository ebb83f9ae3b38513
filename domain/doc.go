// Package domain holds the scheduler's vocabulary: task states and the
// transitions allowed between them, task types, priorities, model types and
// model statuses. It is a leaf package (it imports nothing of ours), so the ent
// schema, the domain service, the workers and both API layers share one
// definition of every enum.
package domain
