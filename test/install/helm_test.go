package install

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// TestHelmInstallThenUninstallKeepsTheCRDs: `helm install` applies the chart to the API server cleanly, and
// `helm uninstall` removes what it installed but the CRDs, which crds.keep (the default) keeps so that
// uninstalling the operator never deletes the users' tasks. It runs first in the package (file order), on an
// API server that holds no CRDs yet, so that Helm owns what it finds.
func TestHelmInstallThenUninstallKeepsTheCRDs(t *testing.T) {
	ctx := context.Background()
	kubeconfig := adminKubeconfig(t)
	helm := func(args ...string) {
		t.Helper()
		cmd := exec.Command(filepath.Join(root, "bin", "helm"), append(args, "--kubeconfig", kubeconfig)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("helm %v: %v\n%s", args, err, out)
		}
	}
	const namespace, release = "helm-install", "it"
	instance := client.MatchingLabels{"app.kubernetes.io/instance": release}
	count := func(list client.ObjectList, opts ...client.ListOption) int {
		t.Helper()
		if err := admin.List(ctx, list, opts...); err != nil {
			t.Fatal(err)
		}
		switch l := list.(type) {
		case *appsv1.DeploymentList:
			return len(l.Items)
		case *rbacv1.ClusterRoleList:
			return len(l.Items)
		case *apiextensionsv1.CustomResourceDefinitionList:
			n := 0
			for _, crd := range l.Items {
				if crd.Spec.Group == "tasks.asynctask.dev" {
					n++
				}
			}
			return n
		}
		t.Fatalf("cannot count a %T", list)
		return 0
	}

	helm("install", release, filepath.Join(root, "charts", "asynctask-operator"), "--namespace", namespace, "--create-namespace")
	if n := count(&appsv1.DeploymentList{}, client.InNamespace(namespace), instance); n != 1 {
		t.Errorf("%d Deployments of the release after helm install, want 1", n)
	}
	if n := count(&rbacv1.ClusterRoleList{}, instance); n == 0 {
		t.Error("no ClusterRole of the release after helm install")
	}
	if n := count(&apiextensionsv1.CustomResourceDefinitionList{}); n != 3 {
		t.Errorf("%d CRDs after helm install, want 3", n)
	}

	helm("uninstall", release, "--namespace", namespace)
	if n := count(&appsv1.DeploymentList{}, client.InNamespace(namespace), instance); n != 0 {
		t.Errorf("%d Deployments of the release after helm uninstall, want 0", n)
	}
	if n := count(&rbacv1.ClusterRoleList{}, instance); n != 0 {
		t.Errorf("%d ClusterRoles of the release after helm uninstall, want 0", n)
	}
	if n := count(&apiextensionsv1.CustomResourceDefinitionList{}); n != 3 {
		t.Errorf("%d CRDs after helm uninstall, want the 3 kept by crds.keep", n)
	}
}

// adminKubeconfig writes a kubeconfig with the control plane's admin credentials, for tools such as helm.
func adminKubeconfig(t *testing.T) string {
	t.Helper()
	kc := clientcmdapi.NewConfig()
	kc.Clusters["local"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData, Token: cfg.BearerToken}
	kc.Contexts["admin"] = &clientcmdapi.Context{Cluster: "local", AuthInfo: "admin"}
	kc.CurrentContext = "admin"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	return path
}
