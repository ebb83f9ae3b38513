// Package security holds the attack suite of issue 14, run against a real
// llm-scheduler binary by scripts/ci.d/47-security.sh (build tag
// security): each test is an attack and what must stop it.
package security
