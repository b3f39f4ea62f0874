package main

import (
	"context"
	"flag"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/asynctask-operator/asynctask-operator/internal/backend"
)

// networkFlags are the flags of the backends' network policies: --denied-cidrs and --allowed-cidrs for
// every backend, and one pair per kind that narrows or widens that kind's defaults.
type networkFlags struct {
	denied, allowed                             string
	taskBackendDenied, taskBackendAllowed       string
	clusterBackendDenied, clusterBackendAllowed string
}

func (f *networkFlags) bind(fs *flag.FlagSet) {
	fs.StringVar(&f.denied, "denied-cidrs", "", "Comma-separated CIDRs no backend may connect to, besides the "+
		"defaults of each kind (see --taskbackend-denied-cidrs).")
	fs.StringVar(&f.allowed, "allowed-cidrs", "", "Comma-separated CIDRs every backend may connect to even when "+
		"denied by default; against a denied CIDR the more specific one wins.")
	fs.StringVar(&f.taskBackendDenied, "taskbackend-denied-cidrs", "", "Comma-separated CIDRs TaskBackends may not "+
		"connect to, besides their defaults: loopback, unspecified, link-local and cloud metadata addresses, the "+
		"API server and the operator's own addresses.")
	fs.StringVar(&f.taskBackendAllowed, "taskbackend-allowed-cidrs", "", "Comma-separated CIDRs TaskBackends may "+
		"connect to even when denied by default (127.0.0.1/32 for a vendor on the operator's host).")
	fs.StringVar(&f.clusterBackendDenied, "clustertaskbackend-denied-cidrs", "", "Comma-separated CIDRs "+
		"ClusterTaskBackends may not connect to, besides their defaults: unspecified, link-local and cloud "+
		"metadata addresses and the API server.")
	fs.StringVar(&f.clusterBackendAllowed, "clustertaskbackend-allowed-cidrs", "", "Comma-separated CIDRs "+
		"ClusterTaskBackends may connect to even when denied by default.")
}

// policies builds the network policy of each backend kind from the flags, the cluster's API server addresses
// and the operator's own addresses.
func (f *networkFlags) policies(cfg *rest.Config, scheme *runtime.Scheme, log logr.Logger) (taskBackends, clusterBackends backend.NetworkPolicy, err error) {
	for _, field := range []struct {
		into         *[]netip.Prefix
		common, kind string
	}{
		{&taskBackends.DeniedCIDRs, f.denied, f.taskBackendDenied},
		{&taskBackends.AllowedCIDRs, f.allowed, f.taskBackendAllowed},
		{&clusterBackends.DeniedCIDRs, f.denied, f.clusterBackendDenied},
		{&clusterBackends.AllowedCIDRs, f.allowed, f.clusterBackendAllowed},
	} {
		// ParseCIDRs skips empty items, so either list may be empty.
		if *field.into, err = backend.ParseCIDRs(field.common + "," + field.kind); err != nil {
			return taskBackends, clusterBackends, err
		}
	}
	apiServer := apiServerAddresses(cfg, scheme, log)
	taskBackends.APIServerAddresses, clusterBackends.APIServerAddresses = apiServer, apiServer
	taskBackends.OperatorAddresses = operatorAddresses()
	log.Info("Backend network policy", "apiServerAddresses", apiServer,
		"taskBackendDeniedByDefault", prefixesOf(backend.TaskBackendDefaults), "operatorAddresses", taskBackends.OperatorAddresses,
		"taskBackendDeniedCIDRs", taskBackends.DeniedCIDRs, "taskBackendAllowedCIDRs", taskBackends.AllowedCIDRs,
		"clusterTaskBackendDeniedByDefault", prefixesOf(backend.ClusterTaskBackendDefaults),
		"clusterTaskBackendDeniedCIDRs", clusterBackends.DeniedCIDRs, "clusterTaskBackendAllowedCIDRs", clusterBackends.AllowedCIDRs)
	return taskBackends, clusterBackends, nil
}

func prefixesOf(ranges []backend.DefaultDeniedRange) []netip.Prefix {
	out := make([]netip.Prefix, len(ranges))
	for i, r := range ranges {
		out[i] = r.Prefix
	}
	return out
}

// operatorAddresses are the addresses of the operator's network interfaces other than loopback (which the
// TaskBackend defaults deny anyway): in a pod, the pod's IPs, where its metrics and probes listen.
func operatorAddresses() []netip.Addr {
	ifaceAddrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []netip.Addr
	for _, a := range ifaceAddrs {
		prefix, err := netip.ParsePrefix(a.String())
		if err != nil {
			continue
		}
		if addr := prefix.Addr().Unmap(); !addr.IsLoopback() && !addr.IsLinkLocalUnicast() && !slices.Contains(out, addr) {
			out = append(out, addr)
		}
	}
	return out
}

// apiServerAddresses finds the addresses the API server is reached at: the host of the manager's own
// connection, resolved, and, when the operator may read them, the ClusterIP of the default/kubernetes Service
// and its endpoints. Whatever cannot be read is skipped: the policy then covers what was found. Loopback
// addresses are left out: inside a pod the API server is never on loopback, and outside one (make run against
// a local cluster) denying loopback would also refuse local vendor simulators, which loopback is allowed for.
func apiServerAddresses(cfg *rest.Config, scheme *runtime.Scheme, log logr.Logger) []netip.Addr {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []netip.Addr
	add := func(ip string) {
		if addr, err := netip.ParseAddr(ip); err == nil && !addr.Unmap().IsLoopback() && !slices.Contains(out, addr.Unmap()) {
			out = append(out, addr.Unmap())
		}
	}

	host := cfg.Host
	if !strings.Contains(host, "://") {
		host = "https://" + host
	}
	if u, err := url.Parse(host); err == nil && u.Hostname() != "" {
		if _, err := netip.ParseAddr(u.Hostname()); err == nil {
			add(u.Hostname())
		} else if ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", u.Hostname()); err == nil {
			for _, ip := range ips {
				add(ip.String())
			}
		} else {
			log.Info("Cannot resolve the API server host; it is not in the backend network policy", "host", u.Hostname(), "error", err.Error())
		}
	}

	direct, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return out
	}
	svc := &corev1.Service{}
	if err := direct.Get(ctx, client.ObjectKey{Namespace: "default", Name: "kubernetes"}, svc); err == nil {
		for _, ip := range svc.Spec.ClusterIPs {
			add(ip)
		}
	} else {
		log.V(1).Info("Cannot read the default/kubernetes Service; its ClusterIP is known only if it is the API server host", "error", err.Error())
	}
	endpoints := &discoveryv1.EndpointSliceList{}
	if err := direct.List(ctx, endpoints, client.InNamespace("default"), client.MatchingLabels{discoveryv1.LabelServiceName: "kubernetes"}); err == nil {
		for _, s := range endpoints.Items {
			for _, ep := range s.Endpoints {
				for _, ip := range ep.Addresses {
					add(ip)
				}
			}
		}
	} else {
		log.V(1).Info("Cannot list the API server endpoints (EndpointSlices of default/kubernetes); only the addresses found otherwise are denied", "error", err.Error())
	}
	return out
}
