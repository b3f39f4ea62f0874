package httpcel

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/internal/backend"
	"github.com/asynctask-operator/asynctask-operator/internal/backend/apigateway"
	"github.com/asynctask-operator/asynctask-operator/internal/backend/backendtest"
	"github.com/asynctask-operator/asynctask-operator/internal/backend/networkinsight"
	"github.com/asynctask-operator/asynctask-operator/internal/backend/trafficops"
	"github.com/asynctask-operator/asynctask-operator/internal/backend/zstack"
	"github.com/asynctask-operator/asynctask-operator/test/vendorsim"
)

// simCreds are what the simulator accepts, for both the built-in and the generic backends.
var simCreds = backendtest.SimCredentials

// loadSample reads the TaskBackend spec of config/samples/<name>.
func loadSample(t testing.TB, name string) v1alpha1.TaskBackendSpec {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "..", "config", "samples", name))
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range strings.Split(string(raw), "\n---") {
		var obj v1alpha1.TaskBackend
		if err := yaml.UnmarshalStrict([]byte(doc), &obj); err != nil {
			var meta struct{ Kind string }
			if yaml.Unmarshal([]byte(doc), &meta) == nil && meta.Kind != "TaskBackend" {
				continue
			}
			t.Fatalf("%s: %v", name, err)
		}
		if obj.Kind == "TaskBackend" {
			return obj.Spec
		}
	}
	t.Fatalf("%s holds no TaskBackend", name)
	return v1alpha1.TaskBackendSpec{}
}

func newClient() *backend.Client {
	return backend.NewClient(backend.ClientOptions{Timeout: 5 * time.Second, QPS: 1000, Burst: 1000})
}

func creds(kv ...string) backend.Credentials {
	c := backend.Credentials{}
	for i := 0; i+1 < len(kv); i += 2 {
		c[kv[i]] = []byte(kv[i+1])
	}
	return c
}

// vendorCase is one seed vendor: its sample, its built-in backend, and scripts of task steps.
type vendorCase struct {
	sample      string
	simVendor   string // the simulator's name for its logins; "" when the sample does not log in
	httpCreds   backend.Credentials
	builtin     func(url string) (backend.Backend, error)
	taskID      func(i int, generic bool) string
	scripts     map[string][]vendorsim.Step
	timesApprox bool // the simulator stamps times per task ID, so the two backends' times differ slightly
}

const importResult = `{"success":[{"id":"a1","name":"api1"},{"id":"a2","name":"api2"}],"failure":[{"error_code":"APIG.3301","error_msg":"exists"}]}`

var vendorCases = map[string]vendorCase{
	"APIGateway": {
		sample:    "http_apigateway.yaml",
		httpCreds: creds("token", simCreds.Token),
		builtin: func(url string) (backend.Backend, error) {
			return apigateway.New(backend.Config{Client: newClient(), Credentials: creds("token", simCreds.Token), Spec: v1alpha1.TaskBackendSpec{
				Type: v1alpha1.BackendTypeAPIGateway, URL: url,
				APIGateway: &v1alpha1.APIGatewaySettings{ProjectID: "0605767a3300d5762fb7c0186d9e1779", InstanceID: "eddc4d25480b4cd6b512f270a1b8b341"},
			}})
		},
		taskID: hexID,
		scripts: map[string][]vendorsim.Step{
			"lifecycle":      {{Phase: vendorsim.Pending}, {Phase: vendorsim.Running}, {Phase: vendorsim.Succeeded, Result: importResult}},
			"failed":         {{Phase: vendorsim.Running}, {Phase: vendorsim.Failed, Message: "The API group name already exists"}},
			"result as text": {{Phase: vendorsim.Succeeded, Result: "done, no JSON"}},
			"errors":         {{HTTPStatus: 500}, {HTTPStatus: 403}, {HTTPStatus: 400}, {RawBody: "<html>proxy</html>"}, {Phase: vendorsim.Running}},
		},
	},
	"NetworkInsight": {
		sample:    "http_networkinsight.yaml",
		simVendor: "NetworkInsight",
		httpCreds: creds("username", simCreds.Username, "password", simCreds.Password),
		builtin: func(url string) (backend.Backend, error) {
			return networkinsight.New(backend.Config{Client: newClient(), Credentials: creds("username", simCreds.Username, "password", simCreds.Password),
				Spec: v1alpha1.TaskBackendSpec{Type: v1alpha1.BackendTypeNetworkInsight, URL: url}})
		},
		taskID: func(i int, generic bool) string {
			return fmt.Sprintf("TASK_PROGRESS_%s.%d", map[bool]string{true: "http", false: "ni"}[generic], i)
		},
		timesApprox: true,
		scripts: map[string][]vendorsim.Step{
			"lifecycle": {{Phase: vendorsim.Pending}, {Phase: vendorsim.Running, Progress: 40}, {Phase: vendorsim.Running, Progress: 99},
				{Phase: vendorsim.Succeeded, Result: `[{"entityId":"18230:561:1","name":"app1","responseCode":"SUCCESS"},{"entityId":"18230:561:2","name":"app2","responseCode":"SUCCESS"}]`}},
			"partly saved": {{Phase: vendorsim.Succeeded, Result: `[{"name":"app1","response_code":"SUCCESS"},{"entity_id":"e2","response_code":"DUPLICATE","error_message":"already exists"}]`}},
			"failed":       {{Phase: vendorsim.Running, Progress: 10}, {Phase: vendorsim.Failed, Message: "disk full"}},
			"errors":       {{HTTPStatus: 500}, {HTTPStatus: 503}, {RawBody: "not json"}, {Phase: vendorsim.Running, Progress: 5}},
		},
	},
	"TrafficOps": {
		sample:    "http_trafficops.yaml",
		simVendor: "TrafficOps",
		httpCreds: creds("username", simCreds.Username, "password", simCreds.Password),
		builtin: func(url string) (backend.Backend, error) {
			return trafficops.New(backend.Config{Client: newClient(), Credentials: creds("username", simCreds.Username, "password", simCreds.Password),
				Spec: v1alpha1.TaskBackendSpec{Type: v1alpha1.BackendTypeTrafficOps, URL: url}})
		},
		taskID: func(i int, generic bool) string {
			return fmt.Sprint(map[bool]int{true: 2000, false: 1000}[generic] + i)
		},
		timesApprox: true,
		scripts: map[string][]vendorsim.Step{
			"lifecycle": {{Phase: vendorsim.Pending}, {Phase: vendorsim.Running, Message: "Updating 4 servers"}, {Phase: vendorsim.Succeeded}},
			"failed":    {{Phase: vendorsim.Running}, {Phase: vendorsim.Failed, Message: "ACME challenge failed"}},
			"errors":    {{HTTPStatus: 500}, {HTTPStatus: 403}, {RawBody: "{\"response\": 3}"}, {Phase: vendorsim.Running}},
		},
	},
	"ZStack": {
		sample:    "http_zstack.yaml",
		simVendor: "ZStack",
		httpCreds: creds("username", simCreds.Username, "password", simCreds.Password),
		builtin: func(url string) (backend.Backend, error) {
			return zstack.New(backend.Config{Client: newClient(), Credentials: creds("accountName", simCreds.Username, "password", simCreds.Password),
				Spec: v1alpha1.TaskBackendSpec{Type: v1alpha1.BackendTypeZStack, URL: url}})
		},
		taskID: hexID,
		scripts: map[string][]vendorsim.Step{
			"lifecycle": {{Phase: vendorsim.Running}, {Phase: vendorsim.Running, Progress: 40, Message: "Allocating the host"},
				{Phase: vendorsim.Running, Progress: 90, Message: "Starting the VM"},
				{Phase: vendorsim.Succeeded, Result: `{"inventory":{"uuid":"a7f1","name":"vm1","state":"Running"}}`}},
			"failed":            {{Phase: vendorsim.Running, Progress: 10, Message: "Allocating"}, {Phase: vendorsim.Failed, Message: "no host has enough memory"}},
			"failed with cause": {{Phase: vendorsim.Failed, Result: `{"error":{"code":"VM.1003","description":"failed to start","details":"x","cause":{"code":"HOST.1001","description":"host down"}}}`}},
			"errors":            {{HTTPStatus: 500}, {HTTPStatus: 404}, {RawBody: "garbage"}, {HTTPStatus: 202, RawBody: "garbage"}, {Phase: vendorsim.Running}},
		},
	},
}

func hexID(i int, generic bool) string {
	return fmt.Sprintf("%08x%024x", map[bool]int{true: 0xb, false: 0xa}[generic], i)
}

// TestSamplesMatchBuiltinBackends runs each seed vendor's sample, as a type HTTP backend, and the vendor's
// built-in backend against the same simulator, on the same scripted task steps, and expects the same
// Observations (and errors of the same kind) poll after poll.
func TestSamplesMatchBuiltinBackends(t *testing.T) {
	for vendor, vc := range vendorCases {
		t.Run(vendor, func(t *testing.T) {
			sim := vendorsim.New(simCreds)
			srv := httptest.NewServer(sim.Handler())
			defer srv.Close()
			spec := loadSample(t, vc.sample)
			spec.URL = srv.URL
			generic, err := New(backend.Config{Spec: spec, Credentials: vc.httpCreds, Client: newClient()})
			if err != nil {
				t.Fatalf("sample %s: %v", vc.sample, err)
			}
			builtin, err := vc.builtin(srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if err := generic.Check(ctx); err != nil {
				t.Fatalf("Check of the sample: %v", err)
			}
			i := 0
			for name, steps := range vc.scripts {
				i++
				builtinID, genericID := vc.taskID(i, false), vc.taskID(i, true)
				sim.AddTask(builtinID, steps...)
				sim.AddTask(genericID, steps...)
				for step := range steps {
					want, wantErr := builtin.Poll(ctx, builtinID)
					got, gotErr := generic.Poll(ctx, genericID)
					where := fmt.Sprintf("%s step %d (%+v)", name, step, steps[step])
					if (wantErr == nil) != (gotErr == nil) || backend.KindOf(wantErr) != backend.KindOf(gotErr) {
						t.Errorf("%s: built-in error %v (%s), generic error %v (%s)", where, wantErr, backend.KindOf(wantErr), gotErr, backend.KindOf(gotErr))
						continue
					}
					if wantErr != nil {
						t.Logf("%s: both %s: built-in %q, generic %q", where, backend.KindOf(wantErr), wantErr, gotErr)
						continue
					}
					if diff := cmp.Diff(want, got, observationComparer(vc.timesApprox)...); diff != "" {
						t.Errorf("%s: generic differs from built-in (-built-in +generic):\n%s", where, diff)
					}
				}
			}
			if vc.simVendor != "" {
				// The session ends: the sample logs in again once and the poll succeeds.
				id := vc.taskID(99, true)
				sim.AddTask(id, vendorsim.Step{Phase: vendorsim.Running})
				before := sim.Logins(vc.simVendor)
				sim.ExpireSessions()
				if _, err := generic.Poll(ctx, id); err != nil {
					t.Fatalf("poll after the session expired: %v", err)
				}
				if n := sim.Logins(vc.simVendor) - before; n != 1 {
					t.Errorf("logins after the session expired = %d, want 1", n)
				}
			}
		})
	}
}

// observationComparer compares results as JSON values (the generic backend writes maps with sorted keys) and,
// where the simulator stamps times per task, times to within a few seconds.
func observationComparer(timesApprox bool) []cmp.Option {
	opts := []cmp.Option{
		cmp.Comparer(func(a, b json.RawMessage) bool {
			if len(a) == 0 || len(b) == 0 {
				return len(a) == len(b)
			}
			return jsonEqual(a, b)
		}),
		// UnknownStatus is the built-in packages' knowledge of their vendor's words; a sample has none.
		cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".UnknownStatus" }, cmp.Ignore()),
	}
	if timesApprox {
		opts = append(opts, cmp.Comparer(func(a, b *time.Time) bool {
			if a == nil || b == nil {
				return a == nil && b == nil
			}
			return a.Sub(*b).Abs() < 5*time.Second
		}))
	}
	return opts
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return bytes.Equal(a, b)
	}
	return reflect.DeepEqual(x, y)
}
