package controller

import (
	"context"

	"sigs.k8s.io/controller-runtime/pkg/client"
)

// patchStatus writes after's status when it differs from before's, the same object as read: one merge patch
// of the status subresource, under the operator's field owner, refused when the object changed since it was
// read (so that a status computed from a stale read never overwrites a newer one; the next reconcile reads
// again). Statuses are compared as the API server stores them (statusEquality). It reports whether it wrote.
func patchStatus(ctx context.Context, c client.Client, fieldOwner string, before, after client.Object) (bool, error) {
	if statusEquality.DeepEqual(before, after) {
		return false, nil
	}
	patch := client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{})
	if err := c.Status().Patch(ctx, after, patch, client.FieldOwner(fieldOwner)); err != nil {
		return false, err
	}
	return true, nil
}
