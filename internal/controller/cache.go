package controller

import (
	"fmt"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
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
			&v1alpha1.AsyncTask{}: {Label: shard},
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
