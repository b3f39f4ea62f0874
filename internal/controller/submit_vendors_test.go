package controller

import (
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/internal/submit"
	"github.com/asynctask-operator/asynctask-operator/test/vendorsim"
)

// vendorSubmission is one vendor's documented start request, as a backend's operation and a task's submit.
type vendorSubmission struct {
	spec   v1alpha1.TaskBackendSpec
	secret map[string]string
	submit v1alpha1.SubmitSpec
	match  func(ns string) string // what the simulator's counters match: the request's path, or its endpoint
	taskID func(g Gomega, id string, task *v1alpha1.AsyncTask)
	keyed  bool
	shared bool // the endpoint's path is the same for every test: counted by difference
}

func body(json string) *v1alpha1.JSON { return &v1alpha1.JSON{Raw: []byte(json)} }

// vendorSubmissions are the seed vendors' start requests, each on a path of its own test namespace where the
// vendor's path allows.
func vendorSubmissions(ns string) map[string]vendorSubmission {
	short := strings.TrimPrefix(ns, "t-")
	return map[string]vendorSubmission{
		"API Gateway import (multipart, no key)": {
			spec: v1alpha1.TaskBackendSpec{Type: v1alpha1.BackendTypeAPIGateway,
				APIGateway: &v1alpha1.APIGatewaySettings{ProjectID: "p" + short, InstanceID: "i1"},
				Operations: []v1alpha1.Operation{{Name: "import", ContentType: v1alpha1.ContentTypeMultipart,
					Path: "/v2/{projectID}/apigw/instances/{instanceID}/openapi/async-import",
					Body: `{"file_name": {"filename": "petstore.yaml", "content": task.body.definition}, "is_create_group": "true"}`}}},
			secret: apigToken(simToken),
			submit: v1alpha1.SubmitSpec{Operation: "import", Body: body(`{"definition":"swagger: '2.0'\ninfo: {title: petstore, version: '1'}\npaths: {}\n"}`)},
			match:  func(string) string { return "/v2/p" + short + "/apigw/instances/i1/openapi/async-import" },
			taskID: func(g Gomega, id string, _ *v1alpha1.AsyncTask) { g.Expect(id).To(MatchRegexp(`^[0-9a-f]{32}$`)) },
		},
		"Network Insight bulk application save (no key)": {
			spec: v1alpha1.TaskBackendSpec{Type: v1alpha1.BackendTypeNetworkInsight,
				Operations: []v1alpha1.Operation{{Name: "save-apps", Path: "/api/ni/groups/discovered-applications/save"}}},
			secret: map[string]string{"username": "sim-user", "password": "sim-password"},
			submit: v1alpha1.SubmitSpec{Operation: "save-apps", Body: body(`{"discovered_apps":[{"source_entity_id":"18230:901:1589525456"}],"discovery_type":"FLOWS"}`)},
			match:  func(string) string { return vendorsim.NetworkInsightSave },
			taskID: func(g Gomega, id string, _ *v1alpha1.AsyncTask) {
				g.Expect(id).To(HavePrefix("TASK_PROGRESS_application.APP_BULK_SAVE."))
			},
			shared: true,
		},
		"Traffic Ops ACME certificate (ID from the Location header, no key)": {
			spec: v1alpha1.TaskBackendSpec{Type: v1alpha1.BackendTypeTrafficOps, TrafficOps: &v1alpha1.TrafficOpsSettings{APIVersion: "5.0"},
				Operations: []v1alpha1.Operation{{Name: "acme", Path: "/api/{apiVersion}/deliveryservices/sslkeys/generate/acme",
					TaskID: `regex.extract(response.headers['location'], '/async_status/([0-9]+)').orValue('')`}}},
			secret: map[string]string{"username": "sim-user", "password": "sim-password"},
			submit: v1alpha1.SubmitSpec{Operation: "acme", Body: body(`{"authType":"Lets Encrypt","key":"demo1","deliveryservice":"demo1","version":2,"hostname":"*.demo1.mycdn.ciab.test","cdn":"CDN-in-a-Box"}`)},
			match:  func(string) string { return vendorsim.TrafficOpsACME },
			taskID: func(g Gomega, id string, _ *v1alpha1.AsyncTask) { g.Expect(id).To(MatchRegexp(`^[0-9]+$`)) },
			shared: true,
		},
		"ZStack create VM (X-Job-UUID)": {
			spec: v1alpha1.TaskBackendSpec{Type: v1alpha1.BackendTypeZStack,
				Operations: []v1alpha1.Operation{{Name: "create-vm", Path: "/zstack/v1/vm-instances-" + short}}},
			secret: map[string]string{"accountName": "sim-user", "password": "sim-password"},
			submit: v1alpha1.SubmitSpec{Operation: "create-vm", Body: body(`{"params":{"name":"vm1","instanceOfferingUuid":"a1","imageUuid":"b2","l3NetworkUuids":["c3"]}}`)},
			match:  func(string) string { return "/zstack/v1/vm-instances-" + short },
			taskID: func(g Gomega, id string, task *v1alpha1.AsyncTask) {
				g.Expect(id).To(Equal(submit.KeyFor(task.UID, 1)), "the job UUID the operator chose")
			},
			keyed: true,
		},
		"HTTP job API with an Idempotency-Key": {
			spec: v1alpha1.TaskBackendSpec{Type: v1alpha1.BackendTypeHTTP,
				HTTP: &v1alpha1.HTTPSettings{Path: "/generic/v1/jobs/{taskID}", Expressions: v1alpha1.HTTPExpressions{
					Phase: "{'queued': 'Pending', 'running': 'Running', 'succeeded': 'Succeeded', 'failed': 'Failed'}[response.body.status]"}},
				Operations: []v1alpha1.Operation{{Name: "run", Path: "/generic/v1/queues/" + short + "/jobs", TaskID: "response.body.id",
					IdempotencyKeyHeader: "Idempotency-Key"}}},
			secret: map[string]string{"token": simToken},
			submit: v1alpha1.SubmitSpec{Operation: "run", Body: body(`{"image":"busybox","args":["true"]}`)},
			match:  func(string) string { return "/generic/v1/queues/" + short + "/jobs" },
			taskID: func(g Gomega, id string, _ *v1alpha1.AsyncTask) { g.Expect(id).To(HavePrefix("job-")) },
			keyed:  true,
		},
	}
}

func TestSubmitStartsOneJobAtEachVendor(t *testing.T) {
	for name := range vendorSubmissions("t-x") {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			ns := newNamespace(t)
			v := vendorSubmissions(ns)[name]
			match := v.match(ns)
			startsBefore, jobsBefore := sim.StartRequests(match), sim.JobsCreated(match)
			b := createBackend(t, ns, "vendor", v.spec, v.secret)
			waitForBackendReady(t, b, metav1.ConditionTrue, v1alpha1.ReasonReady)
			createTask(t, ns, "job", "vendor", "", func(task *v1alpha1.AsyncTask) { task.Spec.Submit = v.submit.DeepCopy() })
			task := waitForPhase(t, ns, "job", v1alpha1.TaskPhaseSucceeded)
			expectCondition(g, task.Status.Conditions, v1alpha1.ConditionSubmitted, metav1.ConditionTrue, v1alpha1.ReasonAccepted)
			v.taskID(g, task.Status.TaskID, task)
			g.Expect(sim.StartRequests(match)-startsBefore).To(Equal(1), "start requests the vendor received")
			g.Expect(sim.JobsCreated(match)-jobsBefore).To(Equal(1), "jobs the vendor created")
			records := sim.StartRecords(match)
			last := records[len(records)-1]
			if v.keyed {
				g.Expect(last.Key).To(Equal(submit.KeyFor(task.UID, 1)), "the attempt's key")
			} else {
				g.Expect(last.Key).To(BeEmpty())
			}
			for _, secret := range []string{"sim-password", simToken} {
				g.Expect(string(last.Body)).NotTo(ContainSubstring(secret), "no credential in the body")
			}
			g.Expect(task.Status.Message).NotTo(ContainSubstring("sim-password"))
		})
	}
}

// TestSubmitZStackSettlesAKilledOperatorsAttemptByItsJobUUID: ZStack is where exactly once is possible. The
// operator's process is killed while ZStack holds its start request, which it either acted on (the job
// exists) or not; the next operator asks ZStack for the job UUID it chose and either tracks that job or sends
// the same request (same UUID) again. Either way one job.
func TestSubmitZStackSettlesAKilledOperatorsAttemptByItsJobUUID(t *testing.T) {
	cases := map[string]struct {
		created    bool
		wantStarts int
	}{
		"ZStack acted on it: the job is found, nothing is sent again": {created: true, wantStarts: 1},
		"ZStack never acted on it: sent again with the same UUID":     {created: false, wantStarts: 2},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			ns := newNamespace(t)
			shard := "kill-" + ns
			v := vendorSubmissions(ns)["ZStack create VM (X-Job-UUID)"]
			match := v.match(ns)
			sim.InjectStartFaults(match, 1, vendorsim.Fault{Hang: true, Create: tc.created})
			createBackend(t, ns, "zstack", v.spec, v.secret)
			operator := startManagerProcess(t, shard)
			createTask(t, ns, "vm", "zstack", "", shardLabel(shard), func(task *v1alpha1.AsyncTask) { task.Spec.Submit = v.submit.DeepCopy() })
			g.Eventually(func() int { return sim.HungRequests(match) }, eventually, tick).Should(Equal(1))
			killProcess(t, operator)
			sim.ReleaseHung()

			startOperator(t, Options{Shard: shard, FieldOwner: "operator-after-kill"}, false)
			task := waitForPhase(t, ns, "vm", v1alpha1.TaskPhaseSucceeded)
			key := submit.KeyFor(task.UID, 1)
			g.Expect(task.Status.TaskID).To(Equal(key))
			g.Expect(sim.StartRequests(match)).To(Equal(tc.wantStarts))
			g.Expect(sim.JobsCreated(match)).To(Equal(1), "one job")
			for _, rec := range sim.StartRecords(match) {
				g.Expect(rec.Key).To(Equal(key), "every send carries the attempt's UUID")
			}
			g.Consistently(func() int { return sim.StartRequests(match) }, 2*time.Second, 250*time.Millisecond).Should(Equal(tc.wantStarts))
		})
	}
}

// TestSubmitVendorRefusalsAreClear: each vendor's documented 400 fails the task with the vendor's words.
func TestSubmitVendorRefusalsAreClear(t *testing.T) {
	for name := range vendorSubmissions("t-x") {
		t.Run(name, func(t *testing.T) {
			g := NewWithT(t)
			ns := newNamespace(t)
			v := vendorSubmissions(ns)[name]
			match := v.match(ns)
			startsBefore := sim.StartRequests(match)
			sim.InjectStartFaults(match, 1, vendorsim.Fault{Status: 400})
			createBackend(t, ns, "vendor", v.spec, v.secret)
			createTask(t, ns, "job", "vendor", "", func(task *v1alpha1.AsyncTask) { task.Spec.Submit = v.submit.DeepCopy() })
			task := waitForSubmitted(t, ns, "job", metav1.ConditionFalse, v1alpha1.ReasonSubmitRejected)
			g.Expect(task.Status.Phase).To(Equal(v1alpha1.TaskPhaseFailed))
			g.Expect(task.Status.Message).To(HavePrefix("The vendor refused the job: HTTP 400"))
			g.Expect(len(task.Status.Message)).To(BeNumerically("<=", 1024*4))
			g.Expect(sim.StartRequests(match) - startsBefore).To(Equal(1))
			t.Log(task.Status.Message)
		})
	}
}
