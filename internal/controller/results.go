package controller

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/internal/backend"
)

const (
	// resultConfigMapKey holds the full result in a task's resultConfigMap.
	resultConfigMapKey = "result.json"
	// maxConfigMapResultBytes keeps the ConfigMap under the API server's 1 MiB object limit, with room for
	// its metadata.
	maxConfigMapResultBytes = 1000 * 1024
)

// writeResultConfigMap writes the observed result to the task's resultConfigMap, when it names one and the
// vendor gave a result. It runs before the status is computed and written, so a task is never recorded
// finished while its result is still unwritten. A result that cannot be written where the task asks (too
// large for a ConfigMap, or the ConfigMap belongs to something else) is not written: the returned note says
// so, for the status message, and the task goes on as usual instead of failing the write for ever.
func (r *AsyncTaskReconciler) writeResultConfigMap(ctx context.Context, task *v1alpha1.AsyncTask, outcome pollOutcome) (note string, err error) {
	ref := task.Spec.ResultConfigMap
	if ref == nil || outcome.observation == nil || len(outcome.observation.Result) == 0 {
		return "", nil
	}
	result := outcome.observation.Result
	if len(result) > maxConfigMapResultBytes {
		return fmt.Sprintf("The result (%d bytes) is larger than a ConfigMap can hold (1 MiB) and was not written to ConfigMap %s",
			len(result), ref.Name), nil
	}
	cm := &corev1.ConfigMap{}
	// Read past the cache: the operator does not watch ConfigMaps, it only writes the ones tasks name.
	err = r.APIReader.Get(ctx, client.ObjectKey{Namespace: task.Namespace, Name: ref.Name}, cm)
	switch {
	case apierrors.IsNotFound(err):
		cm = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: task.Namespace, Name: ref.Name}}
		if err := controllerutil.SetControllerReference(task, cm, r.Scheme); err != nil {
			return "", err
		}
		cm.Data = map[string]string{resultConfigMapKey: string(result)}
		return "", r.Create(ctx, cm)
	case err != nil:
		return "", err
	}
	if !metav1.IsControlledBy(cm, task) {
		return fmt.Sprintf("ConfigMap %s exists and does not belong to this task; the result was not written to it", ref.Name), nil
	}
	if cm.Data[resultConfigMapKey] == string(result) {
		return "", nil // the same content is never written twice
	}
	if cm.Data == nil {
		cm.Data = map[string]string{}
	}
	cm.Data[resultConfigMapKey] = string(result)
	return "", r.Update(ctx, cm)
}

// appendSentence joins two one-line messages, within the length of a status message.
func appendSentence(message, sentence string) string {
	if message == "" {
		return sentence
	}
	return backend.OneLine(message+"; "+sentence, backend.MaxMessageLength)
}
