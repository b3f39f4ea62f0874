package install

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// leaseName is the leader election Lease of the default shard (cmd/main.go).
const leaseName = "asynctask-operator.tasks.asynctask.dev"

// helmTemplate renders the chart as release in namespace with --set values.
func helmTemplate(t *testing.T, release, namespace string, values ...string) []byte {
	t.Helper()
	args := []string{"template", release, filepath.Join(root, "charts", "asynctask-operator"), "--namespace", namespace}
	for _, v := range values {
		args = append(args, "--set", v)
	}
	out, err := exec.Command(filepath.Join(root, "bin", "helm"), args...).Output()
	if err != nil {
		t.Fatalf("helm template (run `make test`, which builds bin/helm): %v", err)
	}
	return out
}

// syncBuffer collects a process's output while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startManager runs the manager binary with the rendered Deployment's arguments, as the ServiceAccount of
// the rendered manifests, and stops it when the test ends. Its probe and metrics servers are off (they would
// need fixed ports); the simulator's loopback address is allowed; the Lease is put in the release namespace,
// which in a pod comes from the service account mount. It is stopped by SIGINT, or killed when !graceful.
func startManager(t *testing.T, objs []*unstructured.Unstructured, graceful bool) *syncBuffer {
	t.Helper()
	sa := find(t, objs, "ServiceAccount")
	kubeconfig := writeKubeconfig(t, serviceAccountToken(t, sa.GetNamespace(), sa.GetName()))
	args := []string{"--leader-election-namespace=" + sa.GetNamespace(), "--taskbackend-allowed-cidrs=127.0.0.1/32"}
	for _, arg := range deploymentArgs(t, objs) {
		if !strings.HasPrefix(arg, "--health-probe-bind-address") && !strings.HasPrefix(arg, "--metrics-bind-address") {
			args = append(args, arg)
		}
	}
	args = append(args, "--health-probe-bind-address=0", "--metrics-bind-address=0")
	out := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, manager, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	cmd.Stdout, cmd.Stderr = out, out
	if graceful {
		cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	}
	cmd.WaitDelay = 15 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		stopping := time.Now()
		_ = cmd.Wait()
		if graceful && time.Since(stopping) > 10*time.Second {
			t.Errorf("the manager took %s to stop after SIGINT", time.Since(stopping).Round(time.Second))
		}
		if t.Failed() {
			t.Logf("manager %v output:\n%s", args, out)
		}
	})
	return out
}

func deploymentArgs(t *testing.T, objs []*unstructured.Unstructured) []string {
	t.Helper()
	containers, _, _ := unstructured.NestedSlice(find(t, objs, "Deployment").Object, "spec", "template", "spec", "containers")
	var args []string
	for _, arg := range containers[0].(map[string]any)["args"].([]any) {
		args = append(args, arg.(string))
	}
	if !slices.Contains(args, "--leader-elect") {
		t.Fatalf("the Deployment's args %v lack --leader-elect", args)
	}
	return args
}

// checkLeaseAndEvents checks that the manager took the Lease in its namespace and wrote Events on the
// tasks of ns.
func checkLeaseAndEvents(t *testing.T, leaseNamespace, ns string) {
	t.Helper()
	ctx := context.Background()
	lease := &coordinationv1.Lease{}
	if err := admin.Get(ctx, client.ObjectKey{Namespace: leaseNamespace, Name: leaseName}, lease); err != nil {
		t.Fatalf("leader election Lease: %v", err)
	}
	if lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "" {
		t.Errorf("Lease %s/%s has no holder", leaseNamespace, leaseName)
	}
	waitFor(t, "Events on the tasks in "+ns, func() bool {
		events := &eventsv1.EventList{}
		if err := admin.List(ctx, events, client.InNamespace(ns)); err != nil {
			return false
		}
		for _, e := range events.Items {
			if e.Regarding.Kind == "AsyncTask" && e.Reason != "" {
				return true
			}
		}
		return false
	})
}

// TestChartInstallRunsTheOperatorAsItsServiceAccount: with nothing but what the chart grants its
// ServiceAccount, the manager tracks a task of every vendor to Succeeded, holds the leader Lease and writes
// Events.
func TestChartInstallRunsTheOperatorAsItsServiceAccount(t *testing.T) {
	const release, ns, tenant = "cluster", "asynctask-cluster", "tenant-cluster"
	createNamespace(t, ns)
	createNamespace(t, tenant)
	objs := applyManifests(t, helmTemplate(t, release, ns))
	names := createTasks(t, tenant, 4)
	logs := startManager(t, objs, true)
	waitSucceeded(t, tenant, names, logs)
	checkLeaseAndEvents(t, ns, tenant)
}

// TestChartWithWatchNamespacesNeedsOnlyRolesThere: with watchNamespaces the chart binds the namespaced
// permissions by Roles in those namespaces only, and that is enough: tasks there succeed, while the
// ServiceAccount cannot read Secrets anywhere else.
func TestChartWithWatchNamespacesNeedsOnlyRolesThere(t *testing.T) {
	const release, ns, tenant, other = "scoped", "asynctask-scoped", "tenant-scoped", "tenant-other"
	createNamespace(t, ns)
	createNamespace(t, tenant)
	createNamespace(t, other)
	objs := applyManifests(t, helmTemplate(t, release, ns, "watchNamespaces={"+tenant+"}", "rbac.aggregateToDefaultRoles=false"))
	names := createTasks(t, tenant, 4)
	logs := startManager(t, objs, true)
	waitSucceeded(t, tenant, names, logs)
	checkLeaseAndEvents(t, ns, tenant)

	sa := find(t, objs, "ServiceAccount")
	asSA, err := client.New(tokenConfig(serviceAccountToken(t, sa.GetNamespace(), sa.GetName())), client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	for _, namespace := range []string{other, ""} {
		if err := asSA.List(context.Background(), &corev1.SecretList{}, client.InNamespace(namespace)); !isForbidden(err) {
			t.Errorf("the scoped ServiceAccount lists Secrets in %q: err %v, want forbidden", namespace, err)
		}
	}
}

// TestMissingPermissionIsReportedByResourceAndVerb: with the grant to list and watch TaskBackends taken out
// of the chart's ClusterRole, the manager says which resource and verb it was refused, with its user.
func TestMissingPermissionIsReportedByResourceAndVerb(t *testing.T) {
	const release, ns = "missing", "asynctask-missing"
	createNamespace(t, ns)
	objs := decodeManifests(t, helmTemplate(t, release, ns))
	for _, obj := range objs {
		if obj.GetKind() != "ClusterRole" || obj.GetName() != release+"-asynctask-operator-manager" {
			continue
		}
		rules, _, _ := unstructured.NestedSlice(obj.Object, "rules")
		kept := slices.DeleteFunc(rules, func(rule any) bool {
			resources := rule.(map[string]any)["resources"].([]any)
			return slices.Contains(resources, any("taskbackends"))
		})
		if len(kept) == len(rules) {
			t.Fatal("no taskbackends rule to take out")
		}
		if err := unstructured.SetNestedSlice(obj.Object, kept, "rules"); err != nil {
			t.Fatal(err)
		}
	}
	var manifests bytes.Buffer
	for _, obj := range objs {
		data, err := obj.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		manifests.Write(data)
		manifests.WriteString("\n")
	}
	applyManifests(t, manifests.Bytes())
	// Killed at the end: while its caches cannot sync, the manager ignores SIGINT until they time out.
	logs := startManager(t, objs, false)
	// controller-runtime logs the refused list of its cache's reflector at error level, as it retries.
	want := fmt.Sprintf(`User "system:serviceaccount:%s:%s-asynctask-operator" cannot list resource "taskbackends" in API group "tasks.asynctask.dev" at the cluster scope`, ns, release)
	waitFor(t, "the manager to report the missing permission", func() bool {
		for _, line := range strings.Split(logs.String(), "\n") {
			if strings.Contains(line, `"level":"error"`) && strings.Contains(line, `"msg":"Failed to watch"`) &&
				strings.Contains(strings.ReplaceAll(line, `\"`, `"`), want) {
				return true
			}
		}
		return false
	})
}

func createNamespace(t *testing.T, name string) {
	t.Helper()
	if err := admin.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		t.Fatal(err)
	}
}

// tokenConfig is a client config for the local API server that authenticates with token.
func tokenConfig(token string) *rest.Config {
	return &rest.Config{Host: cfg.Host, BearerToken: token, TLSClientConfig: rest.TLSClientConfig{CAData: cfg.CAData}}
}
