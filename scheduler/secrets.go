package scheduler

import (
	"fmt"
	"sort"
	"strings"

	"github.com/llmsched/llm-scheduler/ent"
	"github.com/llmsched/llm-scheduler/secrets"
)

// MaskedConfig is a model's config as clients see it: secrets decrypted,
// then masked ("...abcd"), so people can tell keys apart without ever
// reading one. If the secrets cannot be opened (a lost key) they are masked
// as stored.
func (s *Service) MaskedConfig(m *ent.Model) map[string]any {
	opened, err := secrets.OpenModelConfig(s.cfg, m.Config)
	if err != nil {
		s.log.Warn("model secrets cannot be decrypted; showing them fully masked", "model_id", m.ID, "err", err)
		return MaskConfig(m.Config)
	}
	return MaskConfig(opened)
}

// secretKeys are config keys whose values are credentials.
var secretKeys = []string{"api_key", "apikey", "key", "token", "secret", "password", "authorization", "access_token"}

// IsSecretKey reports whether a config key holds a credential.
func IsSecretKey(k string) bool {
	k = strings.ToLower(k)
	for _, s := range secretKeys {
		if k == s || strings.HasSuffix(k, "_"+s) || strings.HasSuffix(k, "-"+s) {
			return true
		}
	}
	return false
}

// Mask shows a secret as its last four characters ("...abcd"), enough to
// tell keys apart, or as "****" when it is shorter than 16: four of a
// short key are too large a part of it.
func Mask(v string) string {
	if len(v) < 16 {
		return "****"
	}
	return "..." + v[len(v)-4:]
}

// MaskConfig returns a copy of a model config with every credential masked,
// including header values.
func MaskConfig(cfg map[string]any) map[string]any {
	if cfg == nil {
		return nil
	}
	out := make(map[string]any, len(cfg))
	for k, v := range cfg {
		switch {
		case IsSecretKey(k):
			if s, ok := v.(string); ok {
				out[k] = Mask(s)
			} else {
				out[k] = "****"
			}
		case strings.EqualFold(k, "headers"):
			if hs, ok := v.(map[string]any); ok {
				masked := make(map[string]any, len(hs))
				for hk, hv := range hs {
					if s, ok := hv.(string); ok {
						masked[hk] = Mask(s)
					} else {
						masked[hk] = "****"
					}
				}
				out[k] = masked
			} else {
				out[k] = v
			}
		default:
			out[k] = v
		}
	}
	return out
}

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
	out, kept := unmask(in, stored)
	if len(kept) == 0 {
		return out, nil
	}
	for _, k := range destinationKeys {
		if fmt.Sprint(in[k]) != fmt.Sprint(stored[k]) {
			return nil, Invalid("config."+kept[0], "must be entered again when config.%s changes: a stored secret is never sent to a new destination", k)
		}
	}
	return out, nil
}

// unmask restores masked secrets and lists the fields it restored.
func unmask(in, stored map[string]any) (map[string]any, []string) {
	var kept []string
	out := make(map[string]any, len(in))
	for k, v := range in {
		out[k] = v
		s, ok := v.(string)
		if !ok {
			if hs, ok := v.(map[string]any); ok && strings.EqualFold(k, "headers") {
				old, _ := stored[k].(map[string]any)
				merged := make(map[string]any, len(hs))
				for hk, hv := range hs {
					merged[hk] = hv
					if hs, ok := hv.(string); ok {
						if ov, ok := old[hk].(string); ok && Mask(ov) == hs {
							merged[hk] = ov
							kept = append(kept, k+"."+hk)
						}
					}
				}
				out[k] = merged
			}
			continue
		}
		if IsSecretKey(k) {
			if old, ok := stored[k].(string); ok && Mask(old) == s {
				out[k] = old
				kept = append(kept, k)
			}
		}
	}
	sort.Strings(kept)
	return out, kept
}
