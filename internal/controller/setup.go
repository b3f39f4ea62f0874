package controller

import (
	"cmp"
	"context"
	"fmt"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/internal/backend"
)

// Options tune the operator; the zero value is the default.
type Options struct {
	// Shard, when set, makes this operator track only the AsyncTasks labelled ShardLabel=Shard; when empty,
	// only those without the label. Several operators with different shards split the tasks between them.
	Shard string
	// Network limits which addresses backends may reach (see backend.NetworkPolicy).
	Network backend.NetworkPolicy
	// ForbidNamespacedBackends refuses TaskBackends, so that only admin-owned ClusterTaskBackends are used.
	ForbidNamespacedBackends bool
	// FieldOwner names this operator instance in managedFields; "asynctask-operator" when empty.
	FieldOwner string
}

// SetupWithManager registers every reconciler of the operator, sharing one connector so that tasks and the
// backend checks use the same vendor clients and sessions.
func SetupWithManager(ctx context.Context, mgr ctrl.Manager, opts Options) error {
	if err := addIndexes(ctx, mgr); err != nil {
		return err
	}
	registerMetrics(mgr.GetClient())
	conns := newConnector(mgr.GetClient(), opts)
	tasks := &AsyncTaskReconciler{
		Client:     mgr.GetClient(),
		APIReader:  mgr.GetAPIReader(),
		Scheme:     mgr.GetScheme(),
		Recorder:   mgr.GetEventRecorder("asynctask-operator"),
		FieldOwner: cmp.Or(opts.FieldOwner, "asynctask-operator"),
	}
	if err := tasks.SetupWithManager(mgr, conns); err != nil {
		return fmt.Errorf("setting up the AsyncTask controller: %w", err)
	}
	for _, kind := range []v1alpha1.BackendKind{v1alpha1.BackendKindTaskBackend, v1alpha1.BackendKindClusterTaskBackend} {
		r := &BackendReconciler{Client: mgr.GetClient(), Kind: kind}
		if err := r.SetupWithManager(mgr, conns); err != nil {
			return fmt.Errorf("setting up the %s controller: %w", kind, err)
		}
	}
	return nil
}
