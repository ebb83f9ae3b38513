// Package outbound decides which network destinations the scheduler may
// connect to on someone else's behalf: a model's endpoint (providers), and
// anything else a user configures (webhooks). One Policy is built from the
// configuration at start and used everywhere an outbound request is made.
//
// The rules, in order:
//
//   - only http and https URLs with a host;
//   - a destination listed in providers.allow_hosts (a host name, an IP or
//     a CIDR) is always allowed;
//   - link-local addresses (169.254.0.0/16, fe80::/10, where clouds serve
//     their metadata), the known cloud-metadata addresses and names, the
//     unspecified address, multicast and broadcast are refused;
//   - the scheduler's own listen address is refused (a model pointed at
//     /metrics or the REST API of the server itself);
//   - everything else, loopback and private ranges included, is allowed:
//     local models run there.
//
// Names are checked twice: Check looks at the URL as written (what a model's
// config can be validated against without DNS), and the dialer checks the
// IP each connection actually goes to, after resolution, so a name that
// resolves (or re-resolves) to a refused address is refused too. Redirects
// are followed only within the same origin and are checked again.
package outbound
