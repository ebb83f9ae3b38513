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
	leafPlain  leafKind = iota // not a credential (handed over only to a walk of every string)
	leafSecret                 // under a secret key or headers
	leafURL                    // a URL carrying credentials
)

// leaf is a value the walk hands to its visitor.
type leaf struct {
	// path is where the value sits: "api_key", "auth.token", "keys[0]".
	path string
	// text is the value as text: a number or a boolean under a secret key
	// is handed over as its text (a key is a string to every provider).
	text string
	kind leafKind
	// value is the value as stored.
	value any
}

// walker is the one walk over a model config's values: it copies the
// config and replaces each credential leaf (with strings, every string
// leaf) by what visit returns. Other leaves are kept as they are. Sealing,
// opening, masking, unmasking, redacting and rewrapping all go through it,
// so they agree on what a credential is.
type walker struct {
	// isSecret says which key names a credential (IsSecretKey when nil).
	isSecret func(string) bool
	// strings hands every string leaf to visit, credentials or not (kind
	// leafPlain): opening finds sealed values wherever they are.
	strings bool
	visit   func(leaf) (any, error)
}

// credentials walks the credentials of cfg with the IsSecretKey rule.
func credentials(cfg map[string]any, visit func(leaf) (any, error)) (map[string]any, error) {
	return walker{visit: visit}.config(cfg)
}

// config walks a whole config; nil stays nil.
func (w walker) config(cfg map[string]any) (map[string]any, error) {
	if cfg == nil {
		return nil, nil
	}
	withRule := w
	if withRule.isSecret == nil {
		withRule.isSecret = IsSecretKey
	}
	out, err := withRule.walk(cfg, "", false)
	if err != nil {
		return nil, err
	}
	return out.(map[string]any), nil
}

// walk copies v, which sits at path (under a credential key when secret).
func (w walker) walk(v any, path string, secret bool) (any, error) {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			r, err := w.walk(e, join(path, k), secret || w.isSecret(k) || isHeaders(k))
			if err != nil {
				return nil, err
			}
			out[k] = r
		}
		return out, nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			r, err := w.walk(e, path+"["+strconv.Itoa(i)+"]", secret)
			if err != nil {
				return nil, err
			}
			out[i] = r
		}
		return out, nil
	case string:
		switch {
		case secret:
			return w.visit(leaf{path: path, text: x, kind: leafSecret, value: x})
		case urlHasCredentials(x):
			return w.visit(leaf{path: path, text: x, kind: leafURL, value: x})
		case w.strings:
			return w.visit(leaf{path: path, text: x, kind: leafPlain, value: x})
		}
		return x, nil
	case nil:
		return nil, nil
	}
	if !secret {
		return v, nil
	}
	// A number or a boolean under a secret key: its text.
	text := fmt.Sprint(v)
	switch x := v.(type) {
	case float64:
		text = strconv.FormatFloat(x, 'f', -1, 64)
	case json.Number:
		text = x.String()
	}
	return w.visit(leaf{path: path, text: text, kind: leafSecret, value: v})
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
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
	out, _ := credentials(cfg, func(l leaf) (any, error) {
		if l.kind == leafURL {
			return MaskURL(l.text), nil
		}
		return Mask(l.text), nil
	})
	return out
}

// Values lists the credentials of an opened config, longest first, for a
// redactor: secret values of 4 characters or more (shorter ones would
// redact ordinary words), URL passwords and credential query values.
func Values(cfg map[string]any) []string {
	seen := map[string]bool{}
	_, _ = credentials(cfg, func(l leaf) (any, error) {
		if l.kind == leafURL {
			for _, v := range urlSecrets(l.text) {
				if len(v) >= 4 {
					seen[v] = true
				}
			}
		} else if len(l.text) >= 4 {
			seen[l.text] = true
		}
		return l.text, nil
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
	_, _ = credentials(stored, func(l leaf) (any, error) {
		storedLeaves[l.path] = l.text
		return l.text, nil
	})
	out, _ := credentials(in, func(l leaf) (any, error) {
		old, ok := storedLeaves[l.path]
		if !ok {
			return l.text, nil
		}
		masked := Mask(old)
		if l.kind == leafURL || urlHasCredentials(old) {
			masked = MaskURL(old)
		}
		if l.text == masked {
			kept = append(kept, l.path)
			return old, nil
		}
		return l.text, nil
	})
	sort.Strings(kept)
	return out, kept
}
