package controller

import (
	"context"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
)

func validBackendSpec() v1alpha1.TaskBackendSpec {
	return v1alpha1.TaskBackendSpec{
		Type:       v1alpha1.BackendTypeAPIGateway,
		URL:        "https://apig.eu-de.otc.t-systems.com",
		APIGateway: &v1alpha1.APIGatewaySettings{ProjectID: "p1", InstanceID: "i1"},
	}
}

func TestAPIServerRefusesInvalidObjects(t *testing.T) {
	ns := newNamespace(t)
	task := func(mutate func(*v1alpha1.AsyncTask)) client.Object {
		obj := &v1alpha1.AsyncTask{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "bad-"},
			Spec:       v1alpha1.AsyncTaskSpec{BackendRef: v1alpha1.BackendReference{Name: "b"}, TaskID: "t1"},
		}
		mutate(obj)
		return obj
	}
	submitTask := func(mutate func(*v1alpha1.SubmitSpec)) client.Object {
		return task(func(t *v1alpha1.AsyncTask) {
			t.Spec.TaskID, t.Spec.Submit = "", &v1alpha1.SubmitSpec{Operation: "start"}
			mutate(t.Spec.Submit)
		})
	}
	taskBackend := func(mutate func(*v1alpha1.TaskBackendSpec)) client.Object {
		obj := &v1alpha1.TaskBackend{ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "bad-"}, Spec: validBackendSpec()}
		mutate(&obj.Spec)
		return obj
	}
	clusterBackend := func(mutate func(*v1alpha1.TaskBackendSpec)) client.Object {
		obj := &v1alpha1.ClusterTaskBackend{ObjectMeta: metav1.ObjectMeta{GenerateName: "bad-"}, Spec: validBackendSpec()}
		mutate(&obj.Spec)
		return obj
	}
	cases := map[string]struct {
		obj  client.Object
		want []string // substrings of the API server's message: the field path and what is wrong
	}{
		"neither taskID nor submit": {task(func(t *v1alpha1.AsyncTask) { t.Spec.TaskID = "" }), []string{"spec", "exactly one of taskID and submit"}},
		"both taskID and submit": {task(func(t *v1alpha1.AsyncTask) { t.Spec.Submit = &v1alpha1.SubmitSpec{Operation: "start"} }),
			[]string{"spec", "exactly one of taskID and submit"}},
		"submit operation not a DNS label": {submitTask(func(s *v1alpha1.SubmitSpec) { s.Operation = "Start_Job" }), []string{"spec.submit.operation"}},
		"submit body and bodyFrom": {submitTask(func(s *v1alpha1.SubmitSpec) {
			s.Body = &v1alpha1.JSON{Raw: []byte(`{"a":1}`)}
			s.BodyFrom = &v1alpha1.BodySource{ConfigMapKeyRef: &v1alpha1.LocalKeyReference{Name: "cm", Key: "k"}}
		}), []string{"spec.submit.bodyFrom", "mutually exclusive"}},
		"submit bodyFrom naming both a ConfigMap and a Secret": {submitTask(func(s *v1alpha1.SubmitSpec) {
			s.BodyFrom = &v1alpha1.BodySource{ConfigMapKeyRef: &v1alpha1.LocalKeyReference{Name: "cm", Key: "k"}, SecretKeyRef: &v1alpha1.LocalKeyReference{Name: "s", Key: "k"}}
		}), []string{"spec.submit.bodyFrom", "exactly one of configMapKeyRef and secretKeyRef"}},
		"submit body not an object": {submitTask(func(s *v1alpha1.SubmitSpec) { s.Body = &v1alpha1.JSON{Raw: []byte(`"text"`)} }),
			[]string{"spec.submit.body"}},
		"submit parameter value over 1024 characters": {submitTask(func(s *v1alpha1.SubmitSpec) {
			s.Parameters = map[string]string{"file": strings.Repeat("x", 1025)}
		}), []string{"spec.submit.parameters", "1024"}},
		"submit with 33 parameters": {submitTask(func(s *v1alpha1.SubmitSpec) {
			s.Parameters = map[string]string{}
			for i := range 33 {
				s.Parameters[strings.Repeat("p", i+1)] = "v"
			}
		}), []string{"spec.submit.parameters"}},
		"operation with method GET": {taskBackend(func(s *v1alpha1.TaskBackendSpec) {
			s.Operations = []v1alpha1.Operation{{Name: "start", Path: "/jobs", Method: v1alpha1.HTTPMethodGet}}
		}), []string{"spec.operations[0].method"}},
		"operation path without a leading slash": {taskBackend(func(s *v1alpha1.TaskBackendSpec) {
			s.Operations = []v1alpha1.Operation{{Name: "start", Path: "jobs"}}
		}), []string{"spec.operations[0].path", "must start with /"}},
		"operation name not a DNS label": {taskBackend(func(s *v1alpha1.TaskBackendSpec) {
			s.Operations = []v1alpha1.Operation{{Name: "Start Job", Path: "/jobs"}}
		}), []string{"spec.operations[0].name"}},
		"two operations of one name": {taskBackend(func(s *v1alpha1.TaskBackendSpec) {
			s.Operations = []v1alpha1.Operation{{Name: "start", Path: "/a"}, {Name: "start", Path: "/b"}}
		}), []string{"spec.operations[1]", "Duplicate value"}},
		"17 operations": {taskBackend(func(s *v1alpha1.TaskBackendSpec) {
			for i := range 17 {
				s.Operations = append(s.Operations, v1alpha1.Operation{Name: strings.Repeat("o", i+1), Path: "/a"})
			}
		}), []string{"spec.operations", "16"}},
		"maxRunning 0": {taskBackend(func(s *v1alpha1.TaskBackendSpec) {
			s.Operations = []v1alpha1.Operation{{Name: "start", Path: "/jobs", MaxRunning: ptr.To[int32](0)}}
		}), []string{"spec.operations[0].maxRunning"}},
		"HTTP operation without taskID": {taskBackend(func(s *v1alpha1.TaskBackendSpec) {
			s.Type, s.APIGateway = v1alpha1.BackendTypeHTTP, nil
			s.HTTP = &v1alpha1.HTTPSettings{Path: "/t/{taskID}", Expressions: v1alpha1.HTTPExpressions{Phase: "'Running'"}}
			s.Operations = []v1alpha1.Operation{{Name: "start", Path: "/jobs"}}
		}), []string{"spec.operations", "taskID is required for type HTTP and TrafficOps"}},
		"ZStack operation with another key header": {taskBackend(func(s *v1alpha1.TaskBackendSpec) {
			s.Type, s.APIGateway = v1alpha1.BackendTypeZStack, nil
			s.Operations = []v1alpha1.Operation{{Name: "start", Path: "/zstack/v1/vm-instances", IdempotencyKeyHeader: "Idempotency-Key"}}
		}), []string{"spec.operations", "X-Job-UUID"}},
		"operation idempotency key header not a header name": {taskBackend(func(s *v1alpha1.TaskBackendSpec) {
			s.Operations = []v1alpha1.Operation{{Name: "start", Path: "/jobs", IdempotencyKeyHeader: "Idempotency Key"}}
		}), []string{"spec.operations[0].idempotencyKeyHeader"}},
		"taskID over 256 characters": {task(func(t *v1alpha1.AsyncTask) { t.Spec.TaskID = strings.Repeat("x", 257) }),
			[]string{"spec.taskID", "256"}},
		"unknown backend kind": {task(func(t *v1alpha1.AsyncTask) { t.Spec.BackendRef.Kind = "Backend" }),
			[]string{"spec.backendRef.kind", "TaskBackend"}},
		"poll interval under 1s": {task(func(t *v1alpha1.AsyncTask) { t.Spec.PollInterval = &metav1.Duration{Duration: 500 * time.Millisecond} }),
			[]string{"spec.pollInterval", "between 1s and 24h"}},
		"absurd poll interval": {task(func(t *v1alpha1.AsyncTask) { t.Spec.PollInterval = &metav1.Duration{Duration: 100000 * time.Hour} }),
			[]string{"spec.pollInterval", "between 1s and 24h"}},
		"control character in taskID": {task(func(t *v1alpha1.AsyncTask) { t.Spec.TaskID = "id\nwith newline" }),
			[]string{"spec.taskID"}},
		"NUL in taskID": {task(func(t *v1alpha1.AsyncTask) { t.Spec.TaskID = "id\x00" }), []string{"spec.taskID"}},
		"zero activeDeadlineSeconds": {task(func(t *v1alpha1.AsyncTask) { t.Spec.ActiveDeadlineSeconds = ptr.To[int64](0) }),
			[]string{"spec.activeDeadlineSeconds"}},
		"negative ttlSecondsAfterFinished": {task(func(t *v1alpha1.AsyncTask) { t.Spec.TTLSecondsAfterFinished = ptr.To[int32](-1) }),
			[]string{"spec.ttlSecondsAfterFinished"}},
		"zero progressDeadlineSeconds": {task(func(t *v1alpha1.AsyncTask) { t.Spec.ProgressDeadlineSeconds = ptr.To[int32](0) }),
			[]string{"spec.progressDeadlineSeconds"}},
		"resultConfigMap name not a DNS name": {task(func(t *v1alpha1.AsyncTask) {
			t.Spec.ResultConfigMap = &v1alpha1.LocalObjectReference{Name: "Not_Valid"}
		}),
			[]string{"spec.resultConfigMap.name"}},
		"unknown backend type": {taskBackend(func(s *v1alpha1.TaskBackendSpec) { s.Type = "FTP"; s.APIGateway = nil }),
			[]string{"spec.type", "NetworkInsight"}},
		"URL not http": {taskBackend(func(s *v1alpha1.TaskBackendSpec) { s.URL = "ftp://example.com" }),
			[]string{"spec.url", "http or https"}},
		"URL without host": {taskBackend(func(s *v1alpha1.TaskBackendSpec) { s.URL = "https://" }),
			[]string{"spec.url"}},
		"settings of another type": {taskBackend(func(s *v1alpha1.TaskBackendSpec) {
			s.NetworkInsight = &v1alpha1.NetworkInsightSettings{DomainType: v1alpha1.NetworkInsightDomainLocal}
		}), []string{"spec.networkInsight", "only allowed with type NetworkInsight"}},
		"trafficOps settings on APIGateway": {taskBackend(func(s *v1alpha1.TaskBackendSpec) {
			s.TrafficOps = &v1alpha1.TrafficOpsSettings{APIVersion: "5.0"}
		}), []string{"spec.trafficOps", "only allowed with type TrafficOps"}},
		"LDAP without domain": {taskBackend(func(s *v1alpha1.TaskBackendSpec) {
			s.Type, s.APIGateway = v1alpha1.BackendTypeNetworkInsight, nil
			s.NetworkInsight = &v1alpha1.NetworkInsightSettings{DomainType: v1alpha1.NetworkInsightDomainLDAP}
		}), []string{"spec.networkInsight.domain", "required when domainType is LDAP"}},
		"secret namespace on a TaskBackend": {taskBackend(func(s *v1alpha1.TaskBackendSpec) {
			s.CredentialsSecretRef = &v1alpha1.SecretReference{Name: "creds", Namespace: "other"}
		}), []string{"spec.credentialsSecretRef.namespace", "only allowed on ClusterTaskBackend"}},
		"secret without namespace on a ClusterTaskBackend": {clusterBackend(func(s *v1alpha1.TaskBackendSpec) {
			s.CredentialsSecretRef = &v1alpha1.SecretReference{Name: "creds"}
		}), []string{"spec.credentialsSecretRef.namespace", "required on a ClusterTaskBackend"}},
		"request timeout over 5m": {taskBackend(func(s *v1alpha1.TaskBackendSpec) { s.RequestTimeout = &metav1.Duration{Duration: time.Hour} }),
			[]string{"spec.requestTimeout", "between 1s and 5m"}},
		"request timeout under 1s": {taskBackend(func(s *v1alpha1.TaskBackendSpec) { s.RequestTimeout = &metav1.Duration{Duration: time.Millisecond} }),
			[]string{"spec.requestTimeout", "between 1s and 5m"}},
		"zero rate limit": {taskBackend(func(s *v1alpha1.TaskBackendSpec) { s.RateLimit = &v1alpha1.RateLimit{QPS: 0, Burst: 1} }),
			[]string{"spec.rateLimit.qps"}},
		"bad Traffic Ops API version": {taskBackend(func(s *v1alpha1.TaskBackendSpec) {
			s.Type, s.APIGateway = v1alpha1.BackendTypeTrafficOps, nil
			s.TrafficOps = &v1alpha1.TrafficOpsSettings{APIVersion: "five"}
		}), []string{"spec.trafficOps.apiVersion"}},
		"API Gateway project ID with a slash": {taskBackend(func(s *v1alpha1.TaskBackendSpec) { s.APIGateway.ProjectID = "p/../x" }),
			[]string{"spec.apiGateway.projectID"}},
		"taskID ..": {task(func(t *v1alpha1.AsyncTask) { t.Spec.TaskID = ".." }), []string{"spec.taskID", "must not be . or .."}},
		"taskID .":  {task(func(t *v1alpha1.AsyncTask) { t.Spec.TaskID = "." }), []string{"spec.taskID", "must not be . or .."}},
		"URL with user information": {taskBackend(func(s *v1alpha1.TaskBackendSpec) { s.URL = "https://admin:secret@apig.example.com" }),
			[]string{"spec.url", "must not hold user information"}},
		"IAM URL with user information": {taskBackend(func(s *v1alpha1.TaskBackendSpec) { s.APIGateway.IAMURL = "https://u@iam.example.com" }),
			[]string{"spec.apiGateway.iamURL", "must not hold user information"}},
		"allowedNamespaces on a TaskBackend": {taskBackend(func(s *v1alpha1.TaskBackendSpec) {
			s.AllowedNamespaces = &metav1.LabelSelector{MatchLabels: map[string]string{"team": "a"}}
		}), []string{"spec.allowedNamespaces", "only allowed on ClusterTaskBackend"}},
		"response limit over 8 MiB": {taskBackend(func(s *v1alpha1.TaskBackendSpec) { s.MaxResponseBytes = ptr.To[int64](9 << 20) }),
			[]string{"spec.maxResponseBytes"}},
		"response limit under 1 KiB": {taskBackend(func(s *v1alpha1.TaskBackendSpec) { s.MaxResponseBytes = ptr.To[int64](10) }),
			[]string{"spec.maxResponseBytes"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			err := k8sClient.Create(context.Background(), tc.obj)
			g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "want Invalid, got %v", err)
			for _, want := range tc.want {
				g.Expect(err.Error()).To(ContainSubstring(want))
			}
		})
	}
}

func TestTaskIDAndBackendRefAreImmutable(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	task := createTask(t, ns, "fixed", "missing", "id-1")

	changed := task.DeepCopy()
	changed.Spec.TaskID = "id-2"
	err := k8sClient.Patch(context.Background(), changed, client.MergeFrom(task))
	g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "got %v", err)
	g.Expect(err.Error()).To(And(ContainSubstring("spec.taskID"), ContainSubstring("taskID is immutable")))

	changed = task.DeepCopy()
	changed.Spec.BackendRef.Name = "other"
	err = k8sClient.Patch(context.Background(), changed, client.MergeFrom(task))
	g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "got %v", err)
	g.Expect(err.Error()).To(And(ContainSubstring("spec.backendRef"), ContainSubstring("backendRef is immutable")))
}

func TestSubmitIsImmutable(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	task := createTask(t, ns, "fixed", "missing", "", submitting)

	changed := task.DeepCopy()
	changed.Spec.Submit.Operation = "other"
	err := k8sClient.Patch(context.Background(), changed, client.MergeFrom(task))
	g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "got %v", err)
	g.Expect(err.Error()).To(And(ContainSubstring("spec.submit"), ContainSubstring("submit is immutable")))

	// A job started elsewhere instead: taskID added, submit removed.
	err = k8sClient.Patch(context.Background(), task.DeepCopy(), client.RawPatch(types.MergePatchType, []byte(`{"spec":{"submit":null,"taskID":"id-1"}}`)))
	g.Expect(apierrors.IsInvalid(err)).To(BeTrue(), "got %v", err)
	g.Expect(err.Error()).To(ContainSubstring("immutable"))
}

func TestAPIServerAppliesDefaults(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	b := &v1alpha1.TaskBackend{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "defaults"}, Spec: validBackendSpec()}
	g.Expect(k8sClient.Create(context.Background(), b)).To(Succeed())
	g.Expect(b.Spec.PollInterval.Duration).To(Equal(10 * time.Second))
	g.Expect(b.Spec.RequestTimeout.Duration).To(Equal(10 * time.Second))
	g.Expect(*b.Spec.RateLimit).To(Equal(v1alpha1.RateLimit{QPS: 20, Burst: 40}))

	task := createTask(t, ns, "defaults", "defaults", "id")
	g.Expect(task.Spec.BackendRef.Kind).To(Equal(v1alpha1.BackendKindTaskBackend))
}

func TestUnicodeTaskIDsAreAccepted(t *testing.T) {
	ns := newNamespace(t)
	task := createTask(t, ns, "unicode", "none", "tâche-任务-٣")
	NewWithT(t).Expect(task.Spec.TaskID).To(Equal("tâche-任务-٣"))
}
