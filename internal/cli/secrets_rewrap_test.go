package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/llmsched/llm-scheduler/internal/config"
	"github.com/llmsched/llm-scheduler/internal/secrets"
	"github.com/llmsched/llm-scheduler/internal/store"
)

// TestCLISecretsRewrapReachesWebhookSecrets: after `secrets rewrap` with a
// new encryption key (the old one listed as previous), an API key's
// webhook secret opens with the new key alone, so the old key can be
// dropped from the configuration without losing the secret that signs the
// key's webhooks. Runs the built binary on an SQLite database.
func TestCLISecretsRewrapReachesWebhookSecrets(t *testing.T) {
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "rewrap.db")
	oldKey, newKey := secrets.GenerateKey(), secrets.GenerateKey()
	write := func(name, auth string) string {
		p := filepath.Join(dir, name)
		y := fmt.Sprintf("database: {driver: sqlite, sqlite_path: %q}\nauth: %s\n", dbPath, auth)
		if err := os.WriteFile(p, []byte(y), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	before := write("before.yaml", fmt.Sprintf("{encryption_key: %q}", oldKey))
	rotated := write("rotated.yaml", fmt.Sprintf("{encryption_key: %q, previous_encryption_keys: [%q]}", newKey, oldKey))

	res := adminCLI(t, before, "apikey", "create", "--name", "hooks", "--role", "submitter")
	if res.code != 0 {
		t.Fatalf("apikey create: exit %d: %s", res.code, res.stderr)
	}
	secret := regexp.MustCompile(`whsec_[0-9a-f]+`).FindString(res.stdout)
	if secret == "" {
		t.Fatalf("apikey create printed no webhook secret: %s", res.stdout)
	}
	res = adminCLI(t, rotated, "secrets", "rewrap")
	if res.code != 0 {
		t.Fatalf("secrets rewrap: exit %d: %s", res.code, res.stderr)
	}
	if !strings.Contains(res.stdout, "webhook secrets of 1 API keys") {
		t.Fatalf("secrets rewrap did not report the API key's webhook secret: %s", res.stdout)
	}

	// The old key is gone from the configuration: the secret still opens.
	only, err := secrets.NewKeyring(newKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := store.Open(ctx, config.Database{Driver: "sqlite", SQLitePath: dbPath})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	k, err := st.Client.APIKey.Query().Only(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !secrets.IsSealed(k.WebhookSecret) {
		t.Fatalf("the webhook secret is stored in plaintext after rewrap")
	}
	got, err := only.Open(k.WebhookSecret)
	if err != nil {
		t.Fatalf("the webhook secret does not open with the new key alone: %v", err)
	}
	if got != secret {
		t.Fatalf("the webhook secret changed in the rewrap: %q, want %q", got, secret)
	}
}
