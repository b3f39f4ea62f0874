package backend

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
)

func prefixes(list ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(list))
	for i, s := range list {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

func addrs(list ...string) []netip.Addr {
	out := make([]netip.Addr, len(list))
	for i, s := range list {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

func TestNetworkPolicyDecidesOnTheAddress(t *testing.T) {
	apiServer := NetworkPolicy{APIServerAddresses: addrs("10.96.0.1", "::ffff:172.18.0.2", "fd00::1")}
	taskBackend := NetworkPolicy{DefaultDenied: TaskBackendDefaults, AllowHint: "--taskbackend-allowed-cidrs",
		OperatorAddresses: addrs("10.244.1.7")}
	withAllowed := func(p NetworkPolicy, cidrs ...string) NetworkPolicy {
		p.AllowedCIDRs = prefixes(cidrs...)
		return p
	}
	cases := map[string]struct {
		policy   NetworkPolicy
		address  string
		deniedBy string // a substring of the rule that refuses it; empty when allowed
	}{
		"AWS/GCP/Azure metadata":            {address: "169.254.169.254:80", deniedBy: "169.254.0.0/16"},
		"ECS task metadata":                 {address: "169.254.170.2:80", deniedBy: "169.254.0.0/16"},
		"IPv6 link-local":                   {address: "[fe80::1]:80", deniedBy: "fe80::/10"},
		"IPv6 link-local with a zone":       {address: "[fe80::1%eth0]:80", deniedBy: "fe80::/10"},
		"IPv4-mapped metadata":              {address: "[::ffff:169.254.169.254]:80", deniedBy: "169.254.0.0/16"},
		"AWS IPv6 metadata":                 {address: "[fd00:ec2::254]:80", deniedBy: "fd00:ec2::254/128"},
		"next to AWS IPv6 metadata":         {address: "[fd00:ec2::253]:80"},
		"API server ClusterIP":              {policy: apiServer, address: "10.96.0.1:443", deniedBy: "API server"},
		"API server on any port":            {policy: apiServer, address: "10.96.0.1:10250", deniedBy: "API server"},
		"API server given IPv4-mapped":      {policy: apiServer, address: "172.18.0.2:6443", deniedBy: "API server"},
		"API server reached IPv4-mapped":    {policy: apiServer, address: "[::ffff:10.96.0.1]:443", deniedBy: "API server"},
		"API server over IPv6":              {policy: apiServer, address: "[fd00::1]:443", deniedBy: "API server"},
		"next to the API server":            {policy: apiServer, address: "10.96.0.2:443"},
		"IPv4 loopback":                     {address: "127.0.0.1:8080"},
		"IPv6 loopback":                     {address: "[::1]:8080"},
		"private address":                   {address: "10.1.2.3:443"},
		"public address":                    {address: "203.0.113.7:443"},
		"allowed overrides the default":     {policy: NetworkPolicy{AllowedCIDRs: prefixes("169.254.169.254/32")}, address: "169.254.169.254:80"},
		"allowed override is exact":         {policy: NetworkPolicy{AllowedCIDRs: prefixes("169.254.169.254/32")}, address: "169.254.169.253:80", deniedBy: "169.254.0.0/16"},
		"allowed overrides the API server":  {policy: NetworkPolicy{APIServerAddresses: addrs("10.96.0.1"), AllowedCIDRs: prefixes("10.96.0.0/12")}, address: "10.96.0.1:443"},
		"allowed IPv4-mapped prefix":        {policy: NetworkPolicy{AllowedCIDRs: prefixes("::ffff:169.254.0.0/112")}, address: "169.254.1.1:80"},
		"extra denied":                      {policy: NetworkPolicy{DeniedCIDRs: prefixes("10.0.0.0/8")}, address: "10.1.2.3:443", deniedBy: "10.0.0.0/8 is denied by --denied-cidrs"},
		"extra denied loopback":             {policy: NetworkPolicy{DeniedCIDRs: prefixes("127.0.0.0/8")}, address: "127.0.0.1:80", deniedBy: "127.0.0.0/8"},
		"extra denied IPv4-mapped prefix":   {policy: NetworkPolicy{DeniedCIDRs: prefixes("::ffff:10.0.0.0/104")}, address: "10.9.9.9:443", deniedBy: "--denied-cidrs"},
		"more specific allowed wins":        {policy: NetworkPolicy{DeniedCIDRs: prefixes("10.0.0.0/8"), AllowedCIDRs: prefixes("10.1.0.0/16")}, address: "10.1.2.3:443"},
		"more specific denied wins":         {policy: NetworkPolicy{DeniedCIDRs: prefixes("169.254.169.254/32"), AllowedCIDRs: prefixes("169.254.0.0/16")}, address: "169.254.169.254:80", deniedBy: "--denied-cidrs"},
		"equal allowed and denied: denied":  {policy: NetworkPolicy{DeniedCIDRs: prefixes("10.0.0.0/8"), AllowedCIDRs: prefixes("10.0.0.0/8")}, address: "10.0.0.1:443", deniedBy: "--denied-cidrs"},
		"denied does not touch other hosts": {policy: NetworkPolicy{DeniedCIDRs: prefixes("10.0.0.0/8")}, address: "192.168.0.1:443"},
		"unspecified IPv4":                  {address: "0.0.0.0:8080", deniedBy: "0.0.0.0/8 is the unspecified (this-host) range"},
		"unspecified IPv6":                  {address: "[::]:8080", deniedBy: "::/128 is the unspecified address"},
		"IPv4-mapped unspecified":           {address: "[::ffff:0.0.0.0]:8080", deniedBy: "0.0.0.0/8"},
		"Alibaba metadata":                  {address: "100.100.100.200:80", deniedBy: "Alibaba Cloud"},
		"Azure WireServer":                  {address: "168.63.129.16:80", deniedBy: "Azure"},
		"TaskBackend: loopback":             {policy: taskBackend, address: "127.0.0.2:8080", deniedBy: "127.0.0.0/8 is loopback, denied by default (--taskbackend-allowed-cidrs can allow it)"},
		"TaskBackend: IPv6 loopback":        {policy: taskBackend, address: "[::1]:8080", deniedBy: "::1/128 is loopback"},
		"TaskBackend: IPv4-mapped loopback": {policy: taskBackend, address: "[::ffff:127.0.0.1]:8080", deniedBy: "127.0.0.0/8"},
		"TaskBackend: its operator":         {policy: taskBackend, address: "10.244.1.7:8443", deniedBy: "an address of the operator itself"},
		"TaskBackend: metadata":             {policy: taskBackend, address: "169.254.169.254:80", deniedBy: "169.254.0.0/16"},
		"TaskBackend: private address":      {policy: taskBackend, address: "10.1.2.3:443"},
		"TaskBackend: allowed loopback":     {policy: withAllowed(taskBackend, "127.0.0.1/32"), address: "127.0.0.1:8080"},
		"TaskBackend: allowed is exact":     {policy: withAllowed(taskBackend, "127.0.0.1/32"), address: "127.0.0.2:8080", deniedBy: "loopback"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			err := newGuard(tc.policy).control("tcp", tc.address, nil)
			if tc.deniedBy == "" {
				if err != nil {
					t.Fatalf("want allowed, got %v", err)
				}
				return
			}
			var denied *AddressDeniedError
			if !errors.As(err, &denied) {
				t.Fatalf("want an *AddressDeniedError, got %v", err)
			}
			if !strings.Contains(denied.Rule, tc.deniedBy) {
				t.Errorf("rule %q does not name %q", denied.Rule, tc.deniedBy)
			}
		})
	}
}

func TestParseCIDRs(t *testing.T) {
	g := NewWithT(t)
	got, err := ParseCIDRs(" 10.0.0.0/8, 100.100.100.200 ,fd00::/8,,")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(got).To(Equal(prefixes("10.0.0.0/8", "100.100.100.200/32", "fd00::/8")))
	got, err = ParseCIDRs("")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(got).To(BeEmpty())
	_, err = ParseCIDRs("10.0.0.0/8,metadata.internal")
	g.Expect(err).To(MatchError(ContainSubstring(`"metadata.internal"`)))
	_, err = ParseCIDRs("10.0.0.0/33")
	g.Expect(err).To(HaveOccurred())
}

// policyClient is a Client with the given network policy and, when not nil, resolver.
func policyClient(policy NetworkPolicy, resolver *net.Resolver) *Client {
	return NewClient(ClientOptions{Timeout: 5 * time.Second, QPS: 1000, Burst: 1000, NetworkPolicy: policy, resolver: resolver})
}

// expectRefused asserts err is the InvalidConfig refusal naming the address and rule, without the URL's path
// or query.
func expectRefused(t *testing.T, err error, address, rule string) {
	t.Helper()
	g := NewWithT(t)
	e, ok := AsError(err)
	g.Expect(ok).To(BeTrue(), "want a *backend.Error, got %v", err)
	g.Expect(e.Kind).To(Equal(KindInvalidConfig), e.Message)
	g.Expect(e.Message).To(ContainSubstring("network policy refuses to connect"))
	g.Expect(e.Message).To(ContainSubstring(address))
	g.Expect(e.Message).To(ContainSubstring(rule))
	g.Expect(e.Message).NotTo(ContainSubstring("latest/meta-data"))
	g.Expect(e.Message).NotTo(ContainSubstring("sig="))
}

// ipv6Loopback reports whether this machine can open IPv6 sockets (containers often cannot).
func ipv6Loopback() bool {
	l, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		return false
	}
	_ = l.Close()
	return true
}

func TestClientRefusesDeniedAddressesAtConnectTime(t *testing.T) {
	// The refusal happens before connect(2): no packet leaves, so these run without a network.
	cases := map[string]struct {
		url, address, rule string
		ipv6               bool
	}{
		"metadata":             {url: "http://169.254.169.254/latest/meta-data/iam?sig=x", address: "169.254.169.254:80", rule: "169.254.0.0/16"},
		"metadata over https":  {url: "https://169.254.169.254/latest/meta-data", address: "169.254.169.254:443", rule: "169.254.0.0/16"},
		"IPv4-mapped metadata": {url: "http://[::ffff:169.254.169.254]/latest/meta-data", address: "169.254.169.254:80", rule: "169.254.0.0/16"},
		"IPv6 link-local":      {url: "http://[fe80::1%25lo]:8080/latest/meta-data", address: "fe80::1", rule: "fe80::/10", ipv6: true},
		"AWS IPv6 metadata":    {url: "http://[fd00:ec2::254]/latest/meta-data", address: "[fd00:ec2::254]:80", rule: "fd00:ec2::254/128", ipv6: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if tc.ipv6 && !ipv6Loopback() {
				t.Skip("no IPv6 here; the address rule is covered by TestNetworkPolicyDecidesOnTheAddress")
			}
			_, err := get(t, policyClient(NetworkPolicy{}, nil), tc.url)
			expectRefused(t, err, tc.address, tc.rule)
		})
	}
}

func TestClientRefusesTheAPIServerUnlessAllowed(t *testing.T) {
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	defer server.Close()
	// The test server stands in for the API server: its loopback address is declared the API server's.
	apiServer := NetworkPolicy{APIServerAddresses: addrs("127.0.0.1")}

	_, err := get(t, policyClient(apiServer, nil), server.URL+"/api/v1/secrets")
	expectRefused(t, err, server.Listener.Addr().String(), "cluster's API server")

	apiServer.AllowedCIDRs = prefixes("127.0.0.1/32")
	resp, err := get(t, policyClient(apiServer, nil), server.URL)
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("with --allowed-cidrs: %v", err)
	}
}

func TestClientAllowsLoopbackByDefault(t *testing.T) {
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	defer server.Close()
	resp, err := get(t, policyClient(NetworkPolicy{}, nil), server.URL)
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("loopback: %v", err)
	}
}

func TestClientChecksTheResolvedAddressOfAHostName(t *testing.T) {
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	defer server.Close()
	port := server.Listener.Addr().(*net.TCPAddr).Port
	// "localhost" is a name, not an address: the check must see what it resolves to.
	policy := NetworkPolicy{DeniedCIDRs: prefixes("127.0.0.0/8", "::1/128")}
	_, err := get(t, policyClient(policy, nil), fmt.Sprintf("http://localhost:%d/latest/meta-data", port))
	expectRefused(t, err, fmt.Sprintf("localhost:%d", port), "--denied-cidrs")
}

func TestDNSRebindingCannotGetAround(t *testing.T) {
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Connection", "close") // the next request dials, and so resolves, again
		w.WriteHeader(http.StatusNoContent)
	}))
	defer server.Close()
	port := server.Listener.Addr().(*net.TCPAddr).Port

	// The name first resolves to the (allowed) test server, then to the metadata address.
	dns := startDNS(t, "127.0.0.1")
	c := policyClient(NetworkPolicy{}, dns.resolver())
	vendorURL := fmt.Sprintf("http://vendor.rebind.test:%d/status", port)

	resp, err := get(t, c, vendorURL)
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("first request, resolving to 127.0.0.1: %v", err)
	}
	dns.answer("169.254.169.254")
	_, err = get(t, c, vendorURL)
	expectRefused(t, err, fmt.Sprintf("169.254.169.254:%d", port), "169.254.0.0/16")
	if dns.queries.Load() < 2 {
		t.Errorf("the name was resolved %d times, want a fresh resolution per connection", dns.queries.Load())
	}
}

// fakeDNS answers every A query with one address (changeable) and every other query with no records.
type fakeDNS struct {
	conn    net.PacketConn
	mu      sync.Mutex
	addr    netip.Addr
	queries atomic.Int32
}

func startDNS(t *testing.T, addr string) *fakeDNS {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &fakeDNS{conn: conn, addr: netip.MustParseAddr(addr)}
	t.Cleanup(func() { _ = conn.Close() })
	go d.serve()
	return d
}

func (d *fakeDNS) answer(addr string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.addr = netip.MustParseAddr(addr)
}

func (d *fakeDNS) resolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var dialer net.Dialer
		return dialer.DialContext(ctx, "udp4", d.conn.LocalAddr().String())
	}}
}

func (d *fakeDNS) serve() {
	buf := make([]byte, 1500)
	for {
		n, from, err := d.conn.ReadFrom(buf)
		if err != nil {
			return
		}
		if reply := d.reply(buf[:n]); reply != nil {
			_, _ = d.conn.WriteTo(reply, from)
		}
	}
}

// reply builds the answer to one query: the header, the question echoed, and an A record when asked for one.
func (d *fakeDNS) reply(query []byte) []byte {
	if len(query) < 12 {
		return nil
	}
	end := 12
	for end < len(query) && query[end] != 0 {
		end += int(query[end]) + 1
	}
	end += 5 // the root label, QTYPE, QCLASS
	if end > len(query) {
		return nil
	}
	qtype := binary.BigEndian.Uint16(query[end-4:])
	out := append([]byte{}, query[:2]...)     // ID
	out = append(out, 0x85, 0x80)             // response, authoritative, recursion desired and available
	out = append(out, 0, 1, 0, 0, 0, 0, 0, 0) // one question; counts filled below
	out = append(out, query[12:end]...)
	if qtype == 1 { // A
		d.queries.Add(1)
		d.mu.Lock()
		ip := d.addr.As4()
		d.mu.Unlock()
		out[7] = 1                              // one answer
		out = append(out, 0xc0, 12, 0, 1, 0, 1) // the question's name, type A, class IN
		out = append(out, 0, 0, 0, 0, 0, 4)     // TTL 0, 4 bytes
		out = append(out, ip[:]...)
	}
	return out
}

func TestRedirects(t *testing.T) {
	const secret = "the-vendor-token"
	var otherHostRequests atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		otherHostRequests.Add(1)
		w.WriteHeader(http.StatusOK)
	}))
	defer other.Close()

	var seenTokens sync.Map // path -> X-Auth-Token received
	vendor := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seenTokens.Store(r.URL.Path, r.Header.Get("X-Auth-Token"))
		var hops int
		switch r.URL.Path {
		case "/final":
			w.WriteHeader(http.StatusOK)
		case "/away":
			http.Redirect(w, r, other.URL+"/steal", http.StatusTemporaryRedirect)
		case "/away-by-name":
			// The same address by another name is another host: the credential would go to whoever that
			// name points at.
			u, _ := url.Parse(other.URL)
			http.Redirect(w, r, "http://localhost:"+u.Port()+"/steal", http.StatusFound)
		case "/other-port":
			u, _ := url.Parse(other.URL)
			http.Redirect(w, r, "http://127.0.0.1:"+u.Port()+"/final", http.StatusMovedPermanently)
		case "/other-scheme":
			http.Redirect(w, r, "https://"+r.Host+"/final", http.StatusFound)
		default:
			if _, err := fmt.Sscanf(r.URL.Path, "/hops/%d", &hops); err != nil {
				http.NotFound(w, r)
				return
			}
			next := "/final"
			if hops > 1 {
				next = fmt.Sprintf("/hops/%d", hops-1)
			}
			http.Redirect(w, r, next, http.StatusFound)
		}
	}))
	defer vendor.Close()

	cases := map[string]struct {
		path       string
		wantStatus int
		wantFinal  bool
	}{
		"one same-host redirect":        {path: "/hops/1", wantStatus: http.StatusOK, wantFinal: true},
		"three same-host redirects":     {path: "/hops/3", wantStatus: http.StatusOK, wantFinal: true},
		"the fourth is not followed":    {path: "/hops/4", wantStatus: http.StatusFound},
		"another host":                  {path: "/away", wantStatus: http.StatusTemporaryRedirect},
		"another name for the host":     {path: "/away-by-name", wantStatus: http.StatusFound},
		"another port on the same host": {path: "/other-port", wantStatus: http.StatusMovedPermanently},
		"another scheme":                {path: "/other-scheme", wantStatus: http.StatusFound},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			seenTokens.Delete("/final")
			otherHostRequests.Store(0)
			req, err := http.NewRequest(http.MethodGet, vendor.URL+tc.path, nil)
			g.Expect(err).NotTo(HaveOccurred())
			req.Header.Set("X-Auth-Token", secret)
			req.Header.Set("Authorization", "Bearer "+secret)
			resp, err := newTestClient(nil).Do(context.Background(), req)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(resp.StatusCode).To(Equal(tc.wantStatus))
			_, reachedFinal := seenTokens.Load("/final")
			g.Expect(reachedFinal).To(Equal(tc.wantFinal))
			g.Expect(otherHostRequests.Load()).To(BeZero(), "nothing, and so no credential, reaches another host")
		})
	}
	// A followed same-host redirect keeps the credential: it goes back to the host it was meant for.
	token, _ := seenTokens.Load("/hops/1")
	if token != secret {
		t.Errorf("same-host redirect lost the credential header: %q", token)
	}
}

func TestSameOrigin(t *testing.T) {
	cases := map[string]struct {
		a, b string
		same bool
	}{
		"identical":              {a: "https://vendor.example/a", b: "https://vendor.example/b", same: true},
		"host case":              {a: "https://Vendor.Example/a", b: "https://vendor.example/b", same: true},
		"default https port":     {a: "https://vendor.example/a", b: "https://vendor.example:443/b", same: true},
		"default http port":      {a: "http://vendor.example:80/a", b: "http://vendor.example/b", same: true},
		"another port":           {a: "https://vendor.example/a", b: "https://vendor.example:8443/b"},
		"downgrade to http":      {a: "https://vendor.example/a", b: "http://vendor.example/b"},
		"http port 443 on http":  {a: "https://vendor.example/a", b: "http://vendor.example:443/b"},
		"another host":           {a: "https://vendor.example/a", b: "https://evil.example/b"},
		"sub-domain":             {a: "https://vendor.example/a", b: "https://x.vendor.example/b"},
		"userinfo trick":         {a: "https://vendor.example/a", b: "https://vendor.example@evil.example/b"},
		"IP literal vs the name": {a: "https://vendor.example/a", b: "https://127.0.0.1/b"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			a, _ := http.NewRequest(http.MethodGet, tc.a, nil)
			b, _ := http.NewRequest(http.MethodGet, tc.b, nil)
			if got := sameOrigin(a, b); got != tc.same {
				t.Errorf("sameOrigin(%s, %s) = %v, want %v", tc.a, tc.b, got, tc.same)
			}
		})
	}
}
