// Package deploy checks the production deployment that `make deploy` applies: it renders config/default with
// the kubectl built into bin/ (kustomize is part of it) and checks least-privilege RBAC and a locked-down pod.
package deploy

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// rendered is config/default as kustomize builds it, by kind and name.
type rendered map[string]map[string]*unstructured.Unstructured

func render(t *testing.T) rendered {
	t.Helper()
	return decode(t, kustomize(t, "default"))
}

// kustomize is `kubectl kustomize config/<dir>`.
func kustomize(t *testing.T, dir string) []byte {
	t.Helper()
	root, _ := filepath.Abs(filepath.Join("..", ".."))
	out, err := exec.Command(filepath.Join(root, "bin", "kubectl"), "kustomize", filepath.Join(root, "config", dir)).Output()
	if err != nil {
		t.Fatalf("kubectl kustomize config/%s (run `make test`, which builds bin/kubectl): %v", dir, err)
	}
	return out
}

// decode reads a multi-document YAML stream into objects by kind and name.
func decode(t *testing.T, out []byte) rendered {
	t.Helper()
	objs := rendered{}
	for _, obj := range decodeAll(t, out) {
		if objs[obj.GetKind()] == nil {
			objs[obj.GetKind()] = map[string]*unstructured.Unstructured{}
		}
		objs[obj.GetKind()][obj.GetName()] = obj
	}
	return objs
}

// decodeAll reads a multi-document YAML stream.
func decodeAll(t *testing.T, out []byte) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	decoder := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(out), 4096)
	for {
		obj := &unstructured.Unstructured{}
		if err := decoder.Decode(&obj.Object); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatal(err)
		}
		if len(obj.Object) > 0 {
			objs = append(objs, obj)
		}
	}
	return objs
}

func convert[T any](t *testing.T, obj *unstructured.Unstructured) *T {
	t.Helper()
	if obj == nil {
		t.Fatal("object missing from the rendered deployment")
	}
	out := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestManagerRoleIsLeastPrivilege(t *testing.T) {
	role := convert[rbacv1.ClusterRole](t, render(t)["ClusterRole"]["asynctask-manager-role"])
	// Everything the operator may do, cluster-wide; any other grant fails the test.
	allowed := map[string][]string{
		"/secrets":                                       {"get", "list", "watch"},
		"/configmaps":                                    {"create", "get", "update"},
		"/namespaces":                                    {"get", "list", "watch"},
		"events.k8s.io/events":                           {"create", "patch"},
		"tasks.asynctask.dev/asynctasks":                 {"delete", "get", "list", "patch", "update", "watch"},
		"tasks.asynctask.dev/asynctasks/status":          {"get", "patch", "update"},
		"tasks.asynctask.dev/taskbackends":               {"get", "list", "watch"},
		"tasks.asynctask.dev/clustertaskbackends":        {"get", "list", "watch"},
		"tasks.asynctask.dev/taskbackends/status":        {"get", "patch", "update"},
		"tasks.asynctask.dev/clustertaskbackends/status": {"get", "patch", "update"},
	}
	seen := map[string]bool{}
	for _, rule := range role.Rules {
		if len(rule.NonResourceURLs) > 0 || len(rule.ResourceNames) > 0 {
			t.Errorf("unexpected rule %+v", rule)
		}
		for _, group := range rule.APIGroups {
			for _, resource := range rule.Resources {
				key := group + "/" + resource
				want, ok := allowed[key]
				verbs := slices.Sorted(slices.Values(rule.Verbs))
				if !ok || !slices.Equal(verbs, want) {
					t.Errorf("grant %s %v, want %v", key, verbs, want)
				}
				seen[key] = true
			}
		}
	}
	for key := range allowed {
		if !seen[key] {
			t.Errorf("the operator needs %s %v, not granted", key, allowed[key])
		}
	}
	binding := convert[rbacv1.ClusterRoleBinding](t, render(t)["ClusterRoleBinding"]["asynctask-manager-rolebinding"])
	if binding.RoleRef.Name != role.Name || binding.Subjects[0].Name != "asynctask-controller-manager" || binding.Subjects[0].Namespace != "asynctask-system" {
		t.Errorf("manager role bound to %+v", binding)
	}
}

func TestLeaderElectionNeedsOnlyLeasesInItsNamespace(t *testing.T) {
	role := convert[rbacv1.Role](t, render(t)["Role"]["asynctask-leader-election-role"])
	if role.Namespace != "asynctask-system" {
		t.Errorf("leader election role in %q", role.Namespace)
	}
	for _, rule := range role.Rules {
		for _, r := range rule.Resources {
			if r != "leases" && r != "events" {
				t.Errorf("leader election role grants %s", r)
			}
		}
	}
}

func TestManagerPodIsLockedDown(t *testing.T) {
	objs := render(t)
	dep := convert[appsv1.Deployment](t, objs["Deployment"]["asynctask-controller-manager"])
	pod := dep.Spec.Template.Spec
	if pod.SecurityContext == nil || pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot {
		t.Error("pod does not require a non-root user")
	}
	if pod.ServiceAccountName != "asynctask-controller-manager" {
		t.Errorf("service account %q", pod.ServiceAccountName)
	}
	c := pod.Containers[0]
	sc := c.SecurityContext
	switch {
	case sc == nil:
		t.Fatal("container has no security context")
	case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
		t.Error("root filesystem is writable")
	case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
		t.Error("privilege escalation allowed")
	case sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL"):
		t.Error("capabilities not dropped")
	}
	if c.Resources.Limits.Memory().IsZero() {
		t.Error("memory limit missing")
	}
	if !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool {
		return e.Name == "GOMEMLIMIT" && e.ValueFrom != nil && e.ValueFrom.ResourceFieldRef != nil && e.ValueFrom.ResourceFieldRef.Resource == "limits.memory"
	}) {
		t.Error("GOMEMLIMIT is not set from the container's memory limit")
	}
	if !slices.ContainsFunc(c.Env, isPodNameFromDownwardAPI) {
		t.Error("POD_NAME (the ring member's name) is not set from the pod's metadata.name")
	}
	if c.LivenessProbe == nil || c.ReadinessProbe == nil {
		t.Error("probes missing")
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
		t.Error("resource requests missing")
	}
	args := strings.Join(c.Args, " ")
	for _, want := range []string{"--leader-elect", "--metrics-bind-address=:8443"} {
		if !strings.Contains(args, want) {
			t.Errorf("args %q lack %s", args, want)
		}
	}
	if !strings.Contains(c.Image, "asynctask-operator") {
		t.Errorf("image %q", c.Image)
	}
	if objs["Service"]["asynctask-controller-manager-metrics-service"] == nil {
		t.Error("metrics service missing")
	}
	if n := len(objs["CustomResourceDefinition"]); n != 3 {
		t.Errorf("%d CRDs, want 3", n)
	}
}

// TestEgressNetworkPolicyExampleIsAValidPolicyForTheManager: the example in config/networkpolicy decodes as a
// NetworkPolicy with no unknown field, and selects the manager's pods.
func TestEgressNetworkPolicyExampleIsAValidPolicyForTheManager(t *testing.T) {
	root, _ := filepath.Abs(filepath.Join("..", ".."))
	data, err := os.ReadFile(filepath.Join(root, "config", "networkpolicy", "egress.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	obj := &unstructured.Unstructured{}
	if err := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096).Decode(&obj.Object); err != nil {
		t.Fatal(err)
	}
	policy := &networkingv1.NetworkPolicy{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(obj.Object, policy, true); err != nil {
		t.Fatalf("not a NetworkPolicy: %v", err)
	}
	pod := convert[appsv1.Deployment](t, render(t)["Deployment"]["asynctask-controller-manager"]).Spec.Template
	for k, v := range policy.Spec.PodSelector.MatchLabels {
		if pod.Labels[k] != v {
			t.Errorf("the policy selects %s=%s, which the manager's pods do not carry", k, v)
		}
	}
	if len(policy.Spec.Egress) == 0 || !slices.Contains(policy.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) {
		t.Error("the policy does not limit egress")
	}
}

// isPodNameFromDownwardAPI: the manager names its ring Lease after POD_NAME, so it must be the pod's own
// name, unique among the replicas.
func isPodNameFromDownwardAPI(e corev1.EnvVar) bool {
	return e.Name == "POD_NAME" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name"
}

// TestRingOverlayIsConfigDefaultWithThreeReplicasOnTheRing: config/ring renders config/default with only
// these changes: three replicas, --sharding=ring in place of --leader-elect, a spread over nodes, and a
// PodDisruptionBudget over the manager's pods. Everything else (RBAC with the Lease Role, the pod's
// lockdown) is config/default's, object for object.
func TestRingOverlayIsConfigDefaultWithThreeReplicasOnTheRing(t *testing.T) {
	base, ring := render(t), decode(t, kustomize(t, "ring"))
	for kind, objs := range base {
		for name, want := range objs {
			got := ring[kind][name]
			switch {
			case got == nil:
				t.Errorf("config/ring lacks %s %s", kind, name)
			case kind != "Deployment" && !reflect.DeepEqual(got.Object, want.Object):
				t.Errorf("config/ring changes %s %s", kind, name)
			}
		}
	}
	for kind, objs := range ring {
		for name := range objs {
			if base[kind][name] == nil && kind != "PodDisruptionBudget" {
				t.Errorf("config/ring adds %s %s", kind, name)
			}
		}
	}

	const deployment = "asynctask-controller-manager"
	dep := convert[appsv1.Deployment](t, ring["Deployment"][deployment])
	if dep.Spec.Replicas == nil || *dep.Spec.Replicas != 3 {
		t.Errorf("replicas %v, want 3", dep.Spec.Replicas)
	}
	args := dep.Spec.Template.Spec.Containers[0].Args
	if want := slices.Concat([]string{"--sharding=ring"}, convert[appsv1.Deployment](t, base["Deployment"][deployment]).Spec.Template.Spec.Containers[0].Args[1:]); !slices.Equal(args, want) {
		t.Errorf("args %q, want %q (--leader-elect is refused with --sharding=ring)", args, want)
	}
	checkSpreadOverNodes(t, dep)

	// Apart from those three fields, the Deployment is config/default's.
	undone := ring["Deployment"][deployment].DeepCopy()
	replicas, _, _ := unstructured.NestedFieldCopy(base["Deployment"][deployment].Object, "spec", "replicas")
	_ = unstructured.SetNestedField(undone.Object, replicas, "spec", "replicas")
	containers, _, _ := unstructured.NestedSlice(undone.Object, "spec", "template", "spec", "containers")
	containers[0].(map[string]any)["args"].([]any)[0] = "--leader-elect"
	_ = unstructured.SetNestedSlice(undone.Object, containers, "spec", "template", "spec", "containers")
	unstructured.RemoveNestedField(undone.Object, "spec", "template", "spec", "topologySpreadConstraints")
	if !reflect.DeepEqual(undone.Object, base["Deployment"][deployment].Object) {
		t.Error("config/ring changes the Deployment beyond replicas, the first argument and topologySpreadConstraints")
	}

	if len(ring["PodDisruptionBudget"]) != 1 {
		t.Fatalf("PodDisruptionBudgets %v, want one", keys(ring["PodDisruptionBudget"]))
	}
	for _, obj := range ring["PodDisruptionBudget"] {
		checkBudgetLetsOneGo(t, convert[policyv1.PodDisruptionBudget](t, obj), dep, intstr.FromInt32(1))
	}
}

// checkSpreadOverNodes: the pods' one spread constraint is soft (it never keeps a replica unscheduled), by
// node, over the Deployment's own pods, and counts each ReplicaSet apart.
func checkSpreadOverNodes(t *testing.T, dep *appsv1.Deployment) {
	t.Helper()
	spread := dep.Spec.Template.Spec.TopologySpreadConstraints
	if len(spread) != 1 {
		t.Fatalf("topologySpreadConstraints %+v, want one", spread)
	}
	c := spread[0]
	if c.TopologyKey != "kubernetes.io/hostname" || c.WhenUnsatisfiable != corev1.ScheduleAnyway || c.MaxSkew != 1 ||
		!slices.Equal(c.MatchLabelKeys, []string{"pod-template-hash"}) {
		t.Errorf("spread %+v, want maxSkew 1 by kubernetes.io/hostname, ScheduleAnyway, per pod-template-hash", c)
	}
	if c.LabelSelector == nil || !reflect.DeepEqual(c.LabelSelector.MatchLabels, dep.Spec.Selector.MatchLabels) {
		t.Errorf("spread selects %+v, the Deployment's pods are %v", c.LabelSelector, dep.Spec.Selector.MatchLabels)
	}
}

// checkBudgetLetsOneGo: the budget is in the Deployment's namespace, selects exactly its pods (the
// Deployment's own selector, which its pods carry), and allows maxUnavailable of them to be evicted.
func checkBudgetLetsOneGo(t *testing.T, pdb *policyv1.PodDisruptionBudget, dep *appsv1.Deployment, maxUnavailable intstr.IntOrString) {
	t.Helper()
	if pdb.Namespace != dep.Namespace {
		t.Errorf("PodDisruptionBudget in %q, the Deployment in %q", pdb.Namespace, dep.Namespace)
	}
	if pdb.Spec.Selector == nil || !reflect.DeepEqual(pdb.Spec.Selector.MatchLabels, dep.Spec.Selector.MatchLabels) {
		t.Errorf("PodDisruptionBudget selects %+v, the Deployment's pods are %v", pdb.Spec.Selector, dep.Spec.Selector.MatchLabels)
	}
	for k, v := range dep.Spec.Selector.MatchLabels {
		if dep.Spec.Template.Labels[k] != v {
			t.Errorf("the pods lack the selected label %s=%s", k, v)
		}
	}
	if pdb.Spec.MaxUnavailable == nil || *pdb.Spec.MaxUnavailable != maxUnavailable || pdb.Spec.MinAvailable != nil {
		t.Errorf("PodDisruptionBudget maxUnavailable %v minAvailable %v, want maxUnavailable %v", pdb.Spec.MaxUnavailable, pdb.Spec.MinAvailable, maxUnavailable.String())
	}
}
