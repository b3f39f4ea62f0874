package controller

import (
	"fmt"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
)

// ShardLabel assigns an AsyncTask to the operator started with the same --shard; tasks without it belong to
// the operator started without --shard.
const ShardLabel = "tasks.asynctask.dev/shard"

// CacheOptions returns the manager cache settings for opts: only the AsyncTasks of the shard are cached (and
// so reconciled), only the given namespaces are watched when any are given, managed fields are dropped
// from every cached object to save memory, and Secrets are cached as their identity only (see
// secretMetadataCache).
func CacheOptions(opts Options, watchNamespaces []string) (cache.Options, error) {
	shard, err := shardSelector(opts.Shard)
	if err != nil {
		return cache.Options{}, err
	}
	secrets, secretsConfig := secretMetadataCache()
	out := cache.Options{
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			// Read without a copy: the reconciler copies a task only when it writes its status.
			&v1alpha1.AsyncTask{}: {Label: shard, Transform: trimTask, UnsafeDisableDeepCopy: ptr.To(true)},
			secrets:               secretsConfig,
		},
	}
	if len(watchNamespaces) > 0 {
		out.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range watchNamespaces {
			out.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	return out, nil
}

// shardSelector selects the tasks labelled with the shard, or the unlabelled ones for the default shard.
func shardSelector(shard string) (labels.Selector, error) {
	op, values := selection.Equals, []string{shard}
	if shard == "" {
		op, values = selection.DoesNotExist, nil
	}
	req, err := labels.NewRequirement(ShardLabel, op, values)
	if err != nil {
		return nil, fmt.Errorf("--shard %q is not a valid label value: %w", shard, err)
	}
	return labels.NewSelector().Add(*req), nil
}

// trimTask is the cache transform of AsyncTasks. It keeps only what the operator reads, since a cluster may
// hold many tasks, most of them finished (docs/performance.md):
//   - no managed fields, labels, annotations or owner references (the shard label is selected by the API
//     server; kubectl's last-applied annotation alone holds a copy of the spec), but the operator's own
//     annotations of an unfinished task with spec.submit, which the submission protocol and its queue read;
//   - of a finished task, only what decides its deletion (ttlSecondsAfterFinished, completionTime) and what
//     the metrics count (backendRef, phase): it is never polled, and its status never written, again;
//   - the short strings that repeat across tasks (namespace, backend, phase, condition types, statuses and
//     reasons) are shared, and a condition's message that equals status.message shares its memory.
//
// No status is ever computed from a trimmed finished task: the reconciler returns before, as it does for every
// finished task. The status patch of a running task is a diff of two objects trimmed alike, so it never drops
// a field the cache does not hold.
func trimTask(obj any) (any, error) {
	task, ok := obj.(*v1alpha1.AsyncTask)
	if !ok {
		return obj, nil
	}
	task.ManagedFields, task.Labels, task.OwnerReferences = nil, nil, nil
	task.Annotations = operatorAnnotations(task)
	task.APIVersion, task.Kind = sharedString(task.APIVersion), sharedString(task.Kind)
	task.Namespace = sharedString(task.Namespace)
	task.Spec.BackendRef.Name = sharedString(task.Spec.BackendRef.Name)
	st := &task.Status
	if st.Phase.Finished() {
		task.Spec = v1alpha1.AsyncTaskSpec{BackendRef: task.Spec.BackendRef, TTLSecondsAfterFinished: task.Spec.TTLSecondsAfterFinished}
		task.Status = v1alpha1.AsyncTaskStatus{Phase: st.Phase, CompletionTime: st.CompletionTime, ObservedGeneration: st.ObservedGeneration}
		return task, nil
	}
	st.VendorStatus = sharedString(st.VendorStatus)
	for i := range st.Conditions {
		c := &st.Conditions[i]
		c.Type, c.Reason = sharedString(c.Type), sharedString(c.Reason)
		c.Status = metav1.ConditionStatus(sharedString(string(c.Status)))
		if c.Message == st.Message {
			c.Message = st.Message
		} else {
			c.Message = sharedString(c.Message)
		}
	}
	return task, nil
}

// operatorAnnotations keeps the tasks.asynctask.dev/ annotations the operator acts on while a task is unfinished
// (a request for a poll now; for a task with spec.submit also the submission's records and a person's
// resolution), and nothing else.
func operatorAnnotations(task *v1alpha1.AsyncTask) map[string]string {
	if task.Status.Phase.Finished() {
		return nil
	}
	keys := []string{v1alpha1.AnnotationRequestedAt}
	if task.Spec.Submit != nil {
		keys = append(keys, v1alpha1.AnnotationSubmitAttempt, v1alpha1.AnnotationTaskID, v1alpha1.AnnotationResolve)
	}
	var kept map[string]string
	for _, k := range keys {
		if v, ok := task.Annotations[k]; ok {
			if kept == nil {
				kept = make(map[string]string, len(keys))
			}
			kept[k] = v
		}
	}
	return kept
}

// Bounds of the strings sharedString shares: short ones, and only so many, so that tenants who write many
// distinct names cannot grow the table without bound (a string past the bound is kept as it is).
const (
	maxSharedStringLength = 64
	maxSharedStrings      = 1 << 14
)

var sharedStrings = struct {
	sync.Mutex
	m map[string]string
}{m: map[string]string{}}

// sharedString returns one copy of s for every task that holds the same short string.
func sharedString(s string) string {
	if s == "" || len(s) > maxSharedStringLength {
		return s
	}
	sharedStrings.Lock()
	defer sharedStrings.Unlock()
	if shared, ok := sharedStrings.m[s]; ok {
		return shared
	}
	if len(sharedStrings.m) < maxSharedStrings {
		sharedStrings.m[s] = s
	}
	return s
}
