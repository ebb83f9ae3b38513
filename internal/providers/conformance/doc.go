// Package conformance runs the scheduler against an OpenAI-compatible
// server written elsewhere: @dwmkerr/mock-llm from the npm registry,
// configured by mock-llm.yaml. scripts/ci.d/45-provider-conformance.sh
// installs and starts it and runs the tests here with the build tag
// conformance and LLMSCHED_MOCK_LLM_URL set.
package conformance
