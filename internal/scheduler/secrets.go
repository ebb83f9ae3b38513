package scheduler

import (
	"fmt"

	"github.com/llmsched/llm-scheduler/internal/secrets"
)

// IsSecretKey reports whether a config key names a credential
// (secrets.IsSecretKey: api_key, token, openaiApiKey, credentials, ...).
func IsSecretKey(k string) bool { return secrets.IsSecretKey(k) }

// Mask shows a secret as its last four characters (secrets.Mask).
func Mask(v string) string { return secrets.Mask(v) }

// MaskConfig returns a copy of a model config with every credential
// masked: values under secret keys and headers at any depth, numbers and
// lists included, and the password and credential query values of URLs.
func MaskConfig(cfg map[string]any) map[string]any { return secrets.MaskConfig(cfg) }

// destinationKeys are the config keys that say where a model's requests
// go.
var destinationKeys = []string{"base_url", "url", "host", "port"}

// UnmaskConfig merges an update into the stored config: a secret sent back
// exactly as MaskConfig showed it keeps the stored value. A stored secret
// never follows a changed destination: when the update changes base_url,
// url, host or port and sends a secret back masked, it is refused (the
// error names the secret), so whoever may edit a model cannot point it at
// a host of theirs and receive the key. Re-entering the secret is fine.
func UnmaskConfig(in, stored map[string]any) (map[string]any, error) {
	out, kept := secrets.Unmask(in, stored)
	if len(kept) == 0 {
		return out, nil
	}
	for _, k := range destinationKeys {
		if fmt.Sprint(out[k]) != fmt.Sprint(stored[k]) {
			return nil, Invalid("config."+kept[0], "must be entered again when config.%s changes: a stored secret is never sent to a new destination", k)
		}
	}
	return out, nil
}
