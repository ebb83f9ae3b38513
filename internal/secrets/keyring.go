package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Prefix starts every sealed value.
const Prefix = "enc:v1:"

// KeySize is the size of an encryption key in bytes (AES-256).
const KeySize = 32

// ErrNoKey is returned when a sealed value must be opened but no key is
// configured.
var ErrNoKey = errors.New("a secret is encrypted but no encryption key is configured (auth.encryption_key / ENCRYPTION_KEY)")

// Keyring holds the current key, which seals, and previous keys, which
// still open. A nil *Keyring is valid: it seals nothing (plaintext mode)
// and cannot open sealed values.
type Keyring struct {
	primary *key
	keys    map[string]*key
}

type key struct {
	id   string
	aead cipher.AEAD
}

// ParseKey decodes a base64 (standard or URL alphabet, padded or not)
// 32-byte key.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			if len(b) != KeySize {
				return nil, fmt.Errorf("encryption key must be %d bytes of base64, got %d bytes", KeySize, len(b))
			}
			return b, nil
		}
	}
	return nil, errors.New("encryption key is not valid base64 (generate one with: head -c 32 /dev/urandom | base64)")
}

// GenerateKey returns a new random key, base64-encoded.
func GenerateKey() string {
	b := make([]byte, KeySize)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err)) // never fails on supported platforms
	}
	return base64.StdEncoding.EncodeToString(b)
}

func newKey(raw []byte) (*key, error) {
	block, err := aes.NewCipher(raw)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(raw)
	return &key{id: hex.EncodeToString(sum[:4]), aead: aead}, nil
}

// NewKeyring builds a keyring from base64 keys. primary == "" returns a nil
// keyring (plaintext mode) unless previous keys are given, which is an error.
func NewKeyring(primary string, previous []string) (*Keyring, error) {
	if primary == "" {
		if len(previous) > 0 {
			return nil, errors.New("auth.previous_encryption_keys is set but auth.encryption_key is not")
		}
		return nil, nil
	}
	kr := &Keyring{keys: map[string]*key{}}
	for i, s := range append([]string{primary}, previous...) {
		raw, err := ParseKey(s)
		if err != nil {
			if i == 0 {
				return nil, fmt.Errorf("auth.encryption_key: %w", err)
			}
			return nil, fmt.Errorf("auth.previous_encryption_keys[%d]: %w", i-1, err)
		}
		k, err := newKey(raw)
		if err != nil {
			return nil, err
		}
		if i == 0 {
			kr.primary = k
		}
		if _, dup := kr.keys[k.id]; !dup {
			kr.keys[k.id] = k
		}
	}
	return kr, nil
}

// Enabled reports whether the keyring seals (a key is configured).
func (kr *Keyring) Enabled() bool { return kr != nil && kr.primary != nil }

// KeyID names the primary key (the first 8 hex digits of its SHA-256), ""
// in plaintext mode. It identifies a key without revealing it.
func (kr *Keyring) KeyID() string {
	if !kr.Enabled() {
		return ""
	}
	return kr.primary.id
}

// IsSealed reports whether v is an envelope.
func IsSealed(v string) bool { return strings.HasPrefix(v, Prefix) }

// Seal encrypts v with the primary key. An already sealed value is returned
// as is; in plaintext mode v is returned unchanged.
func (kr *Keyring) Seal(v string) (string, error) {
	if !kr.Enabled() || IsSealed(v) {
		return v, nil
	}
	k := kr.primary
	nonce := make([]byte, k.aead.NonceSize(), k.aead.NonceSize()+len(v)+k.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("seal secret: %w", err)
	}
	out := k.aead.Seal(nonce, nonce, []byte(v), []byte(Prefix+k.id))
	return Prefix + k.id + ":" + base64.RawStdEncoding.EncodeToString(out), nil
}

// Open decrypts an envelope with whichever key sealed it. A value that is
// not an envelope (stored before encryption was configured) is returned
// unchanged.
func (kr *Keyring) Open(v string) (string, error) {
	if !IsSealed(v) {
		return v, nil
	}
	if kr == nil {
		return "", ErrNoKey
	}
	id, b64, ok := strings.Cut(v[len(Prefix):], ":")
	if !ok {
		return "", errors.New("open secret: malformed envelope")
	}
	k := kr.keys[id]
	if k == nil {
		return "", fmt.Errorf("open secret: it was sealed with key %s, which is neither auth.encryption_key nor in auth.previous_encryption_keys", id)
	}
	raw, err := base64.RawStdEncoding.DecodeString(b64)
	if err != nil || len(raw) < k.aead.NonceSize() {
		return "", errors.New("open secret: malformed envelope")
	}
	n := k.aead.NonceSize()
	plain, err := k.aead.Open(nil, raw[:n], raw[n:], []byte(Prefix+k.id))
	if err != nil {
		return "", fmt.Errorf("open secret sealed with key %s: %w", id, err)
	}
	return string(plain), nil
}

// NeedsRewrap reports whether v is plaintext or sealed with a key other
// than the primary (so a rewrap would change it).
func (kr *Keyring) NeedsRewrap(v string) bool {
	if !kr.Enabled() {
		return false
	}
	if !IsSealed(v) {
		return true
	}
	id, _, _ := strings.Cut(v[len(Prefix):], ":")
	return id != kr.primary.id
}
