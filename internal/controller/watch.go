package controller

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
)

// Field indexes that map a changed backend or Secret to what depends on it.
const (
	// taskBackendIndex indexes unfinished AsyncTasks by backendKey.String() of the backend they use.
	taskBackendIndex = ".spec.backendRef"
	// backendSecretIndex indexes TaskBackends and ClusterTaskBackends by "namespace/name" of each Secret they read.
	backendSecretIndex = ".spec.secretRefs" //nolint:gosec // G101: an index name, no credential
)

// addIndexes registers the field indexes with the manager's cache.
func addIndexes(ctx context.Context, mgr ctrl.Manager) error {
	indexer := mgr.GetFieldIndexer()
	if err := indexer.IndexField(ctx, &v1alpha1.AsyncTask{}, taskBackendIndex, func(obj client.Object) []string {
		task := obj.(*v1alpha1.AsyncTask)
		if task.Status.Phase.Finished() {
			return nil // never rescheduled by a backend's change; leaving them out saves two entries per finished task
		}
		return []string{backendKeyOf(task).String()}
	}); err != nil {
		return fmt.Errorf("indexing AsyncTasks by backend: %w", err)
	}
	if err := indexer.IndexField(ctx, &v1alpha1.TaskBackend{}, backendSecretIndex, func(obj client.Object) []string {
		b := obj.(*v1alpha1.TaskBackend)
		return secretKeys(backendKey{Kind: v1alpha1.BackendKindTaskBackend, Namespace: b.Namespace, Name: b.Name}, &b.Spec)
	}); err != nil {
		return fmt.Errorf("indexing TaskBackends by Secret: %w", err)
	}
	if err := indexer.IndexField(ctx, &v1alpha1.ClusterTaskBackend{}, backendSecretIndex, func(obj client.Object) []string {
		b := obj.(*v1alpha1.ClusterTaskBackend)
		return secretKeys(backendKey{Kind: v1alpha1.BackendKindClusterTaskBackend, Name: b.Name}, &b.Spec)
	}); err != nil {
		return fmt.Errorf("indexing ClusterTaskBackends by Secret: %w", err)
	}
	return nil
}

// secretKeys lists "namespace/name" of the Secrets a backend reads.
func secretKeys(key backendKey, spec *v1alpha1.TaskBackendSpec) []string {
	var keys []string
	if ref := spec.CredentialsSecretRef; ref != nil {
		keys = append(keys, secretNamespace(key, ref.Namespace)+"/"+ref.Name)
	}
	if spec.TLS != nil && spec.TLS.CASecretRef != nil {
		ref := spec.TLS.CASecretRef
		keys = append(keys, secretNamespace(key, ref.Namespace)+"/"+ref.Name)
	}
	return keys
}

// backendsUsingSecret returns the keys of the backends that read a Secret.
func backendsUsingSecret(ctx context.Context, c client.Reader, secret client.Object) []backendKey {
	index := client.MatchingFields{backendSecretIndex: secret.GetNamespace() + "/" + secret.GetName()}
	var keys []backendKey
	namespaced := &v1alpha1.TaskBackendList{}
	if err := c.List(ctx, namespaced, client.InNamespace(secret.GetNamespace()), index); err != nil {
		log.FromContext(ctx).Error(err, "Cannot list TaskBackends that use a Secret", "secret", client.ObjectKeyFromObject(secret))
	}
	for _, b := range namespaced.Items {
		keys = append(keys, backendKey{Kind: v1alpha1.BackendKindTaskBackend, Namespace: b.Namespace, Name: b.Name})
	}
	cluster := &v1alpha1.ClusterTaskBackendList{}
	if err := c.List(ctx, cluster, index); err != nil {
		log.FromContext(ctx).Error(err, "Cannot list ClusterTaskBackends that use a Secret", "secret", client.ObjectKeyFromObject(secret))
	}
	for _, b := range cluster.Items {
		keys = append(keys, backendKey{Kind: v1alpha1.BackendKindClusterTaskBackend, Name: b.Name})
	}
	return keys
}

// taskMapper maps backend and Secret events to the tasks that use them, and makes those tasks due at once so
// that a fixed backend or Secret takes effect without waiting out a backoff.
type taskMapper struct {
	client   client.Reader
	schedule *scheduler
	// changed, when set, is told of every change of a backend or of a Secret a backend reads (connector.changed).
	changed func()
}

func (m *taskMapper) noteChange() {
	if m.changed != nil {
		m.changed()
	}
}

func (m *taskMapper) forBackend(ctx context.Context, obj client.Object) []reconcile.Request {
	m.noteChange()
	key := backendKey{Kind: v1alpha1.BackendKindTaskBackend, Namespace: obj.GetNamespace(), Name: obj.GetName()}
	if _, ok := obj.(*v1alpha1.ClusterTaskBackend); ok {
		key = backendKey{Kind: v1alpha1.BackendKindClusterTaskBackend, Name: obj.GetName()}
	}
	return m.tasksOf(ctx, key, m.schedule.pollNow)
}

func (m *taskMapper) forSecret(ctx context.Context, obj client.Object) []reconcile.Request {
	var requests []reconcile.Request
	backends := backendsUsingSecret(ctx, m.client, obj)
	if len(backends) > 0 {
		m.noteChange()
	}
	for _, key := range backends {
		requests = append(requests, m.tasksOf(ctx, key, m.schedule.pollNow)...)
	}
	return requests
}

// forNamespace maps a namespace whose labels changed to its unfinished tasks on ClusterTaskBackends, whose
// allowedNamespaces may now select it or no longer.
func (m *taskMapper) forNamespace(ctx context.Context, obj client.Object) []reconcile.Request {
	tasks := &v1alpha1.AsyncTaskList{}
	if err := m.client.List(ctx, tasks, client.InNamespace(obj.GetName())); err != nil {
		log.FromContext(ctx).Error(err, "Cannot list the tasks of a namespace", "namespace", obj.GetName())
		return nil
	}
	var requests []reconcile.Request
	for _, t := range tasks.Items {
		if t.Spec.BackendRef.Kind != v1alpha1.BackendKindClusterTaskBackend || t.Status.Phase.Finished() {
			continue
		}
		if m.schedule.pollNow(taskKey(&t), t.UID) {
			requests = append(requests, reconcile.Request{NamespacedName: taskKey(&t)})
		}
	}
	return requests
}

// tasksOf reschedules each unfinished task of a backend with reschedule (pollNow: due at once; wake: due at
// its regular time) and returns those it moved, to be queued. Tasks the scheduler does not know yet are not
// moved: their own first reconcile comes.
func (m *taskMapper) tasksOf(ctx context.Context, key backendKey, reschedule func(types.NamespacedName, types.UID) bool) []reconcile.Request {
	tasks := &v1alpha1.AsyncTaskList{}
	opts := []client.ListOption{client.MatchingFields{taskBackendIndex: key.String()}}
	if key.Namespace != "" {
		opts = append(opts, client.InNamespace(key.Namespace))
	}
	if err := m.client.List(ctx, tasks, opts...); err != nil {
		log.FromContext(ctx).Error(err, "Cannot list the tasks of a backend", "backend", key.String())
		return nil
	}
	requests := make([]reconcile.Request, 0, len(tasks.Items))
	for _, t := range tasks.Items { // unfinished ones only: the index leaves finished tasks out
		// A task whose job is not started yet is not on the schedule: it waits for its backend (an operation
		// it names, a Secret) and looks again at once.
		if reschedule(taskKey(&t), t.UID) || t.Spec.Submit != nil && t.Status.TaskID == "" {
			requests = append(requests, reconcile.Request{NamespacedName: taskKey(&t)})
		}
	}
	return requests
}

// secretToBackends maps a Secret event to the backends that read it, for the backend reconcilers.
func secretToBackends(kind v1alpha1.BackendKind, c client.Reader) func(context.Context, client.Object) []reconcile.Request {
	return func(ctx context.Context, obj client.Object) []reconcile.Request {
		var requests []reconcile.Request
		for _, key := range backendsUsingSecret(ctx, c, obj) {
			if key.Kind == kind {
				requests = append(requests, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: key.Namespace, Name: key.Name}})
			}
		}
		return requests
	}
}
