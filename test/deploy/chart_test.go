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
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/intstr"
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

// TestChartReplicasShareTasksOnARingOrElectALeader: sharding auto runs the ring (--sharding=ring, never with
// --leader-elect, which the manager refuses beside it) for more than one replica, and leader election for one,
// as before the ring. More than one replica, in either mode, gets a PodDisruptionBudget and a spread over
// nodes. The Lease Role is there whenever the manager holds Leases, and the Lease timings are passed only
// when they differ from the manager's defaults, so that a default release's arguments stay as they were.
func TestChartReplicasShareTasksOnARingOrElectALeader(t *testing.T) {
	cases := map[string]struct {
		values []string
		// modeArgs are the arguments that say how replicas share the work, and the Leases' timings.
		modeArgs                    []string
		leaseRole, budget, spreadOn bool
	}{
		"one replica elects a leader, as before": {nil, []string{"--leader-elect"}, true, false, false},
		"one replica without leader election":    {[]string{"leaderElection.enabled=false"}, nil, false, false, false},
		"three replicas share the tasks on a ring": {[]string{"replicaCount=3"},
			[]string{"--sharding=ring"}, true, true, true},
		"the ring holds Leases whatever leaderElection says": {[]string{"replicaCount=3", "leaderElection.enabled=false"},
			[]string{"--sharding=ring"}, true, true, true},
		"three replicas told to elect a leader": {[]string{"replicaCount=3", "sharding=leader"},
			[]string{"--leader-elect"}, true, true, true},
		"a ring of one replica": {[]string{"sharding=ring"}, []string{"--sharding=ring"}, true, false, false},
		"lease timings other than the defaults": {[]string{"replicaCount=3", "lease.duration=30s", "lease.renewDeadline=10s", "lease.retryPeriod=4s"},
			[]string{"--sharding=ring", "--lease-duration=30s", "--lease-retry-period=4s"}, true, true, true},
		"lease timings of a leader": {[]string{"lease.renewDeadline=20s", "lease.duration=1m"},
			[]string{"--leader-elect", "--lease-duration=1m", "--lease-renew-deadline=20s"}, true, false, false},
		"no lease timings where no Lease is held": {[]string{"leaderElection.enabled=false", "lease.duration=30s"}, nil, false, false, false},
		"the budget turned off": {[]string{"replicaCount=3", "podDisruptionBudget.enabled=false"},
			[]string{"--sharding=ring"}, true, false, true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			chart := renderChart(t, tc.values...)
			dep := convert[appsv1.Deployment](t, chart["Deployment"][chartRelease+"-asynctask-operator"])
			c := dep.Spec.Template.Spec.Containers[0]
			var modeArgs []string
			for _, arg := range c.Args {
				if arg == "--leader-elect" || strings.HasPrefix(arg, "--sharding") || strings.HasPrefix(arg, "--lease-") {
					modeArgs = append(modeArgs, arg)
				}
			}
			if !slices.Equal(modeArgs, tc.modeArgs) {
				t.Errorf("args %q, want %q among them", c.Args, tc.modeArgs)
			}
			if !slices.ContainsFunc(c.Env, isPodNameFromDownwardAPI) {
				t.Error("POD_NAME (the ring member's name) is not set from the pod's metadata.name")
			}

			role := chart["Role"][chartRelease+"-asynctask-operator-leader-election"]
			if (role != nil) != tc.leaseRole {
				t.Errorf("Lease Role rendered: %t, want %t", role != nil, tc.leaseRole)
			}
			if role != nil {
				// Namespaced, and all a member needs: its own Lease, the others' (watched), and the deletion of
				// crashed members' expired ones.
				r := convert[rbacv1.Role](t, role)
				if got, want := grants(t, r.Rules)["coordination.k8s.io/leases"], []string{"create", "delete", "get", "list", "patch", "update", "watch"}; r.Namespace != chartNamespace || !slices.Equal(got, want) {
					t.Errorf("Role in %q grants leases %v, want %v in %s", r.Namespace, got, want, chartNamespace)
				}
				if len(chart["RoleBinding"]) != 1 {
					t.Errorf("RoleBindings %v, want the Lease Role's", keys(chart["RoleBinding"]))
				}
			}

			if got := len(chart["PodDisruptionBudget"]); got != map[bool]int{true: 1}[tc.budget] {
				t.Errorf("%d PodDisruptionBudgets, want budget %t", got, tc.budget)
			}
			for _, obj := range chart["PodDisruptionBudget"] {
				checkBudgetLetsOneGo(t, convert[policyv1.PodDisruptionBudget](t, obj), dep, intstr.FromInt32(1))
			}
			if spreadOn := dep.Spec.Template.Spec.TopologySpreadConstraints != nil; spreadOn != tc.spreadOn {
				t.Errorf("topologySpreadConstraints rendered: %t, want %t", spreadOn, tc.spreadOn)
			}
			if tc.spreadOn {
				checkSpreadOverNodes(t, dep)
			}
		})
	}
}

// TestChartSingleReplicaRunsAsBefore: the default release's arguments are what they were before the ring,
// word for word.
func TestChartSingleReplicaRunsAsBefore(t *testing.T) {
	c := convert[appsv1.Deployment](t, renderChart(t)["Deployment"][chartRelease+"-asynctask-operator"]).Spec.Template.Spec.Containers[0]
	want := []string{"--leader-elect", "--health-probe-bind-address=:8081", "--metrics-bind-address=:8443", "--workers=16", "--zap-log-level=info"}
	if !slices.Equal(c.Args, want) {
		t.Errorf("args %q, want %q", c.Args, want)
	}
}

// TestChartBudgetAndSpreadAreConfigurable: a percentage budget is passed as one; the spread constraints given
// replace the default, each getting the pods' labels as its selector unless it has its own.
func TestChartBudgetAndSpreadAreConfigurable(t *testing.T) {
	chart := renderChart(t, "replicaCount=3", "podDisruptionBudget.maxUnavailable=34%",
		"topologySpreadConstraints[0].maxSkew=1", "topologySpreadConstraints[0].topologyKey=topology.kubernetes.io/zone",
		"topologySpreadConstraints[0].whenUnsatisfiable=DoNotSchedule",
		"topologySpreadConstraints[1].maxSkew=2", "topologySpreadConstraints[1].topologyKey=kubernetes.io/hostname",
		"topologySpreadConstraints[1].whenUnsatisfiable=ScheduleAnyway", "topologySpreadConstraints[1].labelSelector.matchLabels.tier=ops")
	dep := convert[appsv1.Deployment](t, chart["Deployment"][chartRelease+"-asynctask-operator"])
	checkBudgetLetsOneGo(t, convert[policyv1.PodDisruptionBudget](t, chart["PodDisruptionBudget"][chartRelease+"-asynctask-operator"]), dep, intstr.FromString("34%"))
	want := []corev1.TopologySpreadConstraint{
		{MaxSkew: 1, TopologyKey: "topology.kubernetes.io/zone", WhenUnsatisfiable: corev1.DoNotSchedule,
			LabelSelector: &metav1.LabelSelector{MatchLabels: dep.Spec.Selector.MatchLabels}},
		{MaxSkew: 2, TopologyKey: "kubernetes.io/hostname", WhenUnsatisfiable: corev1.ScheduleAnyway,
			LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "ops"}}},
	}
	if got := dep.Spec.Template.Spec.TopologySpreadConstraints; !reflect.DeepEqual(got, want) {
		t.Errorf("topologySpreadConstraints\n%+v\nwant\n%+v", got, want)
	}
}

// TestChartUpgradedWithReusedValuesRendersAsANewInstall: `helm upgrade --reuse-values` of a release made
// before sharding, lease, podDisruptionBudget and topologySpreadConstraints existed keeps that release's
// values, which lack them. The chart then renders as it does with their defaults: a single replica keeps
// leader election, three replicas get the ring, a budget and the spread.
func TestChartUpgradedWithReusedValuesRendersAsANewInstall(t *testing.T) {
	old := filepath.Join(t.TempDir(), "asynctask-operator")
	if err := os.CopyFS(old, os.DirFS(filepath.Join(repoRoot(), "charts", "asynctask-operator"))); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(old, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var values map[string]any
	if err := yaml.Unmarshal(data, &values); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"sharding", "lease", "podDisruptionBudget", "topologySpreadConstraints"} {
		if _, ok := values[key]; !ok {
			t.Fatalf("values.yaml has no %s", key)
		}
		delete(values, key)
	}
	if data, err = yaml.Marshal(values); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(old, "values.yaml"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, replicas := range []string{"replicaCount=1", "replicaCount=3"} {
		args := templateArgs(replicas)
		want, err := helm(t, args...)
		if err != nil {
			t.Fatalf("helm template: %v\n%s", err, want)
		}
		args[2] = old // the chart
		got, err := helm(t, args...)
		if err != nil {
			t.Fatalf("helm template of the chart without the new values: %v\n%s", err, got)
		}
		if !reflect.DeepEqual(decodeAll(t, got), decodeAll(t, want)) {
			t.Errorf("%s: without the new values the chart renders differently", replicas)
		}
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
		"sharding not one of three":     {[]string{"sharding=shards"}, "/sharding"},
		"lease timing not a duration":   {[]string{"lease.retryPeriod=2"}, "/lease/retryPeriod"},
		"lease timing without a unit":   {[]string{"lease.duration=fifteen"}, "/lease/duration"},
		"budget that blocks drains":     {[]string{"podDisruptionBudget.maxUnavailable=0"}, "/podDisruptionBudget/maxUnavailable"},
		"spread without a topology key": {[]string{"topologySpreadConstraints[0].maxSkew=1", "topologySpreadConstraints[0].whenUnsatisfiable=ScheduleAnyway"}, "topologyKey"},
		"replicas that would all poll every task": {[]string{"replicaCount=2", "sharding=leader", "leaderElection.enabled=false"},
			"needs leaderElection.enabled"},
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
