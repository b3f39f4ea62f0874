package main

import (
	"context"
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

// networkPolicy builds the backends' network policy from the --denied-cidrs and --allowed-cidrs flags and the
// cluster's API server addresses.
func networkPolicy(denied, allowed string, cfg *rest.Config, scheme *runtime.Scheme, log logr.Logger) (backend.NetworkPolicy, error) {
	var (
		policy backend.NetworkPolicy
		err    error
	)
	if policy.DeniedCIDRs, err = backend.ParseCIDRs(denied); err != nil {
		return policy, err
	}
	if policy.AllowedCIDRs, err = backend.ParseCIDRs(allowed); err != nil {
		return policy, err
	}
	policy.APIServerAddresses = apiServerAddresses(cfg, scheme, log)
	log.Info("Backend network policy", "deniedByDefault", backend.DefaultDeniedCIDRs, "apiServerAddresses", policy.APIServerAddresses,
		"deniedCIDRs", policy.DeniedCIDRs, "allowedCIDRs", policy.AllowedCIDRs)
	return policy, nil
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
