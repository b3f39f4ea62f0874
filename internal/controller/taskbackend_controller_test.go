package controller

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
)

func TestBackendIsReadyWhenTheVendorAcceptsTheCredentials(t *testing.T) {
	ns := newNamespace(t)
	b := createBackend(t, ns, "apig", apigSpec(), apigToken(simToken))
	ready := waitForBackendReady(t, b, metav1.ConditionTrue, v1alpha1.ReasonReady)
	NewWithT(t).Expect(ready.Message).NotTo(ContainSubstring(simToken))
}

func TestBackendWithWrongTokenIsNotReady(t *testing.T) {
	ns := newNamespace(t)
	b := createBackend(t, ns, "apig", apigSpec(), apigToken("wrong-token-value"))
	ready := waitForBackendReady(t, b, metav1.ConditionFalse, v1alpha1.ReasonAuthenticationFailed)
	g := NewWithT(t)
	g.Expect(ready.Message).To(ContainSubstring("APIG.1002"))
	g.Expect(ready.Message).NotTo(ContainSubstring("wrong-token-value"))
}

func TestBackendWithoutItsSecretBecomesReadyWhenTheSecretAppears(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	spec := apigSpec()
	spec.CredentialsSecretRef = &v1alpha1.SecretReference{Name: "later"}
	b := createBackend(t, ns, "apig", spec, nil)
	ready := waitForBackendReady(t, b, metav1.ConditionFalse, v1alpha1.ReasonSecretNotFound)
	g.Expect(ready.Message).To(ContainSubstring(ns + "/later"))

	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "later"}, StringData: map[string]string{"token": simToken}}
	g.Expect(k8sClient.Create(context.Background(), secret)).To(Succeed())
	waitForBackendReady(t, b, metav1.ConditionTrue, v1alpha1.ReasonReady)
}

func TestBackendWithIncompleteCredentialsIsInvalidConfig(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	b := createBackend(t, ns, "apig", apigSpec(), map[string]string{"tokn": simToken})
	ready := waitForBackendReady(t, b, metav1.ConditionFalse, v1alpha1.ReasonInvalidConfig)
	g.Expect(ready.Message).To(ContainSubstring("token"))
}

func TestClusterTaskBackendServesTasksInAnyNamespace(t *testing.T) {
	g := NewWithT(t)
	secretNS := newNamespace(t)
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: secretNS, Name: "creds"}, StringData: map[string]string{"token": simToken}}
	g.Expect(k8sClient.Create(context.Background(), secret)).To(Succeed())
	spec := apigSpec()
	spec.URL = simURL
	spec.CredentialsSecretRef = &v1alpha1.SecretReference{Name: "creds", Namespace: secretNS}
	spec.PollInterval = &metav1.Duration{Duration: time.Second}
	b := &v1alpha1.ClusterTaskBackend{ObjectMeta: metav1.ObjectMeta{Name: "apig-" + secretNS}, Spec: spec}
	g.Expect(k8sClient.Create(context.Background(), b)).To(Succeed())
	waitForBackendReady(t, b, metav1.ConditionTrue, v1alpha1.ReasonReady)

	taskNS := newNamespace(t)
	id := uniqueTaskID(t)
	sim.AddTask(id, simSucceeded())
	createTask(t, taskNS, "shared", b.Name, id, func(task *v1alpha1.AsyncTask) {
		task.Spec.BackendRef.Kind = v1alpha1.BackendKindClusterTaskBackend
	})
	waitForPhase(t, taskNS, "shared", v1alpha1.TaskPhaseSucceeded)
}
