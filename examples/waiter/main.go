package main

import (
	"os"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
)

func main() {
	ctrl.SetLogger(zap.New())
	log := ctrl.Log.WithName("waiter")

	scheme, err := newScheme()
	if err != nil {
		log.Error(err, "Cannot build the scheme")
		os.Exit(1)
	}
	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), ctrl.Options{Scheme: scheme})
	if err != nil {
		log.Error(err, "Cannot create the manager")
		os.Exit(1)
	}
	if err := (&TaskWaiter{Client: mgr.GetClient()}).SetupWithManager(mgr); err != nil {
		log.Error(err, "Cannot set up the controller")
		os.Exit(1)
	}
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		log.Error(err, "Manager stopped")
		os.Exit(1)
	}
}

// newScheme knows the built-in kinds (ConfigMap) and the asynctask API's.
func newScheme() (*runtime.Scheme, error) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	return scheme, nil
}
