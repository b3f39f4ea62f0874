package controller

import (
	"context"
	"fmt"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
)

// SetupWithManager registers every reconciler of the operator, sharing one connector so that tasks and the
// backend checks use the same vendor clients and sessions.
func SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	if err := addIndexes(ctx, mgr); err != nil {
		return err
	}
	registerMetrics(mgr.GetClient())
	conns := newConnector(mgr.GetClient())
	tasks := &AsyncTaskReconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Scheme:    mgr.GetScheme(),
		Recorder:  mgr.GetEventRecorder("asynctask-operator"),
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
