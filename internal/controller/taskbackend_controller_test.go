package controller

import (
	"context"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
)

// waitForBackendReady polls a TaskBackend until its Ready condition has the given status and reason, and
// returns the condition.
func waitForBackendReady(t *testing.T, obj client.Object, status metav1.ConditionStatus, reason string) *metav1.Condition {
	t.Helper()
	var ready *metav1.Condition
	NewWithT(t).Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(context.Background(), client.ObjectKeyFromObject(obj), obj)).To(Succeed())
		var st v1alpha1.TaskBackendStatus
		switch b := obj.(type) {
		case *v1alpha1.TaskBackend:
			st = b.Status
		case *v1alpha1.ClusterTaskBackend:
			st = b.Status
		}
		ready = condition(st.Conditions, v1alpha1.ConditionReady)
		g.Expect(ready).NotTo(BeNil())
		g.Expect(ready.Status).To(Equal(status))
		g.Expect(ready.Reason).To(Equal(reason))
		g.Expect(st.ObservedGeneration).To(Equal(obj.GetGeneration()))
	}, eventually, tick).Should(Succeed())
	return ready
}

func TestBackendIsReadyWhenTheVendorAcceptsTheCredentials(t *testing.T) {
	ns := newNamespace(t)
	b := createAPIGatewayBackend(t, ns, "apig", simToken)
	ready := waitForBackendReady(t, b, metav1.ConditionTrue, v1alpha1.ReasonReady)
	NewWithT(t).Expect(ready.Message).NotTo(ContainSubstring(simToken))
}

func TestBackendWithWrongTokenIsNotReady(t *testing.T) {
	ns := newNamespace(t)
	b := createAPIGatewayBackend(t, ns, "apig", "wrong-token-value")
	ready := waitForBackendReady(t, b, metav1.ConditionFalse, v1alpha1.ReasonAuthenticationFailed)
	g := NewWithT(t)
	g.Expect(ready.Message).To(ContainSubstring("APIG.1002"))
	g.Expect(ready.Message).NotTo(ContainSubstring("wrong-token-value"))
}

func TestBackendWithoutItsSecretBecomesReadyWhenTheSecretAppears(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	b := &v1alpha1.TaskBackend{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "apig"},
		Spec: v1alpha1.TaskBackendSpec{
			Type: v1alpha1.BackendTypeAPIGateway, URL: simURL,
			CredentialsSecretRef: &v1alpha1.SecretReference{Name: "later"},
			APIGateway:           &v1alpha1.APIGatewaySettings{ProjectID: "p1", InstanceID: "i1"},
		},
	}
	g.Expect(k8sClient.Create(context.Background(), b)).To(Succeed())
	ready := waitForBackendReady(t, b, metav1.ConditionFalse, v1alpha1.ReasonSecretNotFound)
	g.Expect(ready.Message).To(ContainSubstring(ns + "/later"))

	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "later"}, StringData: map[string]string{"token": simToken}}
	g.Expect(k8sClient.Create(context.Background(), secret)).To(Succeed())
	waitForBackendReady(t, b, metav1.ConditionTrue, v1alpha1.ReasonReady)
}

func TestBackendWithIncompleteCredentialsIsInvalidConfig(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "creds"}, StringData: map[string]string{"tokn": simToken}}
	g.Expect(k8sClient.Create(context.Background(), secret)).To(Succeed())
	b := &v1alpha1.TaskBackend{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "apig"},
		Spec: v1alpha1.TaskBackendSpec{
			Type: v1alpha1.BackendTypeAPIGateway, URL: simURL,
			CredentialsSecretRef: &v1alpha1.SecretReference{Name: "creds"},
			APIGateway:           &v1alpha1.APIGatewaySettings{ProjectID: "p1", InstanceID: "i1"},
		},
	}
	g.Expect(k8sClient.Create(context.Background(), b)).To(Succeed())
	ready := waitForBackendReady(t, b, metav1.ConditionFalse, v1alpha1.ReasonInvalidConfig)
	g.Expect(ready.Message).To(ContainSubstring("token"))
}

func TestClusterTaskBackendServesTasksInAnyNamespace(t *testing.T) {
	g := NewWithT(t)
	secretNS := newNamespace(t)
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: secretNS, Name: "creds"}, StringData: map[string]string{"token": simToken}}
	g.Expect(k8sClient.Create(context.Background(), secret)).To(Succeed())
	b := &v1alpha1.ClusterTaskBackend{
		ObjectMeta: metav1.ObjectMeta{Name: "apig-" + secretNS},
		Spec: v1alpha1.TaskBackendSpec{
			Type: v1alpha1.BackendTypeAPIGateway, URL: simURL,
			CredentialsSecretRef: &v1alpha1.SecretReference{Name: "creds", Namespace: secretNS},
			PollInterval:         &metav1.Duration{Duration: 1e9},
			APIGateway:           &v1alpha1.APIGatewaySettings{ProjectID: "p1", InstanceID: "i1"},
		},
	}
	g.Expect(k8sClient.Create(context.Background(), b)).To(Succeed())
	waitForBackendReady(t, b, metav1.ConditionTrue, v1alpha1.ReasonReady)

	taskNS := newNamespace(t)
	id := uniqueTaskID(t)
	sim.AddTask(id, simSucceeded())
	createTask(t, taskNS, "shared", b.Name, id, func(task *v1alpha1.AsyncTask) {
		task.Spec.BackendRef.Kind = v1alpha1.BackendKindClusterTaskBackend
	})
	waitForTask(t, taskNS, "shared", func(g Gomega, task *v1alpha1.AsyncTask) {
		g.Expect(task.Status.Phase).To(Equal(v1alpha1.TaskPhaseSucceeded))
	})
}
