package controller

import (
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"slices"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/internal/backend"
	"github.com/asynctask-operator/asynctask-operator/internal/sharding"
)

// Options tune the operator; the zero value is the default.
type Options struct {
	// Shard, when set, makes this operator track only the AsyncTasks labelled ShardLabel=Shard; when empty,
	// only those without the label. Several operators with different shards split the tasks between them.
	Shard string
	// TaskBackendNetwork and ClusterTaskBackendNetwork limit which addresses each kind of backend may reach
	// (see backend.NetworkPolicy); where DefaultDenied is nil, the kind's defaults apply
	// (backend.TaskBackendDefaults, backend.ClusterTaskBackendDefaults).
	TaskBackendNetwork, ClusterTaskBackendNetwork backend.NetworkPolicy
	// ForbidNamespacedBackends refuses TaskBackends, so that only admin-owned ClusterTaskBackends are used.
	ForbidNamespacedBackends bool
	// FieldOwner names this operator instance in managedFields; "asynctask-operator" when empty.
	FieldOwner string
	// Workers is how many tasks are polled at once (the AsyncTask controller's MaxConcurrentReconciles);
	// defaultWorkers when 0.
	Workers int
	// WorkersPerBackend caps how many of the workers one backend may hold at once, so that a slow vendor
	// cannot starve the others; a quarter of Workers (at least 1) when 0.
	WorkersPerBackend int
	// WorkersPerNamespace caps how many of the workers the TaskBackends of one namespace may hold at once
	// together, so that one tenant cannot starve the others with many slow backends; half of Workers (at
	// least 1) when 0. ClusterTaskBackends are bounded by WorkersPerBackend only.
	WorkersPerNamespace int
	// Ring, when set, shares the work with the other replicas of the ring: this replica reconciles only the
	// tasks and backends the ring gives it. Run it beside the manager, and end it after the manager stopped.
	Ring *sharding.Membership
	// BackendFactory finds the vendor package that builds a backend of a type; registry.Lookup when nil. Tests
	// pass a fake backend through it.
	BackendFactory func(v1alpha1.BackendType) (backend.Factory, error)
}

// defaultWorkers is how many tasks are polled at once by default: polls mostly wait on vendors, so more
// workers than cores keep a large number of tasks on schedule (see docs/performance.md).
const defaultWorkers = 16

// networkPolicy returns the network policy of a kind of backend, with the kind's defaults filled in.
func (o Options) networkPolicy(kind v1alpha1.BackendKind) backend.NetworkPolicy {
	p, defaults, flag := o.TaskBackendNetwork, backend.TaskBackendDefaults, "--taskbackend-allowed-cidrs"
	if kind == v1alpha1.BackendKindClusterTaskBackend {
		p, defaults, flag = o.ClusterTaskBackendNetwork, backend.ClusterTaskBackendDefaults, "--clustertaskbackend-allowed-cidrs"
	}
	if p.DefaultDenied == nil {
		p.DefaultDenied = defaults
	}
	p.AllowHint = cmp.Or(p.AllowHint, "--allowed-cidrs or "+flag)
	return p
}

// WithLoopbackAllowed returns o with loopback allowed to every backend, for an operator run next to a vendor
// simulator on the same host (the demo, the benchmark, make run): TaskBackends may not reach loopback by default.
func (o Options) WithLoopbackAllowed() Options {
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	o.TaskBackendNetwork.AllowedCIDRs = append(slices.Clone(o.TaskBackendNetwork.AllowedCIDRs), loopback...)
	o.ClusterTaskBackendNetwork.AllowedCIDRs = append(slices.Clone(o.ClusterTaskBackendNetwork.AllowedCIDRs), loopback...)
	return o
}

func (o Options) workers() int { return cmp.Or(o.Workers, defaultWorkers) }

func (o Options) workersPerNamespace() int {
	return cmp.Or(o.WorkersPerNamespace, max(1, o.workers()/2))
}

func (o Options) workersPerBackend() int { return cmp.Or(o.WorkersPerBackend, max(1, o.workers()/4)) }

// SetupWithManager registers every reconciler of the operator, sharing one connector so that tasks and the
// backend checks use the same vendor clients and sessions.
func SetupWithManager(ctx context.Context, mgr ctrl.Manager, opts Options) error {
	if err := addIndexes(ctx, mgr); err != nil {
		return err
	}
	ring := ownership{ring: opts.Ring}
	registerMetrics(mgr.GetCache(), ring)
	conns := newConnector(mgr.GetClient(), newSecretReader(mgr.GetClient(), mgr.GetAPIReader()), opts)
	if ring.enabled() {
		conns.rateShare, conns.ownsBackend = ring.members, ring.owns
	}
	fieldOwner := cmp.Or(opts.FieldOwner, "asynctask-operator")
	tasks := &AsyncTaskReconciler{
		Client:     mgr.GetClient(),
		APIReader:  mgr.GetAPIReader(),
		Scheme:     mgr.GetScheme(),
		Recorder:   mgr.GetEventRecorder("asynctask-operator"),
		FieldOwner: fieldOwner,
		ring:       ring,
	}
	if err := tasks.setupWithManager(mgr, conns, opts.workers()); err != nil {
		return fmt.Errorf("setting up the AsyncTask controller: %w", err)
	}
	backendQueues := map[v1alpha1.BackendKind]*handoverQueue{}
	for _, kind := range []v1alpha1.BackendKind{v1alpha1.BackendKindTaskBackend, v1alpha1.BackendKindClusterTaskBackend} {
		r := &BackendReconciler{Client: mgr.GetClient(), Kind: kind, FieldOwner: fieldOwner, ring: ring}
		if err := r.setupWithManager(mgr, conns); err != nil {
			return fmt.Errorf("setting up the %s controller: %w", kind, err)
		}
		backendQueues[kind] = &r.gained
	}
	if opts.Ring != nil {
		handover := &ringHandover{client: mgr.GetClient(), identity: opts.Ring.Identity(), schedule: tasks.schedule,
			tasks: &tasks.gained, backends: backendQueues, changed: conns.changed, settledAt: ring.settledAt}
		opts.Ring.Subscribe(handover.ringChanged)
	}
	return nil
}
