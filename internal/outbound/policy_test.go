package outbound_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/llmsched/llm-scheduler/internal/outbound"
)

func TestCheck(t *testing.T) {
	p, err := outbound.New(outbound.Config{
		AllowHosts: []string{"metadata.internal.example", "169.254.10.0/24", "fe80::1"},
		Self:       []string{"127.0.0.1:8080"},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		desc, url string
		refused   bool
	}{
		{"public https", "https://api.openai.com/v1", false},
		{"loopback model", "http://127.0.0.1:8000/v1", false},
		{"localhost model", "http://localhost:11434/v1", false},
		{"private range", "http://10.1.2.3:8000", false},
		{"ipv6 loopback model", "http://[::1]:8000", false},
		{"aws metadata", "http://169.254.169.254/latest/meta-data/", true},
		{"metadata mapped into ipv6", "http://[::ffff:169.254.169.254]/", true},
		{"ipv6 link-local", "http://[fe80::2]/", true},
		{"aws ipv6 metadata", "http://[fd00:ec2::254]/", true},
		{"alibaba metadata", "http://100.100.100.200/", true},
		{"gcp metadata name", "http://metadata.google.internal/computeMetadata/v1/", true},
		{"gcp metadata name, trailing dot", "http://Metadata.Google.Internal./", true},
		{"unspecified", "http://0.0.0.0:9000/", true},
		{"own address", "http://127.0.0.1:8080/metrics", true},
		{"own address via localhost", "http://localhost:8080/api/v1/system/config", true},
		{"own address via ipv6 loopback", "http://[::1]:8080/", true},
		{"allowed CIDR", "http://169.254.10.7/", false},
		{"allowed IP", "http://[fe80::1]/", false},
		{"allowed name", "http://metadata.internal.example/", false},
		{"file scheme", "file:///etc/passwd", true},
		{"gopher", "gopher://127.0.0.1:6379/", true},
		{"no host", "http:///x", true},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			err := p.Check(tc.url)
			if got := err != nil; got != tc.refused {
				t.Fatalf("Check(%q) = %v, want refused=%v", tc.url, err, tc.refused)
			}
		})
	}
}

func TestNewNamesBadEntries(t *testing.T) {
	_, err := outbound.New(outbound.Config{AllowHosts: []string{"10.0.0.0/99", "a b", ""}, Self: []string{"nohostport"}})
	if err == nil {
		t.Fatal("bad entries accepted")
	}
	for _, want := range []string{`providers.allow_hosts: "10.0.0.0/99"`, `providers.allow_hosts: "a b"`, "an entry is empty", `own listen address "nohostport"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
}

func TestSelfOnEveryAddress(t *testing.T) {
	p, err := outbound.New(outbound.Config{Self: []string{":8080"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.CheckIP(netip.MustParseAddr("127.0.0.1"), 8080); !errors.Is(err, outbound.ErrRefused) {
		t.Fatalf("loopback on own port: %v", err)
	}
	if err := p.CheckIP(netip.MustParseAddr("127.0.0.1"), 8081); err != nil {
		t.Fatalf("loopback on another port: %v", err)
	}
}

// A name that resolves to a refused address is refused when dialled: the
// dial check sees the resolved IP, not the name Check saw.
func TestDialChecksResolvedAddress(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "internal") }))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	p, err := outbound.New(outbound.Config{Self: []string{"127.0.0.1:" + port}})
	if err != nil {
		t.Fatal(err)
	}
	// Check passes on a name it cannot judge without DNS...
	if err := p.Check("http://own.test:" + port + "/"); err != nil {
		t.Fatal(err)
	}
	// ...and the dial refuses once the name resolves to the own address.
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		return p.DialContext(nil)(ctx, network, "127.0.0.1:"+port) // what own.test resolves to
	}}
	resp, err := (&http.Client{Transport: tr}).Get("http://own.test:" + port + "/")
	if err == nil {
		resp.Body.Close()
	}
	if !errors.Is(err, outbound.ErrRefused) {
		t.Fatalf("dial to own address through a name: %v, want refused", err)
	}
	// The same dialer reaches an allowed loopback port.
	p2, _ := outbound.New(outbound.Config{Self: []string{"127.0.0.1:1"}})
	resp, err = p2.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "internal" {
		t.Fatalf("body %q", b)
	}
}

func TestRedirects(t *testing.T) {
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "key="+r.Header.Get("X-Api-Key"))
	}))
	defer other.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/same":
			http.Redirect(w, r, "/final", http.StatusFound)
		case "/final":
			io.WriteString(w, "same origin")
		case "/metadata":
			http.Redirect(w, r, "http://169.254.169.254/latest/", http.StatusFound)
		case "/other":
			http.Redirect(w, r, other.URL+"/steal", http.StatusTemporaryRedirect)
		}
	}))
	defer srv.Close()
	c := outbound.Default().Client()
	resp, err := c.Get(srv.URL + "/same")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "same origin" {
		t.Fatalf("same-origin redirect: %q", b)
	}
	for _, path := range []string{"/metadata", "/other"} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		req.Header.Set("X-Api-Key", "secret")
		resp, err := c.Do(req)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			t.Fatalf("redirect %s followed: %q", path, b)
		}
		if !errors.Is(err, outbound.ErrRefused) {
			t.Fatalf("redirect %s: %v, want refused", path, err)
		}
	}
}

func TestTransportRefusesBeforeConnecting(t *testing.T) {
	resp, err := outbound.Default().Client().Get("http://169.254.169.254/latest/meta-data/")
	if err == nil {
		resp.Body.Close()
	}
	var re *outbound.RefusedError
	if !errors.As(err, &re) || re.Reason != "link-local or cloud-metadata address" {
		t.Fatalf("got %v", err)
	}
}

// DenyPrivate (webhooks) refuses loopback and private addresses as written
// and at dial time, after name resolution: a name the URL check lets
// through cannot reach a refused address.
func TestDenyPrivate(t *testing.T) {
	p, err := outbound.New(outbound.Config{DenyPrivate: true, Hint: "webhooks.allow_private allows them"})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"http://127.0.0.1/", "http://[::1]/", "http://10.0.0.1/", "http://172.16.5.4/", "http://192.168.1.1/",
		"http://100.64.0.1/", "http://[fd00::1]/", "http://localhost/", "http://169.254.169.254/"} {
		err := p.Check(u)
		if !errors.Is(err, outbound.ErrRefused) || !strings.Contains(err.Error(), "webhooks.allow_private") {
			t.Errorf("Check(%s) = %v, want a refusal naming the hint", u, err)
		}
	}
	for _, u := range []string{"https://example.com/hook", "http://8.8.8.8/", "http://[2001:4860::8888]/"} {
		if err := p.Check(u); err != nil {
			t.Errorf("Check(%s) = %v, want allowed", u, err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	// A name dialled directly (as after a DNS answer that changed) is
	// checked on the address it resolves to.
	if _, err := p.DialContext(nil)(context.Background(), "tcp", net.JoinHostPort("localhost", port)); !errors.Is(err, outbound.ErrRefused) {
		t.Fatalf("dial localhost with DenyPrivate = %v, want refused", err)
	}
	// Without DenyPrivate (the providers' policy) loopback is fine.
	c, err := outbound.Default().DialContext(nil)(context.Background(), "tcp", net.JoinHostPort("localhost", port))
	if err != nil {
		t.Fatalf("dial localhost with the providers' policy: %v", err)
	}
	c.Close()
}
