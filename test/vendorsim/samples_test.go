package vendorsim_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
	"github.com/asynctask-operator/asynctask-operator/internal/backend"
	"github.com/asynctask-operator/asynctask-operator/internal/backend/operation"
	"github.com/asynctask-operator/asynctask-operator/internal/backend/registry"
	"github.com/asynctask-operator/asynctask-operator/test/vendorsim"
)

var sampleCreds = vendorsim.Credentials{Token: "sim-token", Username: "sim-user", Password: "sim-password", AccessKey: "AKSIM", SecretKey: "sim-secret"}

// credentialsFor are the Secret keys each sample's backend type logs in with, in the simulator's values.
var credentialsFor = map[v1alpha1.BackendType]backend.Credentials{
	v1alpha1.BackendTypeAPIGateway:     {"accessKey": []byte(sampleCreds.AccessKey), "secretKey": []byte(sampleCreds.SecretKey)},
	v1alpha1.BackendTypeNetworkInsight: {"username": []byte(sampleCreds.Username), "password": []byte(sampleCreds.Password)},
	v1alpha1.BackendTypeTrafficOps:     {"username": []byte(sampleCreds.Username), "password": []byte(sampleCreds.Password)},
	v1alpha1.BackendTypeZStack:         {"accountName": []byte(sampleCreds.Username), "password": []byte(sampleCreds.Password)},
	v1alpha1.BackendTypeHTTP:           {"token": []byte(sampleCreds.Token)},
}

// submitSample is one config/samples/submit_*.yaml: its backend, tasks and ConfigMaps.
type submitSample struct {
	backend    v1alpha1.TaskBackend
	tasks      []v1alpha1.AsyncTask
	configMaps map[string]corev1.ConfigMap
}

func loadSubmitSample(t *testing.T, path string) submitSample {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := submitSample{configMaps: map[string]corev1.ConfigMap{}}
	for _, doc := range strings.Split(string(raw), "\n---") {
		var meta struct{ Kind string }
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		var target any
		var cm corev1.ConfigMap
		var task v1alpha1.AsyncTask
		switch meta.Kind {
		case "TaskBackend":
			target = &s.backend
		case "AsyncTask":
			target = &task
		case "ConfigMap":
			target = &cm
		default:
			continue
		}
		if err := yaml.UnmarshalStrict([]byte(doc), target); err != nil {
			t.Fatalf("%s: %s: %v", path, meta.Kind, err)
		}
		switch meta.Kind {
		case "AsyncTask":
			s.tasks = append(s.tasks, task)
		case "ConfigMap":
			s.configMaps[cm.Name] = cm
		}
	}
	return s
}

// body is what the task's body expression sees of spec.submit: body decoded, or bodyFrom's ConfigMap key
// (JSON decoded, anything else a string), as the operator reads it.
func (s submitSample) body(t *testing.T, submit *v1alpha1.SubmitSpec) any {
	t.Helper()
	var raw []byte
	switch {
	case submit.Body != nil:
		raw = submit.Body.Raw
	case submit.BodyFrom != nil && submit.BodyFrom.ConfigMapKeyRef != nil:
		ref := submit.BodyFrom.ConfigMapKeyRef
		text, ok := s.configMaps[ref.Name].Data[ref.Key]
		if !ok {
			t.Fatalf("bodyFrom names %s/%s, which the sample does not hold", ref.Name, ref.Key)
		}
		raw = []byte(text)
	default:
		return nil
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return string(raw)
	}
	return v
}

// TestSubmitSamplesStartJobsOnTheSimulator takes every config/samples/submit_*.yaml as a user applies it, with
// the simulator's URL and credentials: each task's start request, built by the backend's operation, starts a
// job that the operation's expressions read an ID from, and that ID polls as a running task.
func TestSubmitSamplesStartJobsOnTheSimulator(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join("..", "..", "config", "samples", "submit_*.yaml"))
	if err != nil || len(paths) != 5 {
		t.Fatalf("samples %v (%v), want one per backend type", paths, err)
	}
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) {
			sample := loadSubmitSample(t, path)
			sim, url := vendorsim.Serve(t, sampleCreds)
			spec := sample.backend.Spec
			spec.URL = url
			ops, err := operation.Compile(spec)
			if err != nil {
				t.Fatalf("operations: %v", err)
			}
			factory, err := registry.Lookup(spec.Type)
			if err != nil {
				t.Fatal(err)
			}
			client := backend.NewClient(backend.ClientOptions{Timeout: 5 * time.Second, QPS: 100, Burst: 100})
			t.Cleanup(client.Close)
			b, err := factory(backend.Config{Spec: spec, Credentials: credentialsFor[spec.Type], Client: client})
			if err != nil {
				t.Fatal(err)
			}
			if len(sample.tasks) == 0 {
				t.Fatal("the sample holds no AsyncTask")
			}
			for i, task := range sample.tasks {
				op, ok := ops[task.Spec.Submit.Operation]
				if !ok {
					t.Fatalf("task %s names operation %q, which the backend does not list", task.Name, task.Spec.Submit.Operation)
				}
				key := ""
				if op.IdempotencyKeyHeader != "" {
					key = strings.Repeat(string(rune('a'+i)), 32)
				}
				req, err := op.Request(t.Context(), operation.Task{Body: sample.body(t, task.Spec.Submit),
					Parameters: task.Spec.Submit.Parameters, Namespace: "default", Name: task.Name, UID: "uid-" + task.Name}, key)
				if err != nil {
					t.Fatalf("task %s: %v", task.Name, err)
				}
				resp, err := b.(backend.Sender).Send(t.Context(), req)
				if err != nil {
					t.Fatalf("task %s: Send: %v", task.Name, err)
				}
				answer, err := op.Answer(t.Context(), resp, key)
				if err != nil || !answer.Accepted || answer.TaskID == "" {
					t.Fatalf("task %s: answer %d %s read as %+v, %v", task.Name, resp.StatusCode, resp.Body, answer, err)
				}
				if ids := sim.JobIDs(req.Path); !slices.Contains(ids, answer.TaskID) {
					t.Errorf("task %s: ID %q is not a job the simulator created (%v)", task.Name, answer.TaskID, ids)
				}
				obs, err := backend.PollTask(t.Context(), b, answer.TaskID, task.Spec.Parameters)
				if err != nil || obs.Phase != v1alpha1.TaskPhaseRunning {
					t.Errorf("task %s: poll of %q: %v, %+v", task.Name, answer.TaskID, err, obs)
				}
			}
			if got := sim.StartRequests(""); got != len(sample.tasks) {
				t.Errorf("start requests = %d, want one per task (%d)", got, len(sample.tasks))
			}
		})
	}
}
