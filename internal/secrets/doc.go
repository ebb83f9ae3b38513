// Package secrets encrypts provider credentials at rest. Secret values of a
// model config (api_key, token, header values, ...) are sealed with AES-256-GCM
// into an envelope "enc:v1:<key id>:<base64 nonce+ciphertext>" before they
// are written to the database, and opened only when a worker builds the
// provider. The key comes from auth.encryption_key (env ENCRYPTION_KEY);
// auth.previous_encryption_keys still open old envelopes during a rotation.
//
// Without a configured key, the embedded default generates one and keeps it
// in a file next to the SQLite database; production refuses to start; a
// development setup on MySQL stores credentials in plaintext and says so
// loudly at start-up. docs/security.md describes rotation.
package secrets
