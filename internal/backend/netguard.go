package backend

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
	"time"
)

// Whoever may create a TaskBackend may point the operator at any URL and read the answers back through status
// (server-side request forgery). The network policy limits where a backend's connections may go. It is checked
// in the dialer on the address a connection is about to be made to, after name resolution, so a host name that
// resolves (or re-resolves, DNS rebinding) to a denied address is refused as well as an address literal.

// NetworkPolicy says which addresses backend requests may connect to. The zero value applies the defaults:
// link-local and cloud-metadata addresses (DefaultDeniedCIDRs) are refused, loopback and everything else is
// allowed.
type NetworkPolicy struct {
	// DeniedCIDRs are refused in addition to the defaults.
	DeniedCIDRs []netip.Prefix
	// AllowedCIDRs may be reached even when a default rule or an API server address would refuse them. Against
	// DeniedCIDRs the longer (more specific) prefix wins; an equal one denies.
	AllowedCIDRs []netip.Prefix
	// APIServerAddresses are the cluster's API server addresses (the kubernetes Service ClusterIP and the API
	// server endpoints), refused on every port: the operator's own credentials are not the backend's to use, but
	// an anonymous request there still reveals what the API server exposes.
	APIServerAddresses []netip.Addr
}

// DefaultDeniedCIDRs are refused unless AllowedCIDRs say otherwise: IPv4 link-local (the cloud metadata
// services at 169.254.169.254, 169.254.170.2 and the like), IPv6 link-local, and AWS's IPv6 metadata address.
// IPv4-mapped IPv6 forms (::ffff:169.254.169.254) are matched as the IPv4 address they map.
var DefaultDeniedCIDRs = []netip.Prefix{
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("fe80::/10"),
	netip.MustParsePrefix("fd00:ec2::254/128"),
}

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
}

func newGuard(p NetworkPolicy) *guard {
	g := &guard{}
	for _, prefix := range DefaultDeniedCIDRs {
		g.defaults = append(g.defaults, rule{normalise(prefix), fmt.Sprintf("%s is a link-local or cloud-metadata range, denied by default", prefix)})
	}
	for _, addr := range p.APIServerAddresses {
		addr = addr.Unmap().WithZone("")
		g.defaults = append(g.defaults, rule{netip.PrefixFrom(addr, addr.BitLen()), "it is an address of the cluster's API server, denied by default"})
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
		return &AddressDeniedError{Address: netip.AddrPortFrom(addr, ap.Port()), Rule: deny.why + " (--allowed-cidrs can allow it)"}
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
