package controller

import (
	"context"

	"sigs.k8s.io/controller-runtime/pkg/client"
)

// patchStatus writes after's status when it differs from before's, the same object as read: one merge patch
// of the status subresource, under the operator's field owner, refused when the object changed since it was
// read (so that a status computed from a stale read never overwrites a newer one; the next reconcile reads
// again). Statuses are compared as the API server stores them (statusEquality). It reports whether it wrote,
// and counts the write under resource (the object's kind) in asynctask_status_writes_total.
func patchStatus(ctx context.Context, c client.Client, fieldOwner string, before, after client.Object, resource string) (bool, error) {
	if statusEquality.DeepEqual(before, after) {
		return false, nil
	}
	patch := client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})
	err := c.Status().Patch(ctx, after, patch, client.FieldOwner(fieldOwner))
	recordStatusWrite(resource, err)
	if err != nil {
		return false, err
	}
	return true, nil
}
