package secrets

import (
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"unicode"
)

// Which parts of a model's config are credentials. One walk decides it for
// every use: sealing at rest (SealConfig), masking in API output
// (MaskConfig), keeping a secret sent back masked (Unmask) and redacting
// provider errors and logs (Values). A value is a credential when
//
//   - its key, or the key of any map or list it sits in, names one
//     (IsSecretKey: api_key, token, openaiApiKey, credentials, bearer, ...),
//     at any depth: auth.token, credentials[0].secret;
//   - it sits under a "headers" map, at any depth;
//   - it is a URL with a password (https://user:pass@host) or a query
//     parameter whose name names a credential (?key=..., ?api_key=...):
//     the whole URL is sealed at rest, and shown with those parts masked.
//
// A credential that is a number or a boolean is stored as its text (a key
// is a string to every provider).

// secretWords are the words (snake_case, after splitting camelCase) that
// name a credential when a key is, or ends with, one of them.
var secretWords = []string{
	"api_key", "apikey", "key", "token", "secret", "password", "passwd", "passphrase",
	"authorization", "access_token", "credential", "credentials", "bearer", "auth_token",
	"private_key", "client_secret", "signature", "sig",
}

// IsSecretKey reports whether a config key names a credential: one of
// secretWords, or a name ending in _<word>, -<word> or (camelCase) <Word>:
// api_key, openai_api_key, openaiApiKey, X-Api-Key, credentials.
func IsSecretKey(k string) bool {
	n := snake(k)
	for _, s := range secretWords {
		if n == s || strings.HasSuffix(n, "_"+s) {
			return true
		}
	}
	return false
}

// snake lower-cases k and turns camelCase humps and dashes into
// underscores: "openaiApiKey" -> "openai_api_key", "X-Api-Key" -> "x_api_key".
func snake(k string) string {
	var b strings.Builder
	prevLower := false
	for _, r := range k {
		switch {
		case r == '-' || r == ' ' || r == '.':
			b.WriteByte('_')
			prevLower = false
		case unicode.IsUpper(r):
			if prevLower {
				b.WriteByte('_')
			}
			b.WriteRune(unicode.ToLower(r))
			prevLower = false
		default:
			b.WriteRune(r)
			prevLower = unicode.IsLower(r) || unicode.IsDigit(r)
		}
	}
	return b.String()
}

// isHeaders reports whether a key holds headers (every value a credential).
func isHeaders(k string) bool { return strings.EqualFold(k, "headers") }

// leafKind says why a leaf is a credential.
type leafKind int

const (
	leafPlain  leafKind = iota
	leafSecret          // under a secret key or headers
	leafURL             // a URL carrying credentials
)

// walk copies v, replacing each credential leaf by f(path, text, kind).
// Non-credential leaves are kept as they are.
func walk(v any, path string, secret bool, isSecret func(string) bool, f func(path, text string, kind leafKind) (any, error)) (any, error) {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			w, err := walk(e, join(path, k), secret || isSecret(k) || isHeaders(k), isSecret, f)
			if err != nil {
				return nil, err
			}
			out[k] = w
		}
		return out, nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			w, err := walk(e, path+"["+strconv.Itoa(i)+"]", secret, isSecret, f)
			if err != nil {
				return nil, err
			}
			out[i] = w
		}
		return out, nil
	case string:
		switch {
		case secret:
			return f(path, x, leafSecret)
		case urlHasCredentials(x):
			return f(path, x, leafURL)
		}
		return x, nil
	case nil:
		return nil, nil
	}
	if !secret {
		return v, nil
	}
	// A number or a boolean under a secret key: its text.
	switch x := v.(type) {
	case float64:
		return f(path, strconv.FormatFloat(x, 'f', -1, 64), leafSecret)
	case json.Number:
		return f(path, x.String(), leafSecret)
	}
	return f(path, fmt.Sprint(v), leafSecret)
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

// walkConfig applies walk to a whole config.
func walkConfig(cfg map[string]any, f func(path, text string, kind leafKind) (any, error)) (map[string]any, error) {
	return walkWith(cfg, IsSecretKey, f)
}

// walkWith is walkConfig with another rule for secret key names.
func walkWith(cfg map[string]any, isSecret func(string) bool, f func(path, text string, kind leafKind) (any, error)) (map[string]any, error) {
	if cfg == nil {
		return nil, nil
	}
	out, err := walk(cfg, "", false, isSecret, f)
	if err != nil {
		return nil, err
	}
	return out.(map[string]any), nil
}

// urlHasCredentials reports whether s is an absolute URL with a password
// or a query parameter whose name names a credential.
func urlHasCredentials(s string) bool {
	if !strings.Contains(s, "://") {
		return false
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return false
	}
	if _, ok := u.User.Password(); ok {
		return true
	}
	for k := range u.Query() {
		if IsSecretKey(k) {
			return true
		}
	}
	return false
}

// urlSecrets returns the credentials inside a URL (its password and the
// values of credential query parameters).
func urlSecrets(s string) []string {
	u, err := url.Parse(s)
	if err != nil {
		return nil
	}
	var out []string
	if p, ok := u.User.Password(); ok && p != "" {
		out = append(out, p, url.QueryEscape(p), url.PathEscape(p))
	}
	for k, vs := range u.Query() {
		if IsSecretKey(k) {
			for _, v := range vs {
				if v != "" {
					out = append(out, v, url.QueryEscape(v))
				}
			}
		}
	}
	return out
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

// MaskURL shows a URL with its password and credential query values
// masked: https://user:****@host/v1?key=****.
func MaskURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "****"
	}
	user := ""
	if u.User != nil {
		user = u.User.String()
		if _, ok := u.User.Password(); ok {
			user = url.User(u.User.Username()).String() + ":****"
		}
		u.User = nil
	}
	if u.RawQuery != "" {
		parts := strings.Split(u.RawQuery, "&")
		for i, p := range parts {
			k, _, _ := strings.Cut(p, "=")
			if name, err := url.QueryUnescape(k); err == nil && IsSecretKey(name) {
				parts[i] = k + "=****"
			}
		}
		u.RawQuery = strings.Join(parts, "&")
	}
	out := u.String()
	if user != "" {
		out = strings.Replace(out, "://", "://"+user+"@", 1)
	}
	return out
}

// MaskConfig returns a copy of a model config (opened) with every
// credential masked.
func MaskConfig(cfg map[string]any) map[string]any {
	out, _ := walkConfig(cfg, func(_, text string, kind leafKind) (any, error) {
		if kind == leafURL {
			return MaskURL(text), nil
		}
		return Mask(text), nil
	})
	return out
}

// Values lists the credentials of an opened config, longest first, for a
// redactor: secret values of 4 characters or more (shorter ones would
// redact ordinary words), URL passwords and credential query values.
func Values(cfg map[string]any) []string {
	seen := map[string]bool{}
	_, _ = walkConfig(cfg, func(_, text string, kind leafKind) (any, error) {
		if kind == leafURL {
			for _, v := range urlSecrets(text) {
				if len(v) >= 4 {
					seen[v] = true
				}
			}
		} else if len(text) >= 4 {
			seen[text] = true
		}
		return text, nil
	})
	out := make([]string, 0, len(seen))
	for v := range seen {
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool {
		return len(out[i]) > len(out[j]) || (len(out[i]) == len(out[j]) && out[i] < out[j])
	})
	return out
}

// Redactor replaces known credentials in text with "[redacted]".
type Redactor []string

// NewRedactor knows every credential of an opened config.
func NewRedactor(cfg map[string]any) Redactor { return Redactor(Values(cfg)) }

// Redact returns text without the credentials.
func (r Redactor) Redact(text string) string {
	for _, v := range r {
		text = strings.ReplaceAll(text, v, "[redacted]")
	}
	return text
}

// Unmask merges an update into the stored config (opened): a credential
// sent back exactly as MaskConfig showed it keeps the stored value. It
// returns the merged config and the paths of the credentials it kept.
func Unmask(in, stored map[string]any) (map[string]any, []string) {
	var kept []string
	storedLeaves := map[string]string{}
	_, _ = walkConfig(stored, func(path, text string, _ leafKind) (any, error) {
		storedLeaves[path] = text
		return text, nil
	})
	out, _ := walkConfig(in, func(path, text string, kind leafKind) (any, error) {
		old, ok := storedLeaves[path]
		if !ok {
			return text, nil
		}
		masked := Mask(old)
		if kind == leafURL || urlHasCredentials(old) {
			masked = MaskURL(old)
		}
		if text == masked {
			kept = append(kept, path)
			return old, nil
		}
		return text, nil
	})
	sort.Strings(kept)
	return out, kept
}

// openAll opens every sealed string of a config, at any depth.
func openAll(v any, path string, open func(string) (string, error)) (any, error) {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			w, err := openAll(e, join(path, k), open)
			if err != nil {
				return nil, err
			}
			out[k] = w
		}
		return out, nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			w, err := openAll(e, path+"["+strconv.Itoa(i)+"]", open)
			if err != nil {
				return nil, err
			}
			out[i] = w
		}
		return out, nil
	case string:
		if IsSealed(x) {
			o, err := open(x)
			if err != nil {
				return nil, fmt.Errorf("config.%s: %w", path, err)
			}
			return o, nil
		}
	}
	return v, nil
}
