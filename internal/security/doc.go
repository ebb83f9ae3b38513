// Package security holds the attack suite (docs/security.md), run against a real
// llm-scheduler binary by scripts/ci.d/47-security.sh (build tag
// security): each test is an attack and what must stop it.
package security
