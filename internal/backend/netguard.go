package backend

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Whoever may create a TaskBackend may point the operator at any URL and read the answers back through status
// (server-side request forgery). The network policy limits where a backend's connections may go. It is checked
// in the dialer on the address a connection is about to be made to, after name resolution, so a host name that
// resolves (or re-resolves, DNS rebinding) to a denied address is refused as well as an address literal.

// NetworkPolicy says which addresses backend requests may connect to. Each backend kind has its own: tenants
// own TaskBackends and administrators own ClusterTaskBackends, so the defaults differ (TaskBackendDefaults,
// ClusterTaskBackendDefaults). The zero value applies the ClusterTaskBackend defaults.
type NetworkPolicy struct {
	// DefaultDenied are refused unless AllowedCIDRs allow them; ClusterTaskBackendDefaults when nil.
	DefaultDenied []DefaultDeniedRange
	// AllowHint names the flags that can allow a default-denied address, for the refusal message.
	AllowHint string
	// DeniedCIDRs are refused in addition to the defaults.
	DeniedCIDRs []netip.Prefix
	// AllowedCIDRs may be reached even when a default rule, an API server or an operator address would refuse
	// them. Against DeniedCIDRs the longer (more specific) prefix wins; an equal one denies.
	AllowedCIDRs []netip.Prefix
	// APIServerAddresses are the cluster's API server addresses (the kubernetes Service ClusterIP and the API
	// server endpoints), refused on every port: the operator's own credentials are not the backend's to use, but
	// an anonymous request there still reveals what the API server exposes.
	APIServerAddresses []netip.Addr
	// OperatorAddresses are the operator's own addresses (its pod's), refused on every port so that a backend
	// cannot reach the operator's metrics, probes or anything else listening beside it.
	OperatorAddresses []netip.Addr
}

// DefaultDeniedRange is a range refused by default, and what it is, for the refusal message.
type DefaultDeniedRange struct {
	Prefix netip.Prefix
	What   string
}

// ClusterTaskBackendDefaults are refused by default for every backend: the unspecified addresses (a
// connection to 0.0.0.0 or :: reaches the operator's own host), link-local ranges (where the cloud metadata
// services at 169.254.169.254, 169.254.170.2 and the like answer) and the other clouds' metadata and host
// addresses. IPv4-mapped IPv6 forms (::ffff:169.254.169.254) are matched as the IPv4 address they map.
var ClusterTaskBackendDefaults = []DefaultDeniedRange{
	{netip.MustParsePrefix("0.0.0.0/8"), "the unspecified (this-host) range"},
	{netip.MustParsePrefix("::/128"), "the unspecified address"},
	{netip.MustParsePrefix("169.254.0.0/16"), "a link-local or cloud-metadata range"},
	{netip.MustParsePrefix("fe80::/10"), "a link-local or cloud-metadata range"},
	{netip.MustParsePrefix("fd00:ec2::254/128"), "AWS's IPv6 metadata address"},
	{netip.MustParsePrefix("100.100.100.200/32"), "Alibaba Cloud's metadata address"},
	{netip.MustParsePrefix("168.63.129.16/32"), "Azure's host (WireServer) address"},
}

// TaskBackendDefaults are refused by default for tenant-owned TaskBackends: everything ClusterTaskBackends may
// not reach, and loopback, where the operator's own endpoints and anything else on its host listen.
var TaskBackendDefaults = append(slices.Clone(ClusterTaskBackendDefaults),
	DefaultDeniedRange{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	DefaultDeniedRange{netip.MustParsePrefix("::1/128"), "loopback"},
)

// ParseCIDRs parses a comma-separated list of CIDRs or single addresses (taken as /32 or /128), as the
// operator's --denied-cidrs and --allowed-cidrs flags give them.
func ParseCIDRs(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, item := range strings.Split(list, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if !strings.Contains(item, "/") {
			addr, err := netip.ParseAddr(item)
			if err != nil {
				return nil, fmt.Errorf("%q is neither a CIDR nor an IP address", item)
			}
			out = append(out, netip.PrefixFrom(addr, addr.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(item)
		if err != nil {
			return nil, fmt.Errorf("%q is not a CIDR: %w", item, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// AddressDeniedError is the dialer's refusal of an address. The Client turns it into a KindInvalidConfig
// *Error naming the backend host too.
type AddressDeniedError struct {
	// Address is the resolved address the connection was about to be made to, with its port.
	Address netip.AddrPort
	// Rule says which rule refused it.
	Rule string
}

func (e *AddressDeniedError) Error() string {
	return fmt.Sprintf("the operator's network policy refuses connections to %s: %s", e.Address, e.Rule)
}

// rule is one CIDR of the policy, normalised so that IPv4-mapped IPv6 prefixes match IPv4 addresses.
type rule struct {
	prefix netip.Prefix
	why    string
}

// guard is a NetworkPolicy prepared for checking.
type guard struct {
	defaults, denied, allowed []rule
	// hint names the flags that can allow a default-denied address.
	hint string
}

func newGuard(p NetworkPolicy) *guard {
	g := &guard{hint: cmp.Or(p.AllowHint, "--allowed-cidrs")}
	defaults := p.DefaultDenied
	if defaults == nil {
		defaults = ClusterTaskBackendDefaults
	}
	for _, d := range defaults {
		g.defaults = append(g.defaults, rule{normalise(d.Prefix), fmt.Sprintf("%s is %s, denied by default", d.Prefix, d.What)})
	}
	for _, addr := range p.APIServerAddresses {
		addr = addr.Unmap().WithZone("")
		g.defaults = append(g.defaults, rule{netip.PrefixFrom(addr, addr.BitLen()), "it is an address of the cluster's API server, denied by default"})
	}
	for _, addr := range p.OperatorAddresses {
		addr = addr.Unmap().WithZone("")
		g.defaults = append(g.defaults, rule{netip.PrefixFrom(addr, addr.BitLen()), "it is an address of the operator itself, denied by default"})
	}
	for _, prefix := range p.DeniedCIDRs {
		g.denied = append(g.denied, rule{normalise(prefix), fmt.Sprintf("%s is denied by --denied-cidrs", prefix)})
	}
	for _, prefix := range p.AllowedCIDRs {
		g.allowed = append(g.allowed, rule{normalise(prefix), ""})
	}
	return g
}

// normalise turns an IPv4-mapped IPv6 prefix (::ffff:a.b.c.d/n, n >= 96) into the IPv4 prefix it maps.
func normalise(p netip.Prefix) netip.Prefix {
	p = p.Masked()
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p
}

// longest returns the most specific rule that contains addr.
func longest(rules []rule, addr netip.Addr) (rule, bool) {
	best, found := rule{}, false
	for _, r := range rules {
		if r.prefix.Contains(addr) && (!found || r.prefix.Bits() > best.prefix.Bits()) {
			best, found = r, true
		}
	}
	return best, found
}

// check refuses an address the policy denies, with an *AddressDeniedError.
func (g *guard) check(ap netip.AddrPort) error {
	addr := ap.Addr().Unmap().WithZone("")
	allow, allowed := longest(g.allowed, addr)
	if deny, denied := longest(g.denied, addr); denied && (!allowed || deny.prefix.Bits() >= allow.prefix.Bits()) {
		return &AddressDeniedError{Address: netip.AddrPortFrom(addr, ap.Port()), Rule: deny.why}
	}
	if allowed {
		return nil
	}
	if deny, denied := longest(g.defaults, addr); denied {
		return &AddressDeniedError{Address: netip.AddrPortFrom(addr, ap.Port()), Rule: deny.why + " (" + g.hint + " can allow it)"}
	}
	return nil
}

// control is a net.Dialer Control function: it runs for every connection attempt, on the resolved address,
// before the connection is made.
func (g *guard) control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		// The dialer always hands over ip:port; anything else is refused rather than let through unchecked.
		return fmt.Errorf("the operator's network policy cannot check the address %q: %w", address, err)
	}
	return g.check(ap)
}

// maxRedirects is how many same-host redirects one request follows.
const maxRedirects = 3

// checkRedirect follows a redirect only to the same scheme, host and port as the original request, and at
// most maxRedirects times; any other redirect answer is returned as it is, for the vendor package to report.
// Credentials are attached per request as headers (X-Auth-Token, Cookie, signatures), and Go forwards custom
// headers on a redirect, so a redirect to another host would hand them to it.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) > maxRedirects || !sameOrigin(req, via[0]) {
		return http.ErrUseLastResponse
	}
	return nil
}

func sameOrigin(a, b *http.Request) bool {
	return strings.EqualFold(a.URL.Scheme, b.URL.Scheme) &&
		strings.EqualFold(a.URL.Hostname(), b.URL.Hostname()) &&
		portOf(a) == portOf(b)
}

func portOf(req *http.Request) string {
	if p := req.URL.Port(); p != "" {
		return p
	}
	if strings.EqualFold(req.URL.Scheme, "https") {
		return "443"
	}
	return "80"
}

// deniedError returns the policy refusal inside a transport error, if there is one.
func deniedError(err error) (*AddressDeniedError, bool) {
	var denied *AddressDeniedError
	ok := errors.As(err, &denied)
	return denied, ok
}

// newDialer returns the dialer of a backend's transport, with the policy checked on every connection.
func newDialer(p NetworkPolicy, resolver *net.Resolver) *net.Dialer {
	return &net.Dialer{
		Timeout:   30 * time.Second,
		KeepAlive: 30 * time.Second,
		Resolver:  resolver,
		Control:   newGuard(p).control,
	}
}
