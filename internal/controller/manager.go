package controller

import (
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
)

// NewScheme returns a scheme of every kind the operator reads or writes: the built-in kinds and its own.
func NewScheme() *runtime.Scheme {
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(v1alpha1.AddToScheme(scheme))
	return scheme
}

// ManagerOptions returns the options of the operator's manager for opts: NewScheme, the cache of
// CacheOptions, and the metrics and health-probe servers off. cmd/main.go turns those on and adds leader
// election; the demo, the benchmark and the tests use the options as they are.
func ManagerOptions(opts Options, watchNamespaces []string) (ctrl.Options, error) {
	cacheOptions, err := CacheOptions(opts, watchNamespaces)
	if err != nil {
		return ctrl.Options{}, err
	}
	return ctrl.Options{
		Scheme:                 NewScheme(),
		Cache:                  cacheOptions,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
	}, nil
}
