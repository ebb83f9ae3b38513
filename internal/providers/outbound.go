package providers

import (
	"net/http"
	"sync/atomic"

	"github.com/llmsched/llm-scheduler/internal/outbound"
)

// policy decides which destinations models may reach (see package
// outbound); client is an HTTP client that enforces it. Both are replaced
// together by SetOutbound at start.
var (
	policy atomic.Pointer[outbound.Policy]
	client atomic.Pointer[http.Client]
)

func init() { SetOutbound(outbound.Default()) }

// SetOutbound makes every provider check its destination against p: when a
// model's config is validated (Check on the URL as written) and on every
// connection (the resolved address, and redirects). A process calls it once
// at start with the policy built from providers.allow_hosts and its own
// listen address.
func SetOutbound(p *outbound.Policy) {
	policy.Store(p)
	client.Store(p.Client())
}

// Outbound is the policy in force.
func Outbound() *outbound.Policy { return policy.Load() }

// sharedHTTP is one connection pool for every HTTP model, through the
// policy in force at the time of each request. Timeouts come from each
// call's context.
var sharedHTTP = &http.Client{Transport: policyTransport{}, CheckRedirect: noRedirects}

// policyTransport sends a request through the current policy's client,
// which follows (same-origin, checked) redirects itself.
type policyTransport struct{}

func (policyTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return client.Load().Do(r)
}

func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
