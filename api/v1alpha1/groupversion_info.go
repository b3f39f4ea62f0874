// Package v1alpha1 contains the API types of the tasks.asynctask.dev group: AsyncTask, TaskBackend and
// ClusterTaskBackend.
// +kubebuilder:object:generate=true
// +groupName=tasks.asynctask.dev
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of these types.
	GroupVersion = schema.GroupVersion{Group: "tasks.asynctask.dev", Version: "v1alpha1"}

	// SchemeBuilder adds the types of this group to a scheme. It is apimachinery's, not controller-runtime's,
	// so that importing these types needs no controller-runtime.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the types of this group to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme

	// knownTypes are the kinds of this group, registered by each kind's file.
	knownTypes []runtime.Object
)

// registerTypes adds kinds to the group.
func registerTypes(objects ...runtime.Object) { knownTypes = append(knownTypes, objects...) }

func addKnownTypes(scheme *runtime.Scheme) error {
	scheme.AddKnownTypes(GroupVersion, knownTypes...)
	metav1.AddToGroupVersion(scheme, GroupVersion)
	return nil
}
