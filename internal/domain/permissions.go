package domain

import "slices"

// Permission is something a caller may do. REST routes, GraphQL resolvers
// and the GraphQL websocket all check the caller's role against the same
// table, roleGrants, through Role.Can.
type Permission string

const (
	// PermRead: read tasks, models, statistics and one's own usage.
	PermRead Permission = "read"
	// PermSubmit: create tasks (REST, GraphQL, the OpenAI-compatible API).
	PermSubmit Permission = "submit"
	// PermOperate: cancel and retry tasks.
	PermOperate Permission = "operate"
	// PermModelStatus: set a model's status (enable, disable, drain).
	PermModelStatus Permission = "model_status"
	// PermAdmin: manage models, API keys and webhooks; read the system
	// configuration, /metrics and /monitoring.
	PermAdmin Permission = "admin"
)

// Permissions lists every permission, least powerful first.
func Permissions() []Permission {
	return []Permission{PermRead, PermSubmit, PermOperate, PermModelStatus, PermAdmin}
}

// roleGrants is the permissions table: what each role may do. A role not
// listed (or the empty role) may do nothing.
var roleGrants = map[Role][]Permission{
	RoleAdmin:     {PermRead, PermSubmit, PermOperate, PermModelStatus, PermAdmin},
	RoleOperator:  {PermRead, PermSubmit, PermOperate, PermModelStatus},
	RoleSubmitter: {PermRead, PermSubmit},
	RoleViewer:    {PermRead},
}

// Can reports whether the role is granted p.
func (r Role) Can(p Permission) bool { return slices.Contains(roleGrants[r], p) }
