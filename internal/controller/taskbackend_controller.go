package controller

import (
	"context"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/internal/backend"
)

// recheckUnreachable is how soon a backend that could not be reached or refused the credentials is checked
// again; its tasks go on polling on their own schedule meanwhile.
const recheckUnreachable = time.Minute

// BackendReconciler checks a TaskBackend or ClusterTaskBackend: its spec and Secrets make a usable backend,
// and the vendor answers with those credentials. It sets the Ready condition.
type BackendReconciler struct {
	client.Client
	// Kind is TaskBackend or ClusterTaskBackend.
	Kind v1alpha1.BackendKind
	// FieldOwner names this operator in the backends' managedFields.
	FieldOwner string

	clock     clock.PassiveClock
	connector *connector
	// ring says which backends this replica checks; gained queues those the ring gives it.
	ring   ownership
	gained handoverQueue
}

// +kubebuilder:rbac:groups=tasks.asynctask.dev,resources=taskbackends/status;clustertaskbackends/status,verbs=get;update;patch

// Reconcile checks the backend and writes its Ready condition when it changed.
func (r *BackendReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	obj, status := r.newObject()
	key := backendKey{Kind: r.Kind, Namespace: req.Namespace, Name: req.Name}
	if err := r.Get(ctx, req.NamespacedName, obj); err != nil {
		if apierrors.IsNotFound(err) {
			forgetBackendMetrics(key) // gone: its series go with it
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !r.ring.owns(obj.GetUID()) {
		return ctrl.Result{}, nil // another replica checks it
	}
	if wait := r.ring.settledAt().Sub(r.clock.Now()); wait > 0 {
		return ctrl.Result{RequeueAfter: wait}, nil // the replica that had it may still be checking it
	}
	ready, retryAfter := r.check(ctx, key)
	if retryAfter > 0 {
		return ctrl.Result{RequeueAfter: retryAfter}, nil // not checked: the backend's rate limit is used up
	}
	before := obj.DeepCopyObject().(client.Object)
	*status = backendStatus(*status, obj.GetGeneration(), ready, r.clock.Now())
	if _, err := patchStatus(ctx, r.Client, r.FieldOwner, before, obj, string(r.Kind)); err != nil {
		return ctrl.Result{}, err
	}
	recordBackendReady(key, r.specOf(obj).Type, ready.Status == metav1.ConditionTrue)
	if ready.Reason == v1alpha1.ReasonUnreachable || ready.Reason == v1alpha1.ReasonAuthenticationFailed {
		return ctrl.Result{RequeueAfter: recheckUnreachable}, nil
	}
	return ctrl.Result{}, nil
}

// backendStatus is a backend's next status: the Ready condition its check gave, for generation. Ready's
// LastTransitionTime moves to now when its status flips.
func backendStatus(st v1alpha1.TaskBackendStatus, generation int64, ready metav1.Condition, now time.Time) v1alpha1.TaskBackendStatus {
	st = *st.DeepCopy()
	st.ObservedGeneration = generation
	ready.ObservedGeneration = generation
	ready.LastTransitionTime = metav1.NewTime(now)
	meta.SetStatusCondition(&st.Conditions, ready)
	return st
}

// check connects to the backend and makes one request; the result is the Ready condition, or how long to
// wait when the request could not be sent yet.
func (r *BackendReconciler) check(ctx context.Context, key backendKey) (metav1.Condition, time.Duration) {
	notReady := func(err error) metav1.Condition {
		return metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse,
			Reason: classify(err).backendReason, Message: errorMessage(err)}
	}
	conn, err := r.connector.connect(ctx, key, "")
	if err != nil {
		return notReady(err), 0
	}
	ctx, cancel := context.WithTimeout(conn.withLoginMetrics(ctx), 3*durationOr(conn.spec.RequestTimeout, defaultRequestTimeout))
	defer cancel()
	if err := conn.backend.Check(ctx); err != nil {
		if wait, deferred := backend.DeferredFor(err); deferred {
			return metav1.Condition{}, wait
		}
		return notReady(err), 0
	}
	message := "The vendor answered with these credentials"
	if conn.spec.TLS != nil && conn.spec.TLS.InsecureSkipVerify {
		message += "; WARNING: TLS certificate verification is off (tls.insecureSkipVerify)"
		log.FromContext(ctx).Info("TLS certificate verification is off for this backend", "backend", key.String())
	}
	return metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonReady, Message: message}, 0
}

// newObject returns an empty backend object of the reconciler's kind and a pointer to its status.
func (r *BackendReconciler) newObject() (client.Object, *v1alpha1.TaskBackendStatus) {
	if r.Kind == v1alpha1.BackendKindClusterTaskBackend {
		b := &v1alpha1.ClusterTaskBackend{}
		return b, &b.Status
	}
	b := &v1alpha1.TaskBackend{}
	return b, &b.Status
}

// specOf returns the spec of a backend object of the reconciler's kind.
func (r *BackendReconciler) specOf(obj client.Object) v1alpha1.TaskBackendSpec {
	if b, ok := obj.(*v1alpha1.ClusterTaskBackend); ok {
		return b.Spec
	}
	return obj.(*v1alpha1.TaskBackend).Spec
}

// setupWithManager registers the reconciler for its kind.
func (r *BackendReconciler) setupWithManager(mgr ctrl.Manager, connector *connector) error {
	r.connector = connector
	if r.clock == nil {
		r.clock = clock.RealClock{}
	}
	obj, _ := r.newObject()
	return ctrl.NewControllerManagedBy(mgr).
		For(obj, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		WatchesRawSource(r.gained.source()).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(secretToBackends(r.Kind, mgr.GetClient())),
			builder.WithPredicates(predicate.ResourceVersionChangedPredicate{}), builder.OnlyMetadata).
		Named(strings.ToLower(string(r.Kind))).
		Complete(r)
}
