package apikeys_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/llmsched/llm-scheduler/ent/apikey"
	"github.com/llmsched/llm-scheduler/internal/apikeys"
	"github.com/llmsched/llm-scheduler/internal/config"
	"github.com/llmsched/llm-scheduler/internal/store"
)

func setup(t *testing.T) (*apikeys.Service, *store.Store) {
	t.Helper()
	cfg := config.Defaults(true)
	cfg.Database.SQLitePath = filepath.Join(t.TempDir(), "keys.db")
	ctx := context.Background()
	st, err := store.Open(ctx, cfg.Database)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return apikeys.New(st.Client), st
}

func TestCreateStoresOnlyTheHash(t *testing.T) {
	svc, st := setup(t)
	ctx := context.Background()
	c, err := svc.Create(ctx, "ci bot", "submitter")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(c.Secret, apikeys.KeyPrefix) || len(c.Secret) < 40 {
		t.Fatalf("key %q is not a long prefixed random key", c.Secret)
	}
	row, err := st.Client.APIKey.Query().Where(apikey.ID(c.Key.ID)).Only(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if row.Hash != apikeys.Hash(c.Secret) || row.Hash == c.Secret {
		t.Fatalf("stored hash %q is not the SHA-256 of the key", row.Hash)
	}
	if !strings.HasPrefix(c.Secret, row.Prefix) || len(row.Prefix) >= len(c.Secret)/2 {
		t.Fatalf("stored prefix %q must be a short head of the key", row.Prefix)
	}
	if row.Role != "submitter" || row.Name != "ci bot" {
		t.Fatalf("stored %s/%s", row.Name, row.Role)
	}
	// The whole key appears in no column.
	rows, err := st.DB.QueryContext(ctx, "SELECT name, role, prefix, hash FROM api_keys")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		cols := make([]string, 4)
		if err := rows.Scan(&cols[0], &cols[1], &cols[2], &cols[3]); err != nil {
			t.Fatal(err)
		}
		for _, v := range cols {
			if strings.Contains(v, c.Secret) {
				t.Fatalf("the key is stored in clear: %q", v)
			}
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	c2, err := svc.Create(ctx, "ci bot", "submitter")
	if err != nil {
		t.Fatal(err)
	}
	if c2.Secret == c.Secret {
		t.Fatal("two keys are equal")
	}
}

func TestCreateValidates(t *testing.T) {
	svc, _ := setup(t)
	for _, tc := range []struct{ desc, name, role string }{
		{"empty name", " ", "admin"},
		{"unknown role", "x", "root"},
		{"long name", strings.Repeat("n", 129), "viewer"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			if _, err := svc.Create(context.Background(), tc.name, tc.role); !errors.Is(err, apikeys.ErrInvalid) {
				t.Fatalf("Create error = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestListAndRevoke(t *testing.T) {
	svc, _ := setup(t)
	ctx := context.Background()
	a, _ := svc.Create(ctx, "a", "admin")
	b, _ := svc.Create(ctx, "b", "viewer")
	k, err := svc.Revoke(ctx, b.Key.ID)
	if err != nil || k.RevokedAt == nil {
		t.Fatalf("Revoke = %v, %v", k, err)
	}
	first := *k.RevokedAt
	k, err = svc.Revoke(ctx, b.Key.ID)
	if err != nil || !k.RevokedAt.Equal(first) {
		t.Fatalf("second revoke changed the time or failed: %v, %v", k, err)
	}
	if _, err := svc.Revoke(ctx, 999); !errors.Is(err, apikeys.ErrNotFound) {
		t.Fatalf("Revoke(999) = %v, want ErrNotFound", err)
	}
	ks, err := svc.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ks) != 2 || ks[0].ID != a.Key.ID || ks[0].RevokedAt != nil || ks[1].RevokedAt == nil {
		t.Fatalf("List = %v", ks)
	}
}

// TestHashIsStable pins the stored form of a key (hex SHA-256, FIPS 180-2's
// "abc" vector): every key row in every existing database was written with
// it, so a change would lock every caller out.
func TestHashIsStable(t *testing.T) {
	const want = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
	if got := apikeys.Hash("abc"); got != want {
		t.Errorf("Hash(%q) = %s, want %s", "abc", got, want)
	}
}
