package outbound

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ErrRefused is wrapped by every refusal, for errors.Is.
var ErrRefused = errors.New("outbound destination refused")

// RefusedError says which destination was refused and why.
type RefusedError struct {
	// Dest is the host (and port) or IP the request would have reached.
	Dest string
	// Reason is a short phrase: "link-local or cloud-metadata address", ...
	Reason string
	// Hint says how to allow it (the policy's Config.Hint).
	Hint string
}

func (e *RefusedError) Error() string {
	hint := e.Hint
	if hint == "" {
		hint = "allow it with providers.allow_hosts"
	}
	return fmt.Sprintf("outbound destination %s refused: %s (%s)", e.Dest, e.Reason, hint)
}

// Unwrap makes errors.Is(err, ErrRefused) true.
func (e *RefusedError) Unwrap() error { return ErrRefused }

// Config is what a Policy is built from.
type Config struct {
	// AllowHosts are destinations allowed whatever the other rules say:
	// host names (exact, case-insensitive), IP addresses or CIDR prefixes.
	AllowHosts []string
	// Self are the scheduler's own listen addresses ("host:port"; host may
	// be empty, 0.0.0.0 or :: for every local address).
	Self []string
	// DenyPrivate refuses loopback and private addresses too (webhooks,
	// unless webhooks.allow_private): 127.0.0.0/8, ::1, 10.0.0.0/8,
	// 172.16.0.0/12, 192.168.0.0/16, 100.64.0.0/10 and fc00::/7, and
	// localhost names.
	DenyPrivate bool
	// Hint ends every refusal's message: how to allow the destination
	// (default "allow it with providers.allow_hosts").
	Hint string
}

// Policy is an outbound destination policy. The zero value is not usable;
// build one with New or Default. A Policy is safe for concurrent use.
type Policy struct {
	allowNames    map[string]bool
	allowPrefixes []netip.Prefix
	self          []selfAddr
	denyPrivate   bool
	hint          string
}

// selfAddr is one of the scheduler's own listeners. any is true when it
// listens on every address: then any local address on port counts.
type selfAddr struct {
	addrs []netip.Addr
	any   bool
	port  uint16
}

// blockedPrefixes are refused unless allowed: link-local (cloud metadata
// lives at 169.254.169.254 and fd00:ec2::254), other metadata addresses,
// "this network", multicast and broadcast.
var blockedPrefixes = []struct {
	prefix netip.Prefix
	reason string
}{
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local or cloud-metadata address"},
	{netip.MustParsePrefix("fe80::/10"), "link-local or cloud-metadata address"},
	{netip.MustParsePrefix("fd00:ec2::254/128"), "cloud-metadata address"},
	{netip.MustParsePrefix("100.100.100.200/32"), "cloud-metadata address"},
	{netip.MustParsePrefix("0.0.0.0/8"), "unspecified address"},
	{netip.MustParsePrefix("::/128"), "unspecified address"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast address"},
	{netip.MustParsePrefix("ff00::/8"), "multicast address"},
	{netip.MustParsePrefix("255.255.255.255/32"), "broadcast address"},
}

// privatePrefixes are refused when Config.DenyPrivate is set.
var privatePrefixes = []struct {
	prefix netip.Prefix
	reason string
}{
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback address"},
	{netip.MustParsePrefix("::1/128"), "loopback address"},
	{netip.MustParsePrefix("10.0.0.0/8"), "private address"},
	{netip.MustParsePrefix("172.16.0.0/12"), "private address"},
	{netip.MustParsePrefix("192.168.0.0/16"), "private address"},
	{netip.MustParsePrefix("100.64.0.0/10"), "shared (carrier-grade NAT) address"},
	{netip.MustParsePrefix("fc00::/7"), "private (unique local) address"},
}

// blockedNames are cloud-metadata host names, refused before any lookup.
var blockedNames = map[string]bool{
	"metadata.google.internal":   true,
	"metadata.goog":              true,
	"metadata":                   true,
	"instance-data":              true,
	"instance-data.ec2.internal": true,
}

// Default is the policy with no allowed hosts and no own address.
func Default() *Policy {
	p, _ := New(Config{})
	return p
}

// New builds a policy. An AllowHosts entry that is neither a host name, an
// IP nor a CIDR, or a Self entry that is not host:port, is an error naming it.
func New(cfg Config) (*Policy, error) {
	p := &Policy{allowNames: map[string]bool{}, denyPrivate: cfg.DenyPrivate, hint: cfg.Hint}
	var errs []error
	for _, h := range cfg.AllowHosts {
		h = strings.TrimSpace(h)
		switch {
		case h == "":
			errs = append(errs, errors.New("providers.allow_hosts: an entry is empty"))
		case strings.Contains(h, "/"):
			pr, err := netip.ParsePrefix(h)
			if err != nil {
				errs = append(errs, fmt.Errorf("providers.allow_hosts: %q is not a CIDR prefix like 169.254.0.0/16", h))
				continue
			}
			p.allowPrefixes = append(p.allowPrefixes, pr.Masked())
		default:
			if ip, err := netip.ParseAddr(strings.Trim(h, "[]")); err == nil {
				p.allowPrefixes = append(p.allowPrefixes, netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen()))
				continue
			}
			if strings.ContainsAny(h, " :@?#") {
				errs = append(errs, fmt.Errorf("providers.allow_hosts: %q is not a host name, IP or CIDR", h))
				continue
			}
			p.allowNames[strings.ToLower(strings.TrimSuffix(h, "."))] = true
		}
	}
	for _, s := range cfg.Self {
		sa, err := parseSelf(s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		p.self = append(p.self, sa)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return p, nil
}

func parseSelf(s string) (selfAddr, error) {
	host, portStr, err := net.SplitHostPort(s)
	if err != nil {
		return selfAddr{}, fmt.Errorf("own listen address %q: %w", s, err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || port == 0 {
		return selfAddr{}, fmt.Errorf("own listen address %q: port must be 1-65535", s)
	}
	sa := selfAddr{port: uint16(port)}
	switch host {
	case "", "0.0.0.0", "::":
		sa.any = true
		return sa, nil
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		sa.addrs = []netip.Addr{ip.Unmap()}
	} else {
		ips, err := net.DefaultResolver.LookupNetIP(context.Background(), "ip", host)
		if err != nil {
			return selfAddr{}, fmt.Errorf("own listen address %q: %w", s, err)
		}
		for _, ip := range ips {
			sa.addrs = append(sa.addrs, ip.Unmap())
		}
	}
	// A loopback listener is reached through any loopback address.
	for _, ip := range sa.addrs {
		if ip.IsLoopback() {
			sa.addrs = append(sa.addrs, netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback())
			break
		}
	}
	return sa, nil
}

// Check decides on a URL as written, without DNS: scheme, host, literal
// IPs, metadata names and the scheduler's own address. A request to a
// checked URL is checked again at dial time (see Transport).
func (p *Policy) Check(rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("not a URL: %w", err)
	}
	return p.CheckURL(u)
}

// CheckURL is Check on a parsed URL.
func (p *Policy) CheckURL(u *url.URL) error {
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("scheme must be http or https, got %q", u.Scheme)
	}
	host := u.Hostname()
	if host == "" {
		return errors.New("URL has no host")
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return fmt.Errorf("port must be 1-65535, got %q", port)
	}
	return p.checkHost(host, uint16(n))
}

func (p *Policy) checkHost(host string, port uint16) error {
	name := strings.ToLower(strings.TrimSuffix(host, "."))
	if p.allowNames[name] {
		return nil
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return p.CheckIP(ip, port)
	}
	if blockedNames[name] {
		return &RefusedError{Dest: host, Reason: "cloud-metadata host name", Hint: p.hint}
	}
	if name == "localhost" || strings.HasSuffix(name, ".localhost") {
		return p.CheckIP(netip.MustParseAddr("127.0.0.1"), port)
	}
	return nil
}

// CheckIP decides on one resolved address and port.
func (p *Policy) CheckIP(ip netip.Addr, port uint16) error {
	ip = ip.Unmap().WithZone("")
	for _, pr := range p.allowPrefixes {
		if pr.Contains(ip) {
			return nil
		}
	}
	dest := netip.AddrPortFrom(ip, port).String()
	for _, b := range blockedPrefixes {
		if b.prefix.Contains(ip) {
			return &RefusedError{Dest: dest, Reason: b.reason, Hint: p.hint}
		}
	}
	if p.denyPrivate {
		for _, b := range privatePrefixes {
			if b.prefix.Contains(ip) {
				return &RefusedError{Dest: dest, Reason: b.reason, Hint: p.hint}
			}
		}
	}
	if p.isSelf(ip, port) {
		return &RefusedError{Dest: dest, Reason: "the scheduler's own listen address", Hint: p.hint}
	}
	return nil
}

func (p *Policy) isSelf(ip netip.Addr, port uint16) bool {
	for _, s := range p.self {
		if s.port != port {
			continue
		}
		if s.any && (ip.IsLoopback() || isLocal(ip)) {
			return true
		}
		for _, a := range s.addrs {
			if a == ip {
				return true
			}
		}
	}
	return false
}

// isLocal reports whether ip belongs to one of this host's interfaces.
func isLocal(ip netip.Addr) bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		// Cannot tell: treat as local, the safe answer for a refusal check.
		return true
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if x, ok := netip.AddrFromSlice(n.IP); ok && x.Unmap() == ip {
				return true
			}
		}
	}
	return false
}

// DialContext returns a dial function that refuses connections to refused
// addresses after name resolution (each attempted IP is checked just
// before connecting, so DNS rebinding cannot slip past Check). A host named
// in AllowHosts is dialled without the check.
func (p *Policy) DialContext(d *net.Dialer) func(ctx context.Context, network, addr string) (net.Conn, error) {
	if d == nil {
		d = &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	}
	checked := *d
	checked.Control = func(network, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("outbound dial to %q: %w", address, err)
		}
		return p.CheckIP(ap.Addr(), ap.Port())
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(addr)
		if err == nil && p.allowNames[strings.ToLower(strings.TrimSuffix(host, "."))] {
			return d.DialContext(ctx, network, addr)
		}
		return checked.DialContext(ctx, network, addr)
	}
}

// Transport returns an HTTP transport (http.DefaultTransport's settings)
// that checks every request's URL and every connection's address. It uses
// no proxy from the environment: a proxy would hide the destination from
// the dial check.
func (p *Policy) Transport() http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	t.DialContext = p.DialContext(nil)
	return &checkedTransport{policy: p, next: t}
}

type checkedTransport struct {
	policy *Policy
	next   *http.Transport
}

func (t *checkedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if err := t.policy.CheckURL(r.URL); err != nil {
		if r.Body != nil {
			r.Body.Close()
		}
		return nil, err
	}
	return t.next.RoundTrip(r)
}

// CloseIdleConnections lets http.Client.CloseIdleConnections reach the pool.
func (t *checkedTransport) CloseIdleConnections() { t.next.CloseIdleConnections() }

// MaxRedirects bounds the redirects Client follows.
const MaxRedirects = 5

// Client returns an HTTP client on Transport that follows redirects only
// to the same origin (scheme, host and port; headers such as API keys are
// never sent to another host), at most MaxRedirects, each checked again.
// Timeouts come from each request's context.
func (p *Policy) Client() *http.Client {
	return &http.Client{
		Transport: p.Transport(),
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= MaxRedirects {
				return fmt.Errorf("stopped after %d redirects", MaxRedirects)
			}
			first := via[0].URL
			if req.URL.Scheme != first.Scheme || req.URL.Host != first.Host {
				return &RefusedError{Dest: req.URL.Host, Reason: "redirect to another origin than " + first.Scheme + "://" + first.Host, Hint: p.hint}
			}
			return p.CheckURL(req.URL)
		},
	}
}
