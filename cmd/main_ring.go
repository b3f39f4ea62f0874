package main

import (
	"cmp"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/asynctask-operator/asynctask-operator/internal/sharding"
)

// leaseTimings are the timings of the leader Lease or of each ring member's Lease: client-go's leader-election
// defaults.
type leaseTimings struct {
	duration, renewDeadline, retryPeriod time.Duration
}

func (l *leaseTimings) bind(fs *flag.FlagSet) {
	fs.DurationVar(&l.duration, "lease-duration", 15*time.Second, "How long a Lease counts after its last renewal: "+
		"how long a crashed leader or ring member's work waits before another replica takes it.")
	fs.DurationVar(&l.renewDeadline, "lease-renew-deadline", 10*time.Second, "How long a replica keeps trying to "+
		"renew its Lease before it stops working; shorter than --lease-duration.")
	fs.DurationVar(&l.retryPeriod, "lease-retry-period", 2*time.Second, "How often a Lease is renewed; with "+
		"--sharding=ring, also how long a replica waits before working on tasks the ring just gave it.")
}

// serviceAccountNamespace is where a pod finds its own namespace.
const serviceAccountNamespace = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// newRing returns this replica's membership of its ring: the Deployment's (or the shard's) replicas, named by
// POD_NAME (the hostname when unset), holding their Leases in namespace (the pod's own when empty).
func newRing(cfg *rest.Config, namespace, shard string, timings leaseTimings, log logr.Logger) (*sharding.Membership, error) {
	if namespace == "" {
		data, err := os.ReadFile(serviceAccountNamespace)
		if err != nil {
			return nil, fmt.Errorf("--sharding=ring outside a cluster needs --leader-election-namespace: %w", err)
		}
		namespace = strings.TrimSpace(string(data))
	}
	hostname, _ := os.Hostname()
	identity := cmp.Or(os.Getenv("POD_NAME"), hostname)
	clientset, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return sharding.NewMembership(sharding.Config{Client: clientset, Namespace: namespace, Ring: cmp.Or(shard, "asynctask-operator"),
		Identity: identity, LeaseDuration: timings.duration, RenewDeadline: timings.renewDeadline, RetryPeriod: timings.retryPeriod, Log: log})
}
