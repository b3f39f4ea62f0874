package controller

import (
	"context"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/test/vendorsim"
)

func TestActiveDeadlineFailsARunningTaskAndStopsPolling(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	createBackend(t, ns, "apig", apigSpec(), apigToken(simToken))
	id := uniqueTaskID(t)
	sim.AddTask(id, vendorsim.Step{Phase: vendorsim.Running})
	createTask(t, ns, "slow", "apig", id, func(task *v1alpha1.AsyncTask) { task.Spec.ActiveDeadlineSeconds = ptr.To[int64](2) })

	task := waitForPhase(t, ns, "slow", v1alpha1.TaskPhaseFailed)
	expectCondition(g, task.Status.Conditions, v1alpha1.ConditionStalled, metav1.ConditionTrue, v1alpha1.ReasonDeadlineExceeded)
	expectCondition(g, task.Status.Conditions, v1alpha1.ConditionFinished, metav1.ConditionTrue, v1alpha1.ReasonDeadlineExceeded)
	g.Expect(task.Status.Message).To(ContainSubstring("activeDeadlineSeconds"))
	polls := sim.Polls(id)
	g.Consistently(func() int { return sim.Polls(id) }, 3*time.Second, tick).Should(Equal(polls))
}

func TestTTLDeletesAFinishedTask(t *testing.T) {
	ns := newNamespace(t)
	createBackend(t, ns, "apig", apigSpec(), apigToken(simToken))
	id := uniqueTaskID(t)
	sim.AddTask(id, simSucceeded())
	createTask(t, ns, "short-lived", "apig", id, func(task *v1alpha1.AsyncTask) { task.Spec.TTLSecondsAfterFinished = ptr.To[int32](1) })

	NewWithT(t).Eventually(func() bool {
		err := k8sClient.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "short-lived"}, &v1alpha1.AsyncTask{})
		return apierrors.IsNotFound(err)
	}, eventually, tick).Should(BeTrue(), "the task is deleted after its TTL")
}

func TestProgressDeadlineMarksStalledAndClearsWhenTheTaskMoves(t *testing.T) {
	ns := newNamespace(t)
	createBackend(t, ns, "apig", apigSpec(), apigToken(simToken))
	id := uniqueTaskID(t)
	// "waiting" for 4 s, then "processing" for 4 s: the vendor status moves once.
	sim.AddTimedTask(id, 4*time.Second, vendorsim.Step{Phase: vendorsim.Pending}, vendorsim.Step{Phase: vendorsim.Running},
		vendorsim.Step{Phase: vendorsim.Running}, simSucceeded())
	createTask(t, ns, "stuck", "apig", id, func(task *v1alpha1.AsyncTask) { task.Spec.ProgressDeadlineSeconds = ptr.To[int32](2) })

	waitForTask(t, ns, "stuck", func(g Gomega, task *v1alpha1.AsyncTask) {
		g.Expect(task.Status.Phase).To(Equal(v1alpha1.TaskPhasePending))
		expectCondition(g, task.Status.Conditions, v1alpha1.ConditionStalled, metav1.ConditionTrue, v1alpha1.ReasonProgressDeadlineExceeded)
		expectCondition(g, task.Status.Conditions, v1alpha1.ConditionReconciling, metav1.ConditionTrue, v1alpha1.ReasonPending)
	})
	waitForTask(t, ns, "stuck", func(g Gomega, task *v1alpha1.AsyncTask) {
		g.Expect(task.Status.Phase).To(Equal(v1alpha1.TaskPhaseRunning))
		g.Expect(condition(task.Status.Conditions, v1alpha1.ConditionStalled)).To(BeNil(), "the stall clears when the task moves")
	})
}

func TestRetryAfterPausesEveryTaskOfTheBackend(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	createBackend(t, ns, "apig", apigSpec(), apigToken(simToken))
	limited, other := uniqueTaskID(t)+"a", uniqueTaskID(t)+"b"
	sim.AddTask(limited, vendorsim.Step{HTTPStatus: http.StatusTooManyRequests, RetryAfter: 4}, simSucceeded())
	sim.AddTask(other, simSucceeded())
	createTask(t, ns, "limited", "apig", limited)
	waitForTask(t, ns, "limited", func(g Gomega, task *v1alpha1.AsyncTask) {
		g.Expect(task.Status.Message).To(ContainSubstring("HTTP 429"))
	})

	createTask(t, ns, "other", "apig", other)
	waitForTask(t, ns, "other", func(g Gomega, task *v1alpha1.AsyncTask) {
		g.Expect(task.Status.Message).To(ContainSubstring("paused until"))
	})
	g.Expect(sim.Polls(other)).To(BeZero(), "no request reaches the vendor during its Retry-After")
	waitForPhase(t, ns, "other", v1alpha1.TaskPhaseSucceeded)
	waitForPhase(t, ns, "limited", v1alpha1.TaskPhaseSucceeded)
}

func TestResultGoesToItsConfigMap(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	createBackend(t, ns, "apig", apigSpec(), apigToken(simToken))
	small, large, huge := uniqueTaskID(t)+"a", uniqueTaskID(t)+"b", uniqueTaskID(t)+"c"
	largeResult := fmt.Sprintf(`{"content":%q}`, strings.Repeat("x", 100<<10))
	sim.AddTask(small, vendorsim.Step{Phase: vendorsim.Succeeded, Result: `{"group_id":"g1"}`})
	sim.AddTask(large, vendorsim.Step{Phase: vendorsim.Succeeded, Result: largeResult})
	sim.AddTask(huge, vendorsim.Step{Phase: vendorsim.Succeeded, Result: fmt.Sprintf(`{"content":%q}`, strings.Repeat("x", 1100<<10))})
	withConfigMap := func(name string) func(*v1alpha1.AsyncTask) {
		return func(task *v1alpha1.AsyncTask) { task.Spec.ResultConfigMap = &v1alpha1.LocalObjectReference{Name: name} }
	}
	createTask(t, ns, "small", "apig", small, withConfigMap("small-result"))
	createTask(t, ns, "large", "apig", large, withConfigMap("large-result"))
	createTask(t, ns, "huge", "apig", huge, withConfigMap("huge-result"))

	task := waitForPhase(t, ns, "small", v1alpha1.TaskPhaseSucceeded)
	cm := getConfigMap(g, ns, "small-result")
	g.Expect(cm.Data).To(HaveKeyWithValue("result.json", `{"group_id":"g1"}`))
	g.Expect(metav1.IsControlledBy(cm, task)).To(BeTrue(), "owned by the task, so it is garbage-collected with it")

	task = waitForPhase(t, ns, "large", v1alpha1.TaskPhaseSucceeded)
	g.Expect(task.Status.Result).To(BeNil())
	g.Expect(task.Status.ResultTruncated).To(BeTrue())
	g.Expect(getConfigMap(g, ns, "large-result").Data["result.json"]).To(Equal(largeResult))

	task = waitForPhase(t, ns, "huge", v1alpha1.TaskPhaseSucceeded)
	g.Expect(task.Status.ResultTruncated).To(BeTrue())
	g.Expect(task.Status.Message).To(ContainSubstring("larger than a ConfigMap can hold"))
	err := k8sClient.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "huge-result"}, &corev1.ConfigMap{})
	g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "no ConfigMap for a result that cannot fit, got %v", err)
}

func getConfigMap(g Gomega, ns, name string) *corev1.ConfigMap {
	cm := &corev1.ConfigMap{}
	g.Eventually(func() error {
		return k8sClient.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, cm)
	}, eventually, tick).Should(Succeed())
	return cm
}

func TestTLSTrustIsVerifiedUnlessTurnedOff(t *testing.T) {
	server := httptest.NewTLSServer(sim.Handler())
	t.Cleanup(server.Close)
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: server.Certificate().Raw})
	ns := newNamespace(t)
	g := NewWithT(t)
	g.Expect(k8sClient.Create(context.Background(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "sim-ca"}, Data: map[string][]byte{"ca.crt": caPEM},
	})).To(Succeed())

	withTLS := func(tlsConfig *v1alpha1.TLSConfig) v1alpha1.TaskBackendSpec {
		spec := apigSpec()
		spec.URL = server.URL
		spec.TLS = tlsConfig
		return spec
	}
	trusted := createBackend(t, ns, "trusted", withTLS(&v1alpha1.TLSConfig{CASecretRef: &v1alpha1.SecretKeyReference{Name: "sim-ca"}}), apigToken(simToken))
	byName := createBackend(t, ns, "by-name", withTLS(&v1alpha1.TLSConfig{
		CASecretRef: &v1alpha1.SecretKeyReference{Name: "sim-ca"}, ServerName: "example.com"}), apigToken(simToken))
	unknown := createBackend(t, ns, "unknown-ca", withTLS(nil), apigToken(simToken))
	insecure := createBackend(t, ns, "insecure", withTLS(&v1alpha1.TLSConfig{InsecureSkipVerify: true}), apigToken(simToken))

	waitForBackendReady(t, trusted, metav1.ConditionTrue, v1alpha1.ReasonReady)
	waitForBackendReady(t, byName, metav1.ConditionTrue, v1alpha1.ReasonReady)
	ready := waitForBackendReady(t, unknown, metav1.ConditionFalse, v1alpha1.ReasonUnreachable)
	g.Expect(ready.Message).To(And(ContainSubstring("certificate"), ContainSubstring("tls.caSecretRef")))
	ready = waitForBackendReady(t, insecure, metav1.ConditionTrue, v1alpha1.ReasonReady)
	g.Expect(ready.Message).To(ContainSubstring("insecureSkipVerify"))

	id := uniqueTaskID(t)
	sim.AddTask(id, simSucceeded())
	createTask(t, ns, "over-tls", "trusted", id)
	waitForPhase(t, ns, "over-tls", v1alpha1.TaskPhaseSucceeded)
	createTask(t, ns, "untrusted", "unknown-ca", id)
	waitForTask(t, ns, "untrusted", func(g Gomega, task *v1alpha1.AsyncTask) {
		expectCondition(g, task.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonBackendUnavailable)
		g.Expect(task.Status.Message).To(ContainSubstring("certificate"))
	})
}

func TestFixedSecretTakesEffectAtOnce(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	backend := createBackend(t, ns, "apig", apigSpec(), apigToken("wrong-token-value"))
	id := uniqueTaskID(t)
	sim.AddTask(id, simSucceeded())
	createTask(t, ns, "locked-out", "apig", id)
	waitForTask(t, ns, "locked-out", func(g Gomega, task *v1alpha1.AsyncTask) {
		g.Expect(task.Status.ConsecutiveErrors).To(BeNumerically(">=", 3), "backing off")
		expectCondition(g, task.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonAuthenticationFailed)
	})

	secret := &corev1.Secret{}
	g.Expect(k8sClient.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: backend.Spec.CredentialsSecretRef.Name}, secret)).To(Succeed())
	secret.Data = map[string][]byte{"token": []byte(simToken)}
	g.Expect(k8sClient.Update(context.Background(), secret)).To(Succeed())
	// The backoff after 3+ errors is at least 4 s; the fixed Secret must not wait for it.
	g.Eventually(func(g Gomega) {
		g.Expect(getTask(g, ns, "locked-out").Status.Phase).To(Equal(v1alpha1.TaskPhaseSucceeded))
	}, 3*time.Second, tick).Should(Succeed())
}

func TestEventsMarkPhaseChangesNotPolls(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	createBackend(t, ns, "apig", apigSpec(), apigToken(simToken))
	id := uniqueTaskID(t)
	sim.AddTask(id, vendorsim.Step{Phase: vendorsim.Running}, vendorsim.Step{Phase: vendorsim.Running}, vendorsim.Step{Phase: vendorsim.Running},
		vendorsim.Step{HTTPStatus: 500}, vendorsim.Step{Phase: vendorsim.Running}, simSucceeded())
	createTask(t, ns, "eventful", "apig", id)
	waitForPhase(t, ns, "eventful", v1alpha1.TaskPhaseSucceeded)

	var reasons []string
	g.Eventually(func(g Gomega) {
		events := &eventsv1.EventList{}
		g.Expect(k8sClient.List(context.Background(), events, client.InNamespace(ns))).To(Succeed())
		reasons = nil
		for _, e := range events.Items {
			if e.Regarding.Name == "eventful" {
				reasons = append(reasons, e.Type+"/"+e.Reason)
			}
		}
		g.Expect(reasons).To(ContainElements("Normal/Running", "Warning/BackendUnavailable", "Normal/Succeeded"))
	}, eventually, tick).Should(Succeed())
	g.Expect(len(reasons)).To(BeNumerically("<", sim.Polls(id)), "one event per change, not per poll: %v", reasons)
}
