package controller

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/internal/backend"
	"github.com/asynctask-operator/asynctask-operator/test/vendorsim"
)

// Tests of what a hostile tenant or a hostile vendor tried (issue: hostile tenants, hostile vendors, big
// clusters), each on the real API server with the operator as the suite runs it: TaskBackends may reach
// 127.0.0.1 (the simulator) and nothing else of loopback.

// countingListener accepts connections on every local address of a port and counts them.
func countingListener(t *testing.T) (port int, accepted *atomic.Int32) {
	t.Helper()
	l, err := net.Listen("tcp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	accepted = &atomic.Int32{}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			_ = c.Close()
		}
	}()
	return l.Addr().(*net.TCPAddr).Port, accepted
}

// TestTaskBackendCannotReachLoopbackOrUnspecifiedAddresses: a TaskBackend pointed at 0.0.0.0 or another
// loopback address than the allowed 127.0.0.1 is refused before a connection is made, and says why; a
// ClusterTaskBackend may reach loopback but not 0.0.0.0.
func TestTaskBackendCannotReachLoopbackOrUnspecifiedAddresses(t *testing.T) {
	port, accepted := countingListener(t)
	ns := newNamespace(t)
	for name, host := range map[string]string{"unspecified": "0.0.0.0", "loopback": "127.0.0.2"} {
		spec := apigSpec()
		spec.URL = fmt.Sprintf("http://%s:%d", host, port)
		b := createBackend(t, ns, name, spec, apigToken(simToken))
		ready := waitForBackendReady(t, b, metav1.ConditionFalse, v1alpha1.ReasonInvalidConfig)
		NewWithT(t).Expect(ready.Message).To(ContainSubstring("network policy refuses to connect to " + fmt.Sprintf("%s:%d", host, port)))
	}
	NewWithT(t).Expect(accepted.Load()).To(BeZero(), "no connection reached the listener")

	unspecified := clusterBackend(t, ns, "unspecified-"+ns, fmt.Sprintf("http://0.0.0.0:%d", port))
	ready := waitForBackendReady(t, unspecified, metav1.ConditionFalse, v1alpha1.ReasonInvalidConfig)
	NewWithT(t).Expect(ready.Message).To(ContainSubstring("0.0.0.0/8 is the unspecified (this-host) range, denied by default"))
	NewWithT(t).Expect(accepted.Load()).To(BeZero(), "no connection reached the listener")

	loopback := clusterBackend(t, ns, "loopback-"+ns, fmt.Sprintf("http://127.0.0.2:%d", port))
	waitForBackendReady(t, loopback, metav1.ConditionFalse, v1alpha1.ReasonUnreachable) // connected; the listener hangs up
	NewWithT(t).Expect(accepted.Load()).To(BeNumerically(">", 0), "a ClusterTaskBackend may reach loopback")
}

// clusterBackend creates an API Gateway ClusterTaskBackend at url whose token is the Secret ns/name.
func clusterBackend(t *testing.T, ns, name, url string, mutate ...func(*v1alpha1.TaskBackendSpec)) *v1alpha1.ClusterTaskBackend {
	t.Helper()
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, StringData: apigToken(simToken)}
	if err := k8sClient.Create(context.Background(), secret); err != nil {
		t.Fatalf("creating Secret: %v", err)
	}
	spec := apigSpec()
	spec.URL = url
	spec.CredentialsSecretRef = &v1alpha1.SecretReference{Namespace: ns, Name: name}
	spec.PollInterval = &metav1.Duration{Duration: time.Second}
	for _, m := range mutate {
		m(&spec)
	}
	b := &v1alpha1.ClusterTaskBackend{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}
	if err := k8sClient.Create(context.Background(), b); err != nil {
		t.Fatalf("creating ClusterTaskBackend: %v", err)
	}
	t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), b) })
	return b
}

// TestHugeVendorMessageStillFinishesTheTask: a failed task whose vendor sends 100,000 characters of message
// reaches Failed with a written status: message and condition messages are one line of at most 1,024
// characters ending with "…", and the task is not polled again.
func TestHugeVendorMessageStillFinishesTheTask(t *testing.T) {
	ns := newNamespace(t)
	createBackend(t, ns, "apig", apigSpec(), apigToken(simToken))
	id := uniqueTaskID(t)
	huge := strings.Repeat("The import failed.\n", 100_000/19+1)
	sim.AddTask(id, vendorsim.Step{Phase: vendorsim.Running}, vendorsim.Step{Phase: vendorsim.Failed, Message: huge})
	createTask(t, ns, "t", "apig", id)
	task := waitForPhase(t, ns, "t", v1alpha1.TaskPhaseFailed)
	g := NewWithT(t)
	g.Expect(utf8.RuneCountInString(task.Status.Message)).To(Equal(backend.MaxMessageLength))
	g.Expect(task.Status.Message).To(HaveSuffix("…"))
	g.Expect(task.Status.Message).NotTo(ContainSubstring("\n"))
	for _, c := range task.Status.Conditions {
		g.Expect(utf8.RuneCountInString(c.Message)).To(BeNumerically("<=", backend.MaxMessageLength), c.Type)
	}
	expectFailedConditions(g, task.Status.Conditions)
	polls := sim.Polls(id)
	g.Consistently(func() int { return sim.Polls(id) }, "2s", tick).Should(Equal(polls), "a finished task is not polled again")
}

// TestWrongPasswordCostsOneLoginAttemptPerBackoffStep: ten tasks on a Network Insight backend whose Secret has
// a wrong password cost one login attempt between them (the backend's check included), not one per poll; they
// all show AuthenticationFailed meanwhile. Fixing the Secret logs in at once and the tasks go on.
func TestWrongPasswordCostsOneLoginAttemptPerBackoffStep(t *testing.T) {
	ns := newNamespace(t)
	since := time.Now()
	spec := networkInsightSpec(nil)
	spec.PollInterval = &metav1.Duration{Duration: time.Minute} // the first backoff step outlasts the test
	b := createBackend(t, ns, "vrni", spec, map[string]string{"username": "sim-user", "password": "wrong-password"})
	var ids []string
	for i := range 10 {
		id := niRequestID(t) + strconv.Itoa(i)
		ids = append(ids, id)
		sim.AddTask(id, vendorsim.Step{Phase: vendorsim.Succeeded})
		createTask(t, ns, "task-"+strconv.Itoa(i), "vrni", id)
	}
	for i := range ids {
		waitForTask(t, ns, "task-"+strconv.Itoa(i), func(g Gomega, task *v1alpha1.AsyncTask) {
			expectCondition(g, task.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonAuthenticationFailed)
		})
	}
	waitForBackendReady(t, b, metav1.ConditionFalse, v1alpha1.ReasonAuthenticationFailed)
	g := NewWithT(t)
	g.Expect(sim.Requests(since, "/api/ni/auth/token")).To(Equal(1), "one login attempt for ten tasks and the backend check")
	for _, id := range ids {
		g.Expect(sim.Polls(id)).To(BeZero())
	}

	secret := &corev1.Secret{}
	g.Expect(k8sClient.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "vrni-creds"}, secret)).To(Succeed())
	secret.Data["password"] = []byte("sim-password")
	g.Expect(k8sClient.Update(context.Background(), secret)).To(Succeed())
	for i := range ids {
		waitForPhase(t, ns, "task-"+strconv.Itoa(i), v1alpha1.TaskPhaseSucceeded)
	}
}

// TestClusterTaskBackendServesOnlyTheNamespacesItAllows: a task in a namespace that a ClusterTaskBackend's
// allowedNamespaces does not select is never polled and shows Ready=False and Stalled=True, reason
// BackendNotAllowed, naming the backend and the namespace; it resumes by itself when the namespace's labels
// change, and when the selector changes.
func TestClusterTaskBackendServesOnlyTheNamespacesItAllows(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	b := clusterBackend(t, ns, "allowlist-"+ns, simURL, func(spec *v1alpha1.TaskBackendSpec) {
		spec.AllowedNamespaces = &metav1.LabelSelector{MatchLabels: map[string]string{"asynctask-test/team": "a"}}
	})
	byLabel, byName := uniqueTaskID(t)+"l", uniqueTaskID(t)+"n"
	sim.AddTask(byLabel, vendorsim.Step{Phase: vendorsim.Succeeded})
	sim.AddTask(byName, vendorsim.Step{Phase: vendorsim.Succeeded})
	onCluster := func(task *v1alpha1.AsyncTask) { task.Spec.BackendRef.Kind = v1alpha1.BackendKindClusterTaskBackend }
	createTask(t, ns, "by-label", b.Name, byLabel, onCluster)

	notAllowed := func(g Gomega, task *v1alpha1.AsyncTask) {
		expectCondition(g, task.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonBackendNotAllowed)
		expectCondition(g, task.Status.Conditions, v1alpha1.ConditionStalled, metav1.ConditionTrue, v1alpha1.ReasonBackendNotAllowed)
		g.Expect(condition(task.Status.Conditions, v1alpha1.ConditionReconciling)).To(BeNil())
		g.Expect(condition(task.Status.Conditions, v1alpha1.ConditionFinished)).To(BeNil())
		g.Expect(task.Status.Message).To(ContainSubstring("ClusterTaskBackend " + b.Name))
		g.Expect(task.Status.Message).To(ContainSubstring("namespace " + ns))
	}
	waitForTask(t, ns, "by-label", notAllowed)
	g := NewWithT(t)
	g.Expect(sim.Polls(byLabel)).To(BeZero(), "a task of a namespace not allowed is never polled")

	namespace := &corev1.Namespace{}
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Name: ns}, namespace)).To(Succeed())
	namespace.Labels["asynctask-test/team"] = "a"
	g.Expect(k8sClient.Update(ctx, namespace)).To(Succeed())
	waitForPhase(t, ns, "by-label", v1alpha1.TaskPhaseSucceeded)

	// Selected by name, after the selector first named another namespace.
	other := newNamespace(t)
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Name: b.Name}, b)).To(Succeed())
	b.Spec.AllowedNamespaces = &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: ns}}
	g.Expect(k8sClient.Update(ctx, b)).To(Succeed())
	createTask(t, other, "by-name", b.Name, byName, onCluster)
	waitForTask(t, other, "by-name", func(g Gomega, task *v1alpha1.AsyncTask) {
		expectCondition(g, task.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonBackendNotAllowed)
	})
	g.Expect(sim.Polls(byName)).To(BeZero())
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Name: b.Name}, b)).To(Succeed())
	b.Spec.AllowedNamespaces.MatchLabels[corev1.LabelMetadataName] = other
	g.Expect(k8sClient.Update(ctx, b)).To(Succeed())
	waitForPhase(t, other, "by-name", v1alpha1.TaskPhaseSucceeded)
}

// TestFlappingBackendDoesNotMakeItsTasksPollFasterThanTheirInterval: one task whose polls fail and one whose
// polls succeed, on a backend with a 1 s interval, make the backend fail and recover every second; each
// recovery wakes the backend's tasks no earlier than their own schedule, so a task of the same backend polled
// once a minute is not polled again meanwhile (before, every recovery made it due at once: once a second).
func TestFlappingBackendDoesNotMakeItsTasksPollFasterThanTheirInterval(t *testing.T) {
	ns := newNamespace(t)
	createBackend(t, ns, "apig", apigSpec(), apigToken(simToken))
	failing, running, hourly := uniqueTaskID(t)+"f", uniqueTaskID(t)+"r", uniqueTaskID(t)+"m"
	sim.AddTask(failing, vendorsim.Step{HTTPStatus: 500})
	sim.AddTask(running, vendorsim.Step{Phase: vendorsim.Running})
	sim.AddTask(hourly, vendorsim.Step{Phase: vendorsim.Running, Progress: 10})
	started := time.Now()
	createTask(t, ns, "minutely", "apig", hourly, func(task *v1alpha1.AsyncTask) {
		task.Spec.PollInterval = &metav1.Duration{Duration: time.Minute}
	})
	waitForPhase(t, ns, "minutely", v1alpha1.TaskPhaseRunning)
	createTask(t, ns, "failing", "apig", failing)
	createTask(t, ns, "running", "apig", running)
	NewWithT(t).Eventually(func() int { return sim.Polls(running) }, eventually, tick).Should(BeNumerically(">=", 6))
	elapsed := time.Since(started).Seconds()
	g := NewWithT(t)
	g.Expect(sim.Polls(hourly)).To(Equal(1), "the task polled once a minute was not woken by the backend's recoveries")
	for _, id := range []string{failing, running} {
		// At most one poll per interval, plus the first poll and the jitter's slack.
		g.Expect(float64(sim.Polls(id))).To(BeNumerically("<=", elapsed*1.1+2), "task %s polled %d times in %.1f s", id, sim.Polls(id), elapsed)
	}
}

// TestMaxResponseBytesBoundsTheVendorAnswer: a backend's spec.maxResponseBytes is the most of an answer read;
// a longer one is a backend error naming the limit, and the task keeps its last good status.
func TestMaxResponseBytesBoundsTheVendorAnswer(t *testing.T) {
	ns := newNamespace(t)
	spec := apigSpec()
	spec.MaxResponseBytes = ptr.To[int64](4096)
	createBackend(t, ns, "apig", spec, apigToken(simToken))
	id := uniqueTaskID(t)
	padding := strings.Repeat(" ", 8192)
	sim.AddTask(id, vendorsim.Step{Phase: vendorsim.Running},
		vendorsim.Step{RawBody: `{"id":"` + id + `","status":"processing"` + padding + `}`})
	createTask(t, ns, "t", "apig", id)
	task := waitForTask(t, ns, "t", func(g Gomega, task *v1alpha1.AsyncTask) {
		expectCondition(g, task.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonBackendUnavailable)
	})
	g := NewWithT(t)
	g.Expect(task.Status.Message).To(ContainSubstring("is larger than 4 KiB"))
	g.Expect(task.Status.Phase).To(Equal(v1alpha1.TaskPhaseRunning), "the last good observation is kept")
}

// TestTaskCannotOverrideItsClusterBackendsParameters: a task in any namespace that sets a parameter its HTTP
// ClusterTaskBackend sets (the project) fails with a message saying so, and nothing is sent with the
// administrator's credentials; a parameter the backend leaves unset may be filled.
func TestTaskCannotOverrideItsClusterBackendsParameters(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "admin-token"}, StringData: map[string]string{"token": simToken}}
	NewWithT(t).Expect(k8sClient.Create(ctx, secret)).To(Succeed())
	spec := httpSampleSpec(t, "http_apigateway.yaml")
	spec.URL = simURL
	spec.PollInterval = &metav1.Duration{Duration: time.Second}
	spec.HTTP.Parameters = map[string]string{"projectID": "p1"} // instanceID comes from each task
	spec.CredentialsSecretRef = &v1alpha1.SecretReference{Namespace: ns, Name: secret.Name}
	b := &v1alpha1.ClusterTaskBackend{ObjectMeta: metav1.ObjectMeta{Name: "http-" + ns}, Spec: spec}
	NewWithT(t).Expect(k8sClient.Create(ctx, b)).To(Succeed())
	t.Cleanup(func() { _ = k8sClient.Delete(ctx, b) })

	victim, own := uniqueTaskID(t)+"v", uniqueTaskID(t)+"o"
	sim.AddTask(victim, vendorsim.Step{Phase: vendorsim.Succeeded})
	sim.AddTask(own, vendorsim.Step{Phase: vendorsim.Succeeded})
	since := time.Now()
	onCluster := func(params map[string]string) func(*v1alpha1.AsyncTask) {
		return func(task *v1alpha1.AsyncTask) {
			task.Spec.BackendRef.Kind = v1alpha1.BackendKindClusterTaskBackend
			task.Spec.Parameters = params
		}
	}
	createTask(t, ns, "override", b.Name, victim, onCluster(map[string]string{"projectID": "victim", "instanceID": "i1"}))
	createTask(t, ns, "fill", b.Name, own, onCluster(map[string]string{"instanceID": "i1"}))

	task := waitForPhase(t, ns, "override", v1alpha1.TaskPhaseFailed)
	g := NewWithT(t)
	g.Expect(task.Status.Message).To(ContainSubstring("spec.parameters.projectID is set by the backend"))
	waitForPhase(t, ns, "fill", v1alpha1.TaskPhaseSucceeded)
	g.Expect(sim.Polls(victim)).To(BeZero(), "nothing was sent for the task that tried to override the backend")
	g.Expect(sim.Requests(since, "/victim/")).To(BeZero())
}
