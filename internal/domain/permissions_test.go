package domain_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/llmsched/llm-scheduler/internal/domain"
)

// TestRoleGrants pins the permissions table that REST, GraphQL and the
// GraphQL websocket share: each role's grants, most powerful role first.
func TestRoleGrants(t *testing.T) {
	want := map[domain.Role][]domain.Permission{
		domain.RoleAdmin:     {domain.PermRead, domain.PermSubmit, domain.PermOperate, domain.PermModelStatus, domain.PermAdmin},
		domain.RoleOperator:  {domain.PermRead, domain.PermSubmit, domain.PermOperate, domain.PermModelStatus},
		domain.RoleSubmitter: {domain.PermRead, domain.PermSubmit},
		domain.RoleViewer:    {domain.PermRead},
		"":                   nil,
		"root":               nil,
	}
	got := map[domain.Role][]domain.Permission{}
	for role := range want {
		got[role] = nil
		for _, p := range domain.Permissions() {
			if role.Can(p) {
				got[role] = append(got[role], p)
			}
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("grants (-want +got):\n%s", diff)
	}
}

// TestPermissionNames pins the names that appear in FORBIDDEN messages
// ("needs model_status") and that clients may match on.
func TestPermissionNames(t *testing.T) {
	want := []domain.Permission{"read", "submit", "operate", "model_status", "admin"}
	if diff := cmp.Diff(want, domain.Permissions()); diff != "" {
		t.Errorf("permissions (-want +got):\n%s", diff)
	}
}
