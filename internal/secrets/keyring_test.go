package secrets

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/llmsched/llm-scheduler/internal/config"
)

func isSecret(k string) bool { return k == "api_key" || k == "token" }

func mustKeyring(t *testing.T, primary string, previous ...string) *Keyring {
	t.Helper()
	kr, err := NewKeyring(primary, previous)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func TestSealOpenRoundTrip(t *testing.T) {
	kr := mustKeyring(t, GenerateKey())
	sealed, err := kr.Seal("sk-live-1234567890")
	if err != nil {
		t.Fatal(err)
	}
	if !IsSealed(sealed) || strings.Contains(sealed, "sk-live") {
		t.Fatalf("sealed value %q is not an opaque envelope", sealed)
	}
	again, _ := kr.Seal("sk-live-1234567890")
	if again == sealed {
		t.Fatal("two seals of one value are equal: the nonce is not random")
	}
	if resealed, _ := kr.Seal(sealed); resealed != sealed {
		t.Fatal("sealing an envelope must leave it as is")
	}
	plain, err := kr.Open(sealed)
	if err != nil || plain != "sk-live-1234567890" {
		t.Fatalf("Open = %q, %v", plain, err)
	}
	if plain, err := kr.Open("legacy-plaintext"); err != nil || plain != "legacy-plaintext" {
		t.Fatalf("Open(plaintext) = %q, %v; want it unchanged", plain, err)
	}
}

func TestOpenRefusesTamperingAndUnknownKeys(t *testing.T) {
	kr := mustKeyring(t, GenerateKey())
	sealed, _ := kr.Seal("secret-value-xyz")
	// Flip one character of the ciphertext.
	i := len(sealed) - 3
	flipped := []byte(sealed)
	if flipped[i] == 'A' {
		flipped[i] = 'B'
	} else {
		flipped[i] = 'A'
	}
	other := mustKeyring(t, GenerateKey())
	var nilRing *Keyring
	for _, tc := range []struct {
		desc string
		kr   *Keyring
		v    string
		want string
	}{
		{"tampered ciphertext", kr, string(flipped), "message authentication failed"},
		{"another key", other, sealed, "neither auth.encryption_key nor in auth.previous_encryption_keys"},
		{"no key configured", nilRing, sealed, "no encryption key is configured"},
		{"malformed", kr, Prefix + "nocolon", "malformed"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			_, err := tc.kr.Open(tc.v)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestRotation(t *testing.T) {
	oldKey, newKey := GenerateKey(), GenerateKey()
	old := mustKeyring(t, oldKey)
	sealedOld, _ := old.Seal("rotate-me-please")
	rotated := mustKeyring(t, newKey, oldKey)
	if got, err := rotated.Open(sealedOld); err != nil || got != "rotate-me-please" {
		t.Fatalf("previous key does not open: %q, %v", got, err)
	}
	if !rotated.NeedsRewrap(sealedOld) {
		t.Fatal("a value sealed with a previous key must need a rewrap")
	}
	sealedNew, _ := rotated.Seal("rotate-me-please")
	if rotated.NeedsRewrap(sealedNew) {
		t.Fatal("a value sealed with the primary key must not need a rewrap")
	}
	if _, err := mustKeyring(t, newKey).Open(sealedOld); err == nil {
		t.Fatal("after dropping the previous key its envelopes must not open")
	}
}

func TestSealConfig(t *testing.T) {
	kr := mustKeyring(t, GenerateKey())
	in := map[string]any{
		"api_key":  "sk-abcdefghijkl",
		"model":    "gpt-4",
		"port":     8000.0,
		"headers":  map[string]any{"Authorization": "Bearer tok-123456789"},
		"token":    42.0, // a number under a secret key: sealed as its text
		"base_url": "http://example.invalid",
	}
	sealed, err := kr.SealConfig(in, isSecret)
	if err != nil {
		t.Fatal(err)
	}
	if !IsSealed(sealed["api_key"].(string)) || !IsSealed(sealed["headers"].(map[string]any)["Authorization"].(string)) {
		t.Fatalf("secrets not sealed: %v", sealed)
	}
	if sealed["model"] != "gpt-4" || sealed["base_url"] != "http://example.invalid" || sealed["port"] != 8000.0 {
		t.Fatalf("non-secret values changed: %v", sealed)
	}
	if tok, _ := sealed["token"].(string); !IsSealed(tok) {
		t.Fatalf("a numeric secret is stored in plaintext: %v", sealed["token"])
	}
	if in["api_key"] != "sk-abcdefghijkl" {
		t.Fatal("SealConfig modified its input")
	}
	opened, err := kr.OpenConfig(sealed)
	if err != nil {
		t.Fatal(err)
	}
	want := maps.Clone(in)
	want["token"] = "42"
	if diff := cmp.Diff(want, opened); diff != "" {
		t.Fatalf("open(seal(cfg)) differs (-want +got):\n%s", diff)
	}
	var plaintext *Keyring
	same, err := plaintext.SealConfig(in, isSecret)
	if err != nil || same["api_key"] != "sk-abcdefghijkl" {
		t.Fatalf("plaintext mode must store values unchanged: %v, %v", same, err)
	}
}

func TestParseKey(t *testing.T) {
	for _, tc := range []struct {
		desc, key, wantErr string
	}{
		{"valid", GenerateKey(), ""},
		{"too short", "c2hvcnQ=", "must be 32 bytes"},
		{"not base64", "!!!not-base64!!!", "not valid base64"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			_, err := ParseKey(tc.key)
			if (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("ParseKey error = %v, want %q", err, tc.wantErr)
			}
		})
	}
	if _, err := NewKeyring("", []string{GenerateKey()}); err == nil {
		t.Fatal("previous keys without a primary key must be refused")
	}
}

func TestResolve(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))

	t.Run("production without a key is refused", func(t *testing.T) {
		c := config.Defaults(false)
		c.App.Env = "production"
		if err := Resolve(&c, log); err == nil || !strings.Contains(err.Error(), "required") {
			t.Fatalf("Resolve = %v, want a refusal", err)
		}
	})
	t.Run("a configured key is validated", func(t *testing.T) {
		c := config.Defaults(false)
		c.Auth.EncryptionKey = "short"
		if err := Resolve(&c, log); err == nil {
			t.Fatal("an invalid key must be refused")
		}
	})
	t.Run("embedded default persists one key for every process", func(t *testing.T) {
		dir := t.TempDir()
		keys := make([]string, 4)
		var wg sync.WaitGroup
		for i := range keys {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := config.Defaults(true)
				c.Database.SQLitePath = filepath.Join(dir, "db.sqlite")
				if err := Resolve(&c, slog.New(slog.DiscardHandler)); err != nil {
					t.Error(err)
				}
				keys[i] = c.Auth.EncryptionKey
			}()
		}
		wg.Wait()
		for _, k := range keys {
			if k == "" || k != keys[0] {
				t.Fatalf("processes disagree on the key: %q", keys)
			}
		}
		st, err := os.Stat(filepath.Join(dir, KeyFileName))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Fatalf("key file mode = %v, want 0600", st.Mode().Perm())
		}
	})
	t.Run("development on mysql warns about plaintext", func(t *testing.T) {
		logs.Reset()
		c := config.Defaults(false)
		if err := Resolve(&c, log); err != nil {
			t.Fatal(err)
		}
		if c.Auth.EncryptionKey != "" || !strings.Contains(logs.String(), "PLAINTEXT") {
			t.Fatalf("want plaintext mode with a loud warning, got key %q and logs %q", c.Auth.EncryptionKey, logs.String())
		}
	})
}

func TestWeakKeysAreRefusedInProduction(t *testing.T) {
	zero := base64.StdEncoding.EncodeToString(make([]byte, 32))
	padded := base64.StdEncoding.EncodeToString([]byte("password12345678password12345678"))
	for _, k := range []string{zero, padded} {
		c := config.Defaults(false)
		c.App.Env = "production"
		c.Auth.EncryptionKey = k
		err := Resolve(&c, slog.New(slog.DiscardHandler))
		if err == nil || !strings.Contains(err.Error(), "auth.encryption_key is weak") {
			t.Errorf("key %s: %v, want refused as weak", k, err)
		}
	}
	for i := 0; i < 100; i++ {
		if k, _ := ParseKey(GenerateKey()); Weak(k) {
			t.Fatal("a generated key is called weak")
		}
	}
}

// TestCredentialsByShapeNotOnlyName: credentials nested at any depth, in
// lists, under camelCase names, and inside URLs are sealed, masked and
// kept when sent back masked; everything else is left as it is.
func TestCredentialsByShapeNotOnlyName(t *testing.T) {
	kr := mustKeyring(t, GenerateKey())
	in := map[string]any{
		"auth":          map[string]any{"token": "tok-nested-0123456789", "scheme": "basic"},
		"openaiApiKey":  "sk-camel-0123456789",
		"credentials":   []any{map[string]any{"secret": "list-secret-0123456789"}},
		"bearer":        "bearer-0123456789abc",
		"pin_token":     123456789.0,
		"options":       map[string]any{"headers": map[string]any{"X-Key": "hdr-0123456789abcdef"}, "temperature": 0.5},
		"url":           "https://svc:pw-0123456789@api.example.com/v1?key=q-0123456789&mode=fast",
		"base_url":      "https://api.example.com/v1?mode=fast",
		"model":         "m",
		"keyboard_type": "qwerty", // not a key: a word that starts with one
	}
	plain := []string{"tok-nested-0123456789", "sk-camel-0123456789", "list-secret-0123456789", "bearer-0123456789abc",
		"123456789", "hdr-0123456789abcdef", "pw-0123456789", "q-0123456789"}
	sealed, err := kr.SealConfig(in, IsSecretKey)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(sealed)
	masked := MaskConfig(in)
	shown, _ := json.Marshal(masked)
	for _, p := range plain {
		if strings.Contains(string(raw), p) {
			t.Errorf("sealed config holds %q: %s", p, raw)
		}
		if strings.Contains(string(shown), p) {
			t.Errorf("masked config shows %q: %s", p, shown)
		}
	}
	if sealed["base_url"] != in["base_url"] || sealed["model"] != "m" || sealed["keyboard_type"] != "qwerty" ||
		sealed["options"].(map[string]any)["temperature"] != 0.5 || sealed["auth"].(map[string]any)["scheme"] != "basic" {
		t.Errorf("values that are not credentials changed: %s", raw)
	}
	if got := masked["url"]; got != "https://svc:****@api.example.com/v1?key=****&mode=fast" {
		t.Errorf("masked url = %v", got)
	}
	opened, err := kr.OpenConfig(sealed)
	if err != nil {
		t.Fatal(err)
	}
	want := maps.Clone(in)
	want["pin_token"] = "123456789"
	if diff := cmp.Diff(want, opened); diff != "" {
		t.Fatalf("open(seal(cfg)) differs (-want +got):\n%s", diff)
	}
	back, kept := Unmask(masked, want)
	if diff := cmp.Diff(want, back); diff != "" {
		t.Fatalf("the masked config sent back does not keep the stored one (-want +got):\n%s", diff)
	}
	if len(kept) != len(plain)-1 { // the URL's two credentials are one value
		t.Errorf("kept %v, want the %d credentials", kept, len(plain)-1)
	}
	r := NewRedactor(want)
	msg := r.Redact(`Post "https://svc:pw-0123456789@api.example.com/v1?key=q-0123456789": refused; echo Bearer bearer-0123456789abc`)
	for _, p := range plain {
		if strings.Contains(msg, p) {
			t.Errorf("redacted message still holds %q: %s", p, msg)
		}
	}
}

// TestOpenConfigOpensSealedValuesWherever: opening does not depend on the
// credential rule (a value sealed under a rule that named more keys, as
// SealConfig's isSecret may, still opens), and values that are not sealed
// come back as they were, numbers under secret keys included.
func TestOpenConfigOpensSealedValuesWherever(t *testing.T) {
	kr := mustKeyring(t, GenerateKey())
	sealedNote, err := kr.Seal("note-0123456789")
	if err != nil {
		t.Fatal(err)
	}
	sealedKey, err := kr.Seal("sk-0123456789abcdef")
	if err != nil {
		t.Fatal(err)
	}
	stored := map[string]any{
		"note":    sealedNote, // not a credential name
		"list":    []any{"plain", sealedNote, 3.0},
		"api_key": sealedKey,
		"token":   42.0, // plaintext mode stored a numeric secret as is
		"url":     "https://u:pw-0123456789@h.example/v1",
		"model":   "m",
	}
	opened, err := kr.OpenConfig(stored)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"note":    "note-0123456789",
		"list":    []any{"plain", "note-0123456789", 3.0},
		"api_key": "sk-0123456789abcdef",
		"token":   42.0,
		"url":     "https://u:pw-0123456789@h.example/v1",
		"model":   "m",
	}
	if diff := cmp.Diff(want, opened); diff != "" {
		t.Fatalf("OpenConfig (-want +got):\n%s", diff)
	}
	if got, err := kr.OpenConfig(nil); got != nil || err != nil {
		t.Fatalf("OpenConfig(nil) = %v, %v; want nil, nil", got, err)
	}
	other := mustKeyring(t, GenerateKey())
	if _, err := other.OpenConfig(map[string]any{"nested": map[string]any{"x": sealedNote}}); err == nil || !strings.Contains(err.Error(), "config.nested.x") {
		t.Fatalf("opening with the wrong key: err %v, want one naming config.nested.x", err)
	}
}
