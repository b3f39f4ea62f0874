package controller

import (
	"bytes"
	"context"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"sync"
	"testing"

	. "github.com/onsi/gomega"
	uberzap "go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/internal/backend"
	"github.com/asynctask-operator/asynctask-operator/test/vendorsim"
)

// The suite's logger writes into suiteLogs too, at suiteLogLevel: debug (V(1)) normally, the most verbose
// (V(10)) while recordVerboseLogs is on.
var (
	suiteLogs     syncBuffer
	suiteLogLevel = uberzap.NewAtomicLevelAt(zapcore.DebugLevel)
)

// syncBuffer keeps what is written to it while recording, and drops it otherwise.
type syncBuffer struct {
	mu        sync.Mutex
	recording bool
	buf       bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.recording {
		b.buf.Write(p)
	}
	return len(p), nil
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *syncBuffer) record(on bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.recording = on
	b.buf.Reset()
}

// recordVerboseLogs logs at V(10) (as --zap-log-level=10 does) into suiteLogs until the test ends.
func recordVerboseLogs(t *testing.T) {
	suiteLogs.record(true)
	suiteLogLevel.SetLevel(zapcore.Level(-10))
	t.Cleanup(func() {
		suiteLogLevel.SetLevel(zapcore.DebugLevel)
		suiteLogs.record(false)
	})
}

// leakFlow is one vendor flow with one credential method.
type leakFlow struct {
	spec   func() v1alpha1.TaskBackendSpec
	secret map[string]string
	// taskID returns the vendor task ID to track.
	taskID func(t *testing.T) string
	// refused is true for credentials the vendor refuses.
	refused bool
}

// Values the leak test uses as wrong credentials: distinctive, so that any appearance is found.
const (
	wrongToken     = "wrong-token-5f1c0a"
	wrongPassword  = "wrong-password-8d2e4b"
	wrongSecretKey = "wrong-secret-key-3a9f7c"
	wrongSessionID = "wrong-session-id-c4b7e1"
)

func leakFlows() map[string]leakFlow {
	var toIDs int
	toID := func(*testing.T) string { toIDs++; return fmt.Sprintf("7399%04d", toIDs) }
	zstack := func() v1alpha1.TaskBackendSpec { return v1alpha1.TaskBackendSpec{Type: v1alpha1.BackendTypeZStack} }
	to := func() v1alpha1.TaskBackendSpec {
		return v1alpha1.TaskBackendSpec{Type: v1alpha1.BackendTypeTrafficOps, TrafficOps: &v1alpha1.TrafficOpsSettings{APIVersion: "5.0"}}
	}
	ni := func() v1alpha1.TaskBackendSpec {
		return v1alpha1.TaskBackendSpec{Type: v1alpha1.BackendTypeNetworkInsight}
	}
	return map[string]leakFlow{
		"apig token":                 {spec: apigIAMSpec, taskID: uniqueTaskID, secret: map[string]string{"token": simToken}},
		"apig password":              {spec: apigIAMSpec, taskID: uniqueTaskID, secret: map[string]string{"username": "sim-user", "password": "sim-password"}},
		"apig aksk":                  {spec: apigIAMSpec, taskID: uniqueTaskID, secret: map[string]string{"accessKey": "sim-ak", "secretKey": "sim-sk"}},
		"apig wrong token":           {spec: apigIAMSpec, taskID: uniqueTaskID, refused: true, secret: map[string]string{"token": wrongToken}},
		"apig wrong password":        {spec: apigIAMSpec, taskID: uniqueTaskID, refused: true, secret: map[string]string{"username": "sim-user", "password": wrongPassword}},
		"apig wrong secret key":      {spec: apigIAMSpec, taskID: uniqueTaskID, refused: true, secret: map[string]string{"accessKey": "sim-ak", "secretKey": wrongSecretKey}},
		"zstack login":               {spec: zstack, taskID: uniqueTaskID, secret: map[string]string{"accountName": "sim-user", "password": "sim-password"}},
		"zstack sessionID":           {spec: zstack, taskID: uniqueTaskID, secret: map[string]string{"sessionID": simToken}},
		"zstack wrong password":      {spec: zstack, taskID: uniqueTaskID, refused: true, secret: map[string]string{"accountName": "sim-user", "password": wrongPassword}},
		"zstack wrong sessionID":     {spec: zstack, taskID: uniqueTaskID, refused: true, secret: map[string]string{"sessionID": wrongSessionID}},
		"trafficops password":        {spec: to, taskID: toID, secret: map[string]string{"username": "sim-user", "password": "sim-password"}},
		"trafficops token":           {spec: to, taskID: toID, secret: map[string]string{"token": simToken}},
		"trafficops wrong password":  {spec: to, taskID: toID, refused: true, secret: map[string]string{"username": "sim-user", "password": wrongPassword}},
		"trafficops wrong token":     {spec: to, taskID: toID, refused: true, secret: map[string]string{"token": wrongToken}},
		"networkinsight password":    {spec: ni, taskID: niRequestID, secret: map[string]string{"username": "sim-user", "password": "sim-password"}},
		"networkinsight token":       {spec: ni, taskID: niRequestID, secret: map[string]string{"token": simToken}},
		"networkinsight wrong login": {spec: ni, taskID: niRequestID, refused: true, secret: map[string]string{"username": "sim-user", "password": wrongPassword}},
		"networkinsight wrong token": {spec: ni, taskID: niRequestID, refused: true, secret: map[string]string{"token": wrongToken}},
	}
}

// identityKeys name Secret keys that identify rather than authenticate; their values may be shown.
var identityKeys = map[string]bool{"username": true, "accountName": true, "accessKey": true}

// TestSecretsNeverLeak runs every vendor flow, with every credential method and with refused credentials,
// under the most verbose logging (which includes client-go's request and response bodies to the API server),
// then looks for every secret value in the operator's logs, the Events, and the status of every AsyncTask
// and backend: none may appear, nor its base64. Session tokens the simulator issued and the SHA-512 of the
// passwords (ZStack's login credential) count as secrets too. User names and access keys identify, and may
// appear ("ZStack refused the login of account sim-user").
func TestSecretsNeverLeak(t *testing.T) {
	recordVerboseLogs(t)
	ns := newNamespace(t)
	secrets := map[string]bool{}
	type started struct{ name, task string }
	var flows []started
	i := 0
	for name, flow := range leakFlows() {
		i++
		backendName, taskName := fmt.Sprintf("b%d", i), fmt.Sprintf("t%d", i)
		for key, value := range flow.secret {
			if !identityKeys[key] {
				// Base64 too: at -v=8 client-go logs API bodies, where Secret data is base64.
				secrets[value], secrets[base64.StdEncoding.EncodeToString([]byte(value))] = true, true
			}
			if key == "password" {
				sum := sha512.Sum512([]byte(value))
				secrets[hex.EncodeToString(sum[:])] = true
			}
		}
		b := createBackend(t, ns, backendName, flow.spec(), flow.secret)
		id := flow.taskID(t)
		sim.AddTask(id, vendorsim.Step{Phase: vendorsim.Running, Progress: 50}, vendorsim.Step{Phase: vendorsim.Succeeded})
		if flow.refused {
			waitForBackendReady(t, b, metav1.ConditionFalse, v1alpha1.ReasonAuthenticationFailed)
		} else {
			waitForBackendReady(t, b, metav1.ConditionTrue, v1alpha1.ReasonReady)
		}
		createTask(t, ns, taskName, backendName, id)
		flows = append(flows, started{name, taskName})
	}
	// Sessions end while tasks poll: every login flow goes through a refusal and a re-login too.
	sim.ExpireSessions()
	for n, flow := range leakFlows() {
		for _, s := range flows {
			if s.name != n {
				continue
			}
			if flow.refused {
				waitForTask(t, ns, s.task, func(g Gomega, task *v1alpha1.AsyncTask) {
					expectCondition(g, task.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonAuthenticationFailed)
				})
			} else {
				waitForPhase(t, ns, s.task, v1alpha1.TaskPhaseSucceeded)
			}
		}
	}
	// Events are sent asynchronously: wait until every task's has arrived.
	NewWithT(t).Eventually(func(g Gomega) {
		var events eventsv1.EventList
		g.Expect(k8sClient.List(context.Background(), &events, client.InNamespace(ns))).To(Succeed())
		regarding := map[string]bool{}
		for _, e := range events.Items {
			regarding[e.Regarding.Name] = true
		}
		for _, s := range flows {
			g.Expect(regarding).To(HaveKey(s.task))
		}
	}, eventually, tick).Should(Succeed())

	sources := map[string]string{"operator logs": suiteLogs.String()}
	ctx := context.Background()
	for name, list := range map[string]client.ObjectList{
		"Events":              &eventsv1.EventList{},
		"core Events":         &corev1.EventList{},
		"AsyncTasks":          &v1alpha1.AsyncTaskList{},
		"TaskBackends":        &v1alpha1.TaskBackendList{},
		"ClusterTaskBackends": &v1alpha1.ClusterTaskBackendList{},
		"ConfigMaps":          &corev1.ConfigMapList{},
	} {
		if err := k8sClient.List(ctx, list); err != nil {
			t.Fatalf("listing %s: %v", name, err)
		}
		sources[name] = statusesOf(t, list)
	}
	if !strings.Contains(sources["operator logs"], ns) || !strings.Contains(sources["AsyncTasks"], "AuthenticationFailed") {
		t.Fatalf("the logs or statuses are not what this test ran: the search below would prove nothing")
	}
	sessionToken := regexp.MustCompile(`[a-z]+-session-\d+-\d+`)
	for source, text := range sources {
		for secret := range secrets {
			if at := strings.Index(text, secret); at >= 0 {
				t.Errorf("%s hold the credential %q: ...%s...", source, secret, text[max(at-200, 0):min(at+len(secret)+50, len(text))])
			}
		}
		if m := sessionToken.FindString(text); m != "" {
			t.Errorf("%s hold the vendor session token %q", source, m)
		}
	}
}

// statusesOf renders what of the listed objects users and log readers see: the whole of Events and ConfigMaps,
// the status of everything else (specs hold no secret values, only Secret names).
func statusesOf(t *testing.T, list client.ObjectList) string {
	t.Helper()
	var parts []any
	switch l := list.(type) {
	case *v1alpha1.AsyncTaskList:
		for _, o := range l.Items {
			parts = append(parts, o.Status)
		}
	case *v1alpha1.TaskBackendList:
		for _, o := range l.Items {
			parts = append(parts, o.Status)
		}
	case *v1alpha1.ClusterTaskBackendList:
		for _, o := range l.Items {
			parts = append(parts, o.Status)
		}
	default:
		parts = append(parts, list)
	}
	out, err := json.Marshal(parts)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// TestSSRFMetadataBackendIsInvalidConfig: a TaskBackend pointed at the cloud metadata address is refused at
// connect time, not Ready with reason InvalidConfig, and its tasks say why.
func TestSSRFMetadataBackendIsInvalidConfig(t *testing.T) {
	for name, url := range map[string]string{
		"IPv4":        "http://169.254.169.254",
		"IPv4-mapped": "http://[::ffff:169.254.169.254]:80",
	} {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			ns := newNamespace(t)
			spec := apigSpec()
			spec.URL = url
			b := createBackend(t, ns, "metadata", spec, apigToken(simToken))
			ready := waitForBackendReady(t, b, metav1.ConditionFalse, v1alpha1.ReasonInvalidConfig)
			g.Expect(ready.Message).To(ContainSubstring("network policy refuses to connect"))
			g.Expect(ready.Message).To(ContainSubstring("169.254.169.254:80"))
			g.Expect(ready.Message).To(ContainSubstring("169.254.0.0/16"))
			g.Expect(ready.Message).NotTo(ContainSubstring("async-tasks"), "the message names the address, not the URL path")

			createTask(t, ns, "steal", "metadata", uniqueTaskID(t))
			task := waitForTask(t, ns, "steal", func(g Gomega, task *v1alpha1.AsyncTask) {
				expectCondition(g, task.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonBackendUnavailable)
				g.Expect(task.Status.Message).To(ContainSubstring("network policy refuses to connect"))
			})
			g.Expect(task.Status.Message).To(ContainSubstring("169.254.169.254"))
			g.Expect(task.Status.Phase).NotTo(Equal(v1alpha1.TaskPhaseSucceeded))
		})
	}
}

// TestCrossNamespaceSecretsAreRefused: a TaskBackend reads Secrets in its own namespace only. Naming another
// namespace is refused by the API server; a Secret name that exists only in another namespace is not found.
func TestCrossNamespaceSecretsAreRefused(t *testing.T) {
	ctx := context.Background()
	victim, attacker := newNamespace(t), newNamespace(t)
	// The victim's Secret holds good credentials, so a backend that could read it would be Ready.
	createBackend(t, victim, "apig", apigSpec(), apigToken(simToken))
	victimSecret := "apig-creds"

	t.Run("namespace in credentialsSecretRef", func(t *testing.T) {
		g := NewWithT(t)
		spec := apigSpec()
		spec.URL = simURL
		spec.CredentialsSecretRef = &v1alpha1.SecretReference{Name: victimSecret, Namespace: victim}
		err := k8sClient.Create(ctx, &v1alpha1.TaskBackend{ObjectMeta: metav1.ObjectMeta{Namespace: attacker, Name: "steal"}, Spec: spec})
		g.Expect(err).To(MatchError(ContainSubstring("spec.credentialsSecretRef.namespace")))
		g.Expect(err).To(MatchError(ContainSubstring("a TaskBackend reads Secrets in its own namespace")))
	})
	t.Run("namespace in tls.caSecretRef", func(t *testing.T) {
		g := NewWithT(t)
		spec := apigSpec()
		spec.URL = simURL
		spec.TLS = &v1alpha1.TLSConfig{CASecretRef: &v1alpha1.SecretKeyReference{Name: victimSecret, Namespace: victim}}
		err := k8sClient.Create(ctx, &v1alpha1.TaskBackend{ObjectMeta: metav1.ObjectMeta{Namespace: attacker, Name: "steal-ca"}, Spec: spec})
		g.Expect(err).To(MatchError(ContainSubstring("spec.tls.caSecretRef.namespace")))
	})
	t.Run("a Secret name from another namespace", func(t *testing.T) {
		g := NewWithT(t)
		spec := apigSpec()
		spec.CredentialsSecretRef = &v1alpha1.SecretReference{Name: victimSecret}
		b := createBackend(t, attacker, "steal", spec, nil)
		ready := waitForBackendReady(t, b, metav1.ConditionFalse, v1alpha1.ReasonSecretNotFound)
		g.Expect(ready.Message).To(ContainSubstring(attacker + "/" + victimSecret))
		createTask(t, attacker, "steal", "steal", uniqueTaskID(t))
		waitForTask(t, attacker, "steal", func(g Gomega, task *v1alpha1.AsyncTask) {
			expectCondition(g, task.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonBackendUnavailable)
			g.Expect(task.Status.Message).To(ContainSubstring("not found"))
		})
	})
}

// fakeReader is a client holding objs, counting reads.
func fakeReader(t *testing.T, reads *int, objs ...client.Object) client.Client {
	t.Helper()
	return fake.NewClientBuilder().WithScheme(NewScheme()).WithObjects(objs...).WithInterceptorFuncs(interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			*reads++
			return c.Get(ctx, key, obj, opts...)
		},
	}).Build()
}

// TestSecurityForbidNamespacedBackends: with --forbid-namespaced-backends a TaskBackend is refused before
// it or its Secret is read, and shows Ready=False InvalidConfig; a ClusterTaskBackend still works.
func TestSecurityForbidNamespacedBackends(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	spec := apigSpec()
	spec.URL = simURL
	spec.CredentialsSecretRef = &v1alpha1.SecretReference{Name: "creds"}
	clusterSpec := *spec.DeepCopy()
	clusterSpec.CredentialsSecretRef.Namespace = "ops"
	reads := 0
	reader := fakeReader(t, &reads,
		&v1alpha1.TaskBackend{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "apig"}, Spec: spec},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "creds"}, Data: map[string][]byte{"token": []byte(simToken)}},
		&v1alpha1.ClusterTaskBackend{ObjectMeta: metav1.ObjectMeta{Name: "apig"}, Spec: clusterSpec},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ops", Name: "creds"}, Data: map[string][]byte{"token": []byte(simToken)}},
	)
	conns := newConnector(reader, newSecretReader(reader, reader), Options{ForbidNamespacedBackends: true})

	namespaced := backendKey{Kind: v1alpha1.BackendKindTaskBackend, Namespace: "team", Name: "apig"}
	_, err := conns.connect(ctx, namespaced, "team")
	ce, ok := backend.AsError(err)
	g.Expect(ok).To(BeTrue(), "want a *backend.Error, got %v", err)
	g.Expect(classify(ce).backendReason).To(Equal(v1alpha1.ReasonInvalidConfig))
	g.Expect(ce.Message).To(ContainSubstring("namespaced backends are disabled by the operator's --forbid-namespaced-backends flag"))
	g.Expect(reads).To(BeZero(), "neither the TaskBackend nor its Secret is read")

	ready, _ := (&BackendReconciler{Kind: v1alpha1.BackendKindTaskBackend, connector: conns}).check(ctx, namespaced)
	g.Expect(ready.Status).To(Equal(metav1.ConditionFalse))
	g.Expect(ready.Reason).To(Equal(v1alpha1.ReasonInvalidConfig))
	g.Expect(ready.Message).To(ContainSubstring("--forbid-namespaced-backends"))

	task := &v1alpha1.AsyncTask{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "t"},
		Spec: v1alpha1.AsyncTaskSpec{BackendRef: v1alpha1.BackendReference{Name: "apig"}, TaskID: "x"}}
	st := statusFromOutcome(task, pollOutcome{err: err}, "", metav1.Now().Time)
	g.Expect(st.Message).To(ContainSubstring("--forbid-namespaced-backends"), "the task says why")

	cluster := backendKey{Kind: v1alpha1.BackendKindClusterTaskBackend, Name: "apig"}
	ready, _ = (&BackendReconciler{Kind: v1alpha1.BackendKindClusterTaskBackend, connector: conns}).check(ctx, cluster)
	g.Expect(ready.Reason).To(Equal(v1alpha1.ReasonReady), ready.Message)
}

// TestSecurityConnectorAppliesTheNetworkPolicyOfEachKind: every client the connector builds connects under its
// backend kind's network policy: loopback is denied to TaskBackends by default and allowed to
// ClusterTaskBackends; a refused backend is Ready=False InvalidConfig, naming the rule and the flag.
func TestSecurityConnectorAppliesTheNetworkPolicyOfEachKind(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	spec := apigSpec()
	spec.URL = simURL // 127.0.0.1
	spec.CredentialsSecretRef = &v1alpha1.SecretReference{Name: "creds"}
	clusterSpec := *spec.DeepCopy()
	clusterSpec.CredentialsSecretRef.Namespace = "team"
	reads := 0
	reader := fakeReader(t, &reads,
		&v1alpha1.TaskBackend{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "apig"}, Spec: spec},
		&v1alpha1.ClusterTaskBackend{ObjectMeta: metav1.ObjectMeta{Name: "apig"}, Spec: clusterSpec},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "creds"}, Data: map[string][]byte{"token": []byte(simToken)}},
	)
	namespaced := backendKey{Kind: v1alpha1.BackendKindTaskBackend, Namespace: "team", Name: "apig"}
	cluster := backendKey{Kind: v1alpha1.BackendKindClusterTaskBackend, Name: "apig"}
	check := func(opts Options, key backendKey) metav1.Condition {
		ready, _ := (&BackendReconciler{Kind: key.Kind, connector: newConnector(reader, newSecretReader(reader, reader), opts)}).check(ctx, key)
		return ready
	}

	ready := check(Options{}, namespaced)
	g.Expect(ready.Reason).To(Equal(v1alpha1.ReasonInvalidConfig), ready.Message)
	g.Expect(ready.Message).To(ContainSubstring("network policy refuses to connect"))
	g.Expect(ready.Message).To(ContainSubstring("127.0.0.0/8 is loopback, denied by default (--allowed-cidrs or --taskbackend-allowed-cidrs can allow it)"))

	ready = check(Options{}, cluster)
	g.Expect(ready.Reason).To(Equal(v1alpha1.ReasonReady), "loopback is allowed to ClusterTaskBackends by default: %s", ready.Message)

	ready = check(withTestNetwork(Options{}), namespaced)
	g.Expect(ready.Reason).To(Equal(v1alpha1.ReasonReady), "allowed wins over a default rule: %s", ready.Message)

	narrowed := Options{ClusterTaskBackendNetwork: backend.NetworkPolicy{DeniedCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}}
	ready = check(narrowed, cluster)
	g.Expect(ready.Reason).To(Equal(v1alpha1.ReasonInvalidConfig), ready.Message)
	g.Expect(ready.Message).To(ContainSubstring("127.0.0.0/8 is denied by --denied-cidrs"))
}

// TestCrossNamespaceSecretRefIsIgnoredByTheConnector: even a TaskBackend that got a Secret namespace past the
// API server (written before the rule existed) reads its own namespace only.
func TestCrossNamespaceSecretRefIsIgnoredByTheConnector(t *testing.T) {
	g := NewWithT(t)
	spec := apigSpec()
	spec.URL = simURL
	spec.CredentialsSecretRef = &v1alpha1.SecretReference{Name: "creds", Namespace: "victim"}
	reads := 0
	reader := fakeReader(t, &reads,
		&v1alpha1.TaskBackend{ObjectMeta: metav1.ObjectMeta{Namespace: "attacker", Name: "apig"}, Spec: spec},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "victim", Name: "creds"}, Data: map[string][]byte{"token": []byte(simToken)}},
	)
	_, err := newConnector(reader, newSecretReader(reader, reader), Options{}).connect(context.Background(), backendKey{Kind: v1alpha1.BackendKindTaskBackend, Namespace: "attacker", Name: "apig"}, "attacker")
	ce, ok := backend.AsError(err)
	g.Expect(ok).To(BeTrue(), "want a *backend.Error, got %v", err)
	g.Expect(classify(ce).backendReason).To(Equal(v1alpha1.ReasonSecretNotFound))
	g.Expect(ce.Message).To(ContainSubstring("attacker/creds"))
}
