package deploy

import (
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// The Helm chart, checked against config/: the same permissions (split by scope when it watches only some
// namespaces), the same locked-down pod, strict values, and every rendered object valid for Kubernetes.

const chartRelease, chartNamespace = "rel", "asynctask-system"

func repoRoot() string {
	root, _ := filepath.Abs(filepath.Join("..", ".."))
	return root
}

func helm(t *testing.T, args ...string) ([]byte, error) {
	t.Helper()
	bin := filepath.Join(repoRoot(), "bin", "helm")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("bin/helm missing (run `make test`, which builds it): %v", err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = repoRoot()
	return cmd.CombinedOutput()
}

// renderChart is `helm template` of the chart with the given --set values.
func renderChart(t *testing.T, values ...string) rendered {
	t.Helper()
	out, err := helm(t, templateArgs(values...)...)
	if err != nil {
		t.Fatalf("helm template %v: %v\n%s", values, err, out)
	}
	return decode(t, out)
}

func templateArgs(values ...string) []string {
	args := []string{"template", chartRelease, "charts/asynctask-operator", "--namespace", chartNamespace}
	for _, v := range values {
		args = append(args, "--set", v)
	}
	return args
}

// grants expands rules into resource -> sorted verbs ("group/resource" keys).
func grants(t *testing.T, rules []rbacv1.PolicyRule) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, rule := range rules {
		for _, url := range rule.NonResourceURLs {
			out["url:"+url] = slices.Sorted(slices.Values(append(out["url:"+url], rule.Verbs...)))
		}
		for _, group := range rule.APIGroups {
			for _, resource := range rule.Resources {
				key := group + "/" + resource
				out[key] = slices.Compact(slices.Sorted(slices.Values(append(out[key], rule.Verbs...))))
			}
		}
	}
	return out
}

// The cluster-scoped resources the manager reads or writes; all else it touches is namespaced.
var clusterScoped = []string{"/namespaces", "tasks.asynctask.dev/clustertaskbackends", "tasks.asynctask.dev/clustertaskbackends/status"}

func TestChartGrantsWhatConfigRBACGrants(t *testing.T) {
	want := grants(t, convert[rbacv1.ClusterRole](t, render(t)["ClusterRole"]["asynctask-manager-role"]).Rules)
	chart := renderChart(t)
	got := grants(t, convert[rbacv1.ClusterRole](t, chart["ClusterRole"][chartRelease+"-asynctask-operator-manager"]).Rules)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("chart's manager ClusterRole grants\n%v\nconfig/rbac/role.yaml grants\n%v", got, want)
	}
	binding := convert[rbacv1.ClusterRoleBinding](t, chart["ClusterRoleBinding"][chartRelease+"-asynctask-operator-manager"])
	if s := binding.Subjects[0]; s.Kind != "ServiceAccount" || s.Name != chartRelease+"-asynctask-operator" || s.Namespace != chartNamespace {
		t.Errorf("manager role bound to %+v", s)
	}
	if len(chart["Role"]) != 1 || len(chart["RoleBinding"]) != 1 {
		t.Errorf("without watchNamespaces only the leader election Role is namespaced, got %v", keys(chart["Role"]))
	}

	// The other roles are copies of config/rbac's.
	kustomized := render(t)
	for chartName, configName := range map[string]string{"metrics-auth": "metrics-auth-role", "metrics-reader": "metrics-reader",
		"editor": "editor-role", "viewer": "viewer-role"} {
		got := grants(t, convert[rbacv1.ClusterRole](t, chart["ClusterRole"][chartRelease+"-asynctask-operator-"+chartName]).Rules)
		want := grants(t, convert[rbacv1.ClusterRole](t, kustomized["ClusterRole"]["asynctask-"+configName]).Rules)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("ClusterRole %s grants %v, config/rbac's %s %v", chartName, got, configName, want)
		}
	}
	got = grants(t, convert[rbacv1.Role](t, chart["Role"][chartRelease+"-asynctask-operator-leader-election"]).Rules)
	want = grants(t, convert[rbacv1.Role](t, kustomized["Role"]["asynctask-leader-election-role"]).Rules)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("leader election Role grants %v, config/rbac's %v", got, want)
	}
}

func TestChartWithWatchNamespacesGrantsNamespacedPermissionsOnlyThere(t *testing.T) {
	want := grants(t, convert[rbacv1.ClusterRole](t, render(t)["ClusterRole"]["asynctask-manager-role"]).Rules)
	values := "watchNamespaces={team-a,team-b}"
	chart := renderChart(t, values)
	cluster := grants(t, convert[rbacv1.ClusterRole](t, chart["ClusterRole"][chartRelease+"-asynctask-operator-manager"]).Rules)
	if got := slices.Sorted(maps.Keys(cluster)); !slices.Equal(got, slices.Sorted(slices.Values(clusterScoped))) {
		t.Errorf("the ClusterRole grants %v, want only the cluster-scoped %v", got, clusterScoped)
	}
	for _, ns := range []string{"team-a", "team-b"} {
		var role *rbacv1.Role
		out, _ := helm(t, templateArgs(values)...)
		for _, obj := range decodeAll(t, out) { // rendered is by name, and the Roles share theirs
			if obj.GetKind() == "Role" && obj.GetNamespace() == ns && obj.GetName() == chartRelease+"-asynctask-operator-manager" {
				role = convert[rbacv1.Role](t, obj)
			}
		}
		if role == nil {
			t.Fatalf("no manager Role in %s", ns)
		}
		union := grants(t, role.Rules)
		for k, v := range cluster {
			union[k] = v
		}
		if !reflect.DeepEqual(union, want) {
			t.Errorf("in %s the ClusterRole and Role grant %v, config/rbac/role.yaml %v", ns, union, want)
		}
	}
	args := convert[appsv1.Deployment](t, chart["Deployment"][chartRelease+"-asynctask-operator"]).Spec.Template.Spec.Containers[0].Args
	if !slices.Contains(args, "--watch-namespaces=team-a,team-b") {
		t.Errorf("args %v lack --watch-namespaces", args)
	}
}

func TestChartPodIsTheKustomizedPod(t *testing.T) {
	want := convert[appsv1.Deployment](t, render(t)["Deployment"]["asynctask-controller-manager"]).Spec.Template.Spec
	got := convert[appsv1.Deployment](t, renderChart(t)["Deployment"][chartRelease+"-asynctask-operator"]).Spec.Template.Spec
	if !reflect.DeepEqual(got.SecurityContext, want.SecurityContext) {
		t.Errorf("pod securityContext %+v, config/manager's %+v", got.SecurityContext, want.SecurityContext)
	}
	g, w := got.Containers[0], want.Containers[0]
	for what, pair := range map[string][2]any{
		"securityContext": {g.SecurityContext, w.SecurityContext},
		"livenessProbe":   {g.LivenessProbe, w.LivenessProbe},
		"readinessProbe":  {g.ReadinessProbe, w.ReadinessProbe},
		"resources":       {g.Resources, w.Resources},
		"env":             {g.Env, w.Env},
		"ports":           {g.Ports, w.Ports},
		"command":         {g.Command, w.Command},
	} {
		if !reflect.DeepEqual(pair[0], pair[1]) {
			t.Errorf("container %s %+v, config/manager's %+v", what, pair[0], pair[1])
		}
	}
	for _, arg := range w.Args {
		if !slices.Contains(g.Args, arg) {
			t.Errorf("chart's args %v lack config/manager's %s", g.Args, arg)
		}
	}
	if got.TerminationGracePeriodSeconds == nil || *got.TerminationGracePeriodSeconds != *want.TerminationGracePeriodSeconds {
		t.Error("terminationGracePeriodSeconds differs")
	}
}

func TestChartValuesAreWired(t *testing.T) {
	chart := renderChart(t, "image.digest=sha256:"+strings.Repeat("ab", 32), "shard=blue", "workers=32",
		"backendNetwork.taskBackendAllowedCIDRs={10.1.0.0/16,10.2.0.0/16}", "forbidNamespacedBackends=true",
		"leaderElection.enabled=false", "metrics.enabled=false", "logLevel=debug", "extraArgs={--zap-encoder=console}")
	c := convert[appsv1.Deployment](t, chart["Deployment"][chartRelease+"-asynctask-operator"]).Spec.Template.Spec.Containers[0]
	if want := "ghcr.io/asynctask-operator/asynctask-operator@sha256:" + strings.Repeat("ab", 32); c.Image != want {
		t.Errorf("image %q, want %q", c.Image, want)
	}
	want := []string{"--health-probe-bind-address=:8081", "--metrics-bind-address=0", "--shard=blue", "--workers=32",
		"--forbid-namespaced-backends", "--taskbackend-allowed-cidrs=10.1.0.0/16,10.2.0.0/16", "--zap-log-level=debug", "--zap-encoder=console"}
	if !reflect.DeepEqual(c.Args, want) {
		t.Errorf("args %q, want %q", c.Args, want)
	}
	if chart["Service"] != nil || chart["Role"] != nil {
		t.Errorf("metrics off and no leader election still render a Service %v or Roles %v", keys(chart["Service"]), keys(chart["Role"]))
	}
}

func TestChartCRDsAreKeptOnUninstallUnlessTold(t *testing.T) {
	for values, want := range map[string]string{"": "keep", "crds.keep=false": ""} {
		chart := renderChart(t, values)
		if n := len(chart["CustomResourceDefinition"]); n != 3 {
			t.Fatalf("%q: %d CRDs, want 3", values, n)
		}
		for name, crd := range chart["CustomResourceDefinition"] {
			if got := crd.GetAnnotations()["helm.sh/resource-policy"]; got != want {
				t.Errorf("%q: CRD %s resource-policy %q, want %q", values, name, got, want)
			}
		}
	}
	if crds := renderChart(t, "crds.install=false")["CustomResourceDefinition"]; len(crds) != 0 {
		t.Errorf("crds.install=false renders %v", keys(crds))
	}
}

func TestChartLints(t *testing.T) {
	if out, err := helm(t, "lint", "--strict", "charts/asynctask-operator"); err != nil {
		t.Errorf("helm lint --strict: %v\n%s", err, out)
	}
}

func TestChartRefusesWrongValues(t *testing.T) {
	cases := map[string]struct {
		values []string
		want   string
	}{
		"unknown key":                   {[]string{"replicas=2"}, "additional properties 'replicas' not allowed"},
		"misspelt nested key":           {[]string{"metrics.servicemonitor.enabled=true"}, "additional properties 'servicemonitor' not allowed"},
		"pull policy not one of three":  {[]string{"image.pullPolicy=Sometimes"}, "/image/pullPolicy"},
		"no workers":                    {[]string{"workers=0"}, "/workers"},
		"not a CIDR":                    {[]string{"backendNetwork.allowedCIDRs={10.0.0.0}"}, "/backendNetwork/allowedCIDRs/0"},
		"namespace not a DNS label":     {[]string{"watchNamespaces={Team_A}"}, "/watchNamespaces/0"},
		"memory limit missing":          {[]string{"resources.limits.memory=null"}, "memory"},
		"network policy without server": {[]string{"networkPolicy.enabled=true"}, "networkPolicy.apiServer.cidrs"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			out, err := helm(t, templateArgs(tc.values...)...)
			if err == nil {
				t.Fatalf("helm template %v succeeded", tc.values)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Errorf("helm template %v said\n%s\nwant it to name %q", tc.values, out, tc.want)
			}
		})
	}
}

func keys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

// TestChartServiceMonitorScrapesTheMetricsPort: kubeconform has no schema for ServiceMonitor, so its
// selector and port are checked here against the metrics Service.
func TestChartServiceMonitorScrapesTheMetricsPort(t *testing.T) {
	chart := renderChart(t, "metrics.serviceMonitor.enabled=true")
	monitor := chart["ServiceMonitor"][chartRelease+"-asynctask-operator"]
	service := convert[corev1.Service](t, chart["Service"][chartRelease+"-asynctask-operator-metrics"])
	if monitor == nil {
		t.Fatal("no ServiceMonitor")
	}
	selector, _, _ := unstructured.NestedStringMap(monitor.Object, "spec", "selector", "matchLabels")
	for k, v := range selector {
		if service.Labels[k] != v {
			t.Errorf("the ServiceMonitor selects %s=%s, the Service is labelled %v", k, v, service.Labels)
		}
	}
	endpoints, _, _ := unstructured.NestedSlice(monitor.Object, "spec", "endpoints")
	if len(endpoints) != 1 || endpoints[0].(map[string]any)["port"] != service.Spec.Ports[0].Name || endpoints[0].(map[string]any)["scheme"] != "https" {
		t.Errorf("endpoints %v do not scrape the Service's port %q over https", endpoints, service.Spec.Ports[0].Name)
	}
}

// TestChartShipsTheAlertsAndTheDashboard: behind their values, the chart's PrometheusRule holds the groups of
// config/monitoring/alerts.yaml and its dashboard ConfigMap, labelled for the Grafana sidecar, holds
// config/monitoring/dashboard.json.
func TestChartShipsTheAlertsAndTheDashboard(t *testing.T) {
	off := renderChart(t)
	if off["PrometheusRule"] != nil || off["ConfigMap"] != nil {
		t.Errorf("by default the chart renders %v %v", keys(off["PrometheusRule"]), keys(off["ConfigMap"]))
	}
	chart := renderChart(t, "monitoring.alerts.enabled=true", "monitoring.alerts.labels.release=prom", "monitoring.dashboard.enabled=true")

	rule := chart["PrometheusRule"][chartRelease+"-asynctask-operator-alerts"]
	if rule == nil {
		t.Fatal("no PrometheusRule")
	}
	data, err := os.ReadFile(filepath.Join(repoRoot(), "config", "monitoring", "alerts.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var source map[string]any
	if err := yaml.Unmarshal(data, &source); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(rule.Object["spec"], source["spec"]) {
		t.Error("the chart's PrometheusRule spec differs from config/monitoring/alerts.yaml: run make monitoring")
	}
	if rule.GetLabels()["release"] != "prom" {
		t.Errorf("monitoring.alerts.labels not applied: %v", rule.GetLabels())
	}

	cm := convert[corev1.ConfigMap](t, chart["ConfigMap"][chartRelease+"-asynctask-operator-dashboard"])
	if cm.Labels["grafana_dashboard"] != "1" {
		t.Errorf("dashboard ConfigMap labels %v, want grafana_dashboard: \"1\"", cm.Labels)
	}
	dashboard, err := os.ReadFile(filepath.Join(repoRoot(), "config", "monitoring", "dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	if cm.Data["asynctask-operator.json"] != string(dashboard) {
		t.Error("the chart's dashboard differs from config/monitoring/dashboard.json: run make monitoring")
	}
}
