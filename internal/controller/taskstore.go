package controller

import (
	"context"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
)

// taskStore is the submission protocol's Store: reads from the API server, and merge patches that carry the
// resourceVersion the task was read at, so the API server refuses them when the task changed since.
type taskStore struct {
	client     client.Client
	reader     client.Reader
	fieldOwner string
}

func (s *taskStore) Get(ctx context.Context, key types.NamespacedName) (*v1alpha1.AsyncTask, error) {
	task := &v1alpha1.AsyncTask{}
	if err := s.reader.Get(ctx, key, task); err != nil {
		return nil, err
	}
	return task, nil
}

func (s *taskStore) SetAnnotations(ctx context.Context, task *v1alpha1.AsyncTask, set map[string]string, remove []string) (*v1alpha1.AsyncTask, error) {
	after := task.DeepCopy()
	if after.Annotations == nil {
		after.Annotations = map[string]string{}
	}
	for k, v := range set {
		after.Annotations[k] = v
	}
	for _, k := range remove {
		delete(after.Annotations, k)
	}
	patch := client.MergeFromWithOptions(task, client.MergeFromWithOptimisticLock{})
	if err := s.client.Patch(ctx, after, patch, client.FieldOwner(s.fieldOwner)); err != nil {
		return nil, err
	}
	return after, nil
}

func (s *taskStore) SetStatus(ctx context.Context, task *v1alpha1.AsyncTask, status v1alpha1.AsyncTaskStatus) (*v1alpha1.AsyncTask, error) {
	after := task.DeepCopy()
	after.Status = status
	patch := client.MergeFromWithOptions(task, client.MergeFromWithOptimisticLock{})
	err := s.client.Status().Patch(ctx, after, patch, client.FieldOwner(s.fieldOwner))
	recordStatusWrite("AsyncTask", err)
	if err != nil {
		return nil, err
	}
	return after, nil
}
