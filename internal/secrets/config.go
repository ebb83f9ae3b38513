package secrets

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/llmsched/llm-scheduler/internal/config"
)

// SealConfig returns a copy of a model config whose credentials (see
// fields.go: values under keys for which isSecret is true or under
// "headers", at any depth, and URLs carrying credentials) are sealed.
// Values already sealed stay as they are.
func (kr *Keyring) SealConfig(cfg map[string]any, isSecret func(string) bool) (map[string]any, error) {
	return walkSecrets(cfg, isSecret, kr.Seal)
}

// OpenConfig returns a copy of a model config with every sealed value
// opened, ready for a provider. A sealed value is opened wherever it sits,
// under a credential key or not.
func (kr *Keyring) OpenConfig(cfg map[string]any) (map[string]any, error) {
	return walker{strings: true, visit: func(l leaf) (any, error) {
		s, ok := l.value.(string)
		if !ok || !IsSealed(s) {
			return l.value, nil
		}
		o, err := kr.Open(s)
		if err != nil {
			return nil, fmt.Errorf("config.%s: %w", l.path, err)
		}
		return o, nil
	}}.config(cfg)
}

// walkSecrets applies f to the text of every credential of cfg.
func walkSecrets(cfg map[string]any, isSecret func(string) bool, f func(string) (string, error)) (map[string]any, error) {
	return walker{isSecret: isSecret, visit: func(l leaf) (any, error) {
		s, err := f(l.text)
		if err != nil {
			return nil, fmt.Errorf("config.%s: %w", l.path, err)
		}
		return s, nil
	}}.config(cfg)
}

// FromConfig builds the keyring of a configuration (nil in plaintext mode).
// Call Resolve first at start-up.
func FromConfig(c *config.Config) (*Keyring, error) {
	return NewKeyring(c.Auth.EncryptionKey, c.Auth.PreviousEncryptionKeys)
}

// Weak reports whether a key is unlike random bytes: fewer than 16
// distinct byte values in 32 (all zeros, a repeated character, a short
// password padded out). 32 random bytes have about 30 distinct values;
// fewer than 16 is vanishingly unlikely (below 10^-12).
func Weak(key []byte) bool {
	var seen [256]bool
	n := 0
	for _, b := range key {
		if !seen[b] {
			seen[b] = true
			n++
		}
	}
	return n < 16
}

// KeyFileName is the embedded default's generated key, next to the SQLite
// database.
const KeyFileName = "encryption.key"

// Resolve makes sure c has a usable encryption key, following the rules in
// the package doc: a configured key is validated; without one, production
// is refused, the embedded SQLite default gets a generated key persisted
// next to its database (shared by every process on that file), and any
// other setup runs in plaintext mode with a loud warning.
func Resolve(c *config.Config, log *slog.Logger) error {
	if c.Auth.EncryptionKey != "" {
		kr, err := FromConfig(c)
		if err != nil {
			return err
		}
		if k, err := ParseKey(c.Auth.EncryptionKey); err == nil && Weak(k) {
			if c.Production() {
				return errors.New("auth.encryption_key is weak (too few distinct bytes, e.g. all zeros): " +
					"generate one with `llm-scheduler secrets genkey` or `head -c 32 /dev/urandom | base64`")
			}
			log.Warn("auth.encryption_key is weak (too few distinct bytes, e.g. all zeros); production refuses it")
		}
		log.Info("provider secrets are encrypted at rest", "key_id", kr.KeyID(),
			"previous_keys", len(c.Auth.PreviousEncryptionKeys))
		return nil
	}
	if len(c.Auth.PreviousEncryptionKeys) > 0 {
		return errors.New("auth.previous_encryption_keys is set but auth.encryption_key is not")
	}
	if c.Production() {
		return errors.New("auth.encryption_key (env ENCRYPTION_KEY) is required when app.env is production: " +
			"generate one with `head -c 32 /dev/urandom | base64` and see docs/security.md")
	}
	if c.Database.Driver == "sqlite" {
		path := filepath.Join(filepath.Dir(c.Database.SQLitePath), KeyFileName)
		k, created, err := loadOrCreateKeyFile(path)
		if err != nil {
			return err
		}
		c.Auth.EncryptionKey = k
		kr, err := FromConfig(c)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if created {
			log.Warn("generated an encryption key for provider secrets; keep it with the database (losing it makes stored provider keys unreadable)",
				"path", path, "key_id", kr.KeyID())
		} else {
			log.Info("provider secrets are encrypted at rest with the key file next to the database", "path", path, "key_id", kr.KeyID())
		}
		return nil
	}
	log.Warn("NO ENCRYPTION KEY: provider credentials are stored in PLAINTEXT in the database. " +
		"Set auth.encryption_key or ENCRYPTION_KEY (32 bytes, base64); production refuses to start without it.")
	return nil
}

// loadOrCreateKeyFile reads the key at path, creating it (mode 0600) when
// absent. The key is written to a temporary file and hard-linked into place,
// so concurrent processes agree on one complete key.
func loadOrCreateKeyFile(path string) (key string, created bool, err error) {
	read := func() (string, error) {
		raw, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("read encryption key file: %w", err)
		}
		return strings.TrimSpace(string(raw)), nil
	}
	if _, err := os.Stat(path); err == nil {
		key, err := read()
		return key, false, err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", false, fmt.Errorf("create encryption key file: %w", err)
	}
	tmp, err := os.CreateTemp(dir, KeyFileName+".*")
	if err != nil {
		return "", false, fmt.Errorf("create encryption key file: %w", err)
	}
	// After the rename below there is nothing left to remove; when a step
	// before it fails, that step's error is the one returned.
	defer func() { _ = os.Remove(tmp.Name()) }()
	key = GenerateKey()
	if _, err := tmp.WriteString(key + "\n"); err != nil {
		_ = tmp.Close()
		return "", false, fmt.Errorf("write encryption key file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", false, fmt.Errorf("write encryption key file: %w", err)
	}
	if err := os.Link(tmp.Name(), path); errors.Is(err, os.ErrExist) {
		key, err := read()
		return key, false, err
	} else if err != nil {
		return "", false, fmt.Errorf("install encryption key file: %w", err)
	}
	return key, true, nil
}

// SealModelConfig seals the secrets of a model config with the keyring of
// c (a no-op in plaintext mode).
func SealModelConfig(c *config.Config, cfg map[string]any, isSecret func(string) bool) (map[string]any, error) {
	kr, err := FromConfig(c)
	if err != nil {
		return nil, err
	}
	return kr.SealConfig(cfg, isSecret)
}

// OpenModelConfig opens the sealed values of a stored model config with
// the keyring of c, for a provider. The result must never be logged or
// returned to a client.
func OpenModelConfig(c *config.Config, cfg map[string]any) (map[string]any, error) {
	kr, err := FromConfig(c)
	if err != nil {
		return nil, err
	}
	return kr.OpenConfig(cfg)
}
