package cli

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestVersionPrintsClientServerAndOperator(t *testing.T) {
	ctx := context.Background()
	res := run(ctx, "version")
	if res.code != ExitOK {
		t.Fatalf("exit %d, stderr %s", res.code, res.stderr)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^client:   \S.*, go1\.\d+`),
		regexp.MustCompile(`(?m)^server:   v1\.\d+\.\d+`),
		regexp.MustCompile(`(?m)^operator: not found$`),
	} {
		if !want.MatchString(res.stdout) {
			t.Errorf("no line matching %s in:\n%s", want, res.stdout)
		}
	}

	// The operator's Deployment, as config/manager and the chart label it; no controller runs it here.
	ns := newNamespace(t)
	labels := map[string]string{operatorNameLabel: operatorName, "control-plane": "controller-manager"}
	deployment := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "asynctask-operator-controller-manager",
			Labels: map[string]string{operatorNameLabel: operatorName, "app.kubernetes.io/version": "0.1.0"}},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{Containers: []corev1.Container{
				{Name: "kube-rbac-proxy", Image: "quay.io/brancz/kube-rbac-proxy:v0.19.1"},
				{Name: operatorContainer, Image: "ghcr.io/asynctask-operator/asynctask-operator:v0.1.0"},
			}}},
		},
	}
	must(t, k8s.Create(ctx, deployment))
	t.Cleanup(func() { _ = k8s.Delete(ctx, deployment) })

	res = run(ctx, "version")
	want := "operator: v0.1.0 (deployment " + ns + "/asynctask-operator-controller-manager)\n" +
		"          image ghcr.io/asynctask-operator/asynctask-operator:v0.1.0\n"
	if res.code != ExitOK || !strings.HasSuffix(res.stdout, want) {
		t.Errorf("exit %d, stdout:\n%s\nwant it to end with:\n%s", res.code, res.stdout, want)
	}

	res = run(ctx, "version", "-o", "json")
	var info versionInfo
	if err := json.Unmarshal([]byte(res.stdout), &info); err != nil || res.code != ExitOK {
		t.Fatalf("exit %d, -o json: %v\n%s", res.code, err, res.stdout)
	}
	if len(info.Operators) != 1 || info.Operators[0].Tag != "v0.1.0" || info.Operators[0].Version != "0.1.0" ||
		info.Server == "" || info.Client.GoVersion == "" {
		t.Errorf("-o json: %+v", info)
	}

	// Someone who may not list Deployments cluster-wide still gets the other two.
	res = run(ctx, "version", "--as", "version-reader")
	if res.code != ExitOK || !strings.Contains(res.stdout, "operator: cannot read (forbidden)\n") ||
		!strings.Contains(res.stdout, "server:   v1.") {
		t.Errorf("exit %d, stdout:\n%s", res.code, res.stdout)
	}
}

func TestImageTag(t *testing.T) {
	for image, want := range map[string]string{
		"ghcr.io/asynctask-operator/asynctask-operator:v0.1.0":        "v0.1.0",
		"registry.local:5000/asynctask-operator":                      "latest",
		"registry.local:5000/asynctask-operator:0.2.0":                "0.2.0",
		"ghcr.io/asynctask-operator/asynctask-operator@sha256:abc123": "sha256:abc123",
		"controller": "latest",
		"":           "",
	} {
		if got := imageTag(image); got != want {
			t.Errorf("imageTag(%q) = %q, want %q", image, got, want)
		}
	}
}
