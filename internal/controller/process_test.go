package controller

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	ctrl "sigs.k8s.io/controller-runtime"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/asynctask-operator/asynctask-operator/internal/sharding"
)

// An operator in a process of its own, for tests that kill it (SIGKILL) where an in-process manager could
// only be stopped gracefully: the test binary runs itself with these variables set, and TestMain runs the
// operator instead of the tests.
const (
	managerProcessEnv = "ASYNCTASK_TEST_MANAGER_KUBECONFIG"
	managerShardEnv   = "ASYNCTASK_TEST_MANAGER_SHARD"
	// managerRingEnv, when set, makes the child a member of the ring named by its shard, with this identity.
	managerRingEnv = "ASYNCTASK_TEST_MANAGER_RING_IDENTITY"
)

// startManagerProcess starts an operator for the shard in a child process and returns it; it is killed when
// the test ends if the test did not kill it first. With a ringIdentity, the operator is that member of the ring
// named by the shard.
func startManagerProcess(t *testing.T, shard string, ringIdentity ...string) *exec.Cmd {
	t.Helper()
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["envtest"] = &clientcmdapi.Cluster{Server: testConfig.Host, CertificateAuthorityData: testConfig.CAData}
	cfg.AuthInfos["envtest"] = &clientcmdapi.AuthInfo{ClientCertificateData: testConfig.CertData, ClientKeyData: testConfig.KeyData, Token: testConfig.BearerToken}
	cfg.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "envtest"}
	cfg.CurrentContext = "envtest"
	if err := clientcmd.WriteToFile(*cfg, kubeconfig); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), managerProcessEnv+"="+kubeconfig, managerShardEnv+"="+shard)
	if len(ringIdentity) > 0 {
		cmd.Env = append(cmd.Env, managerRingEnv+"="+ringIdentity[0])
	}
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd
}

// killProcess kills the operator's process at once, as the kernel's OOM killer or a node failure would.
func killProcess(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
}

// runManagerProcess is the child's main: an operator for one shard (a member of its ring, with a ring identity),
// until it is killed.
func runManagerProcess() int {
	logf.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.UseDevMode(true)))
	cfg, err := clientcmd.BuildConfigFromFlags("", os.Getenv(managerProcessEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	shard := os.Getenv(managerShardEnv)
	opts := withTestNetwork(Options{Shard: shard, FieldOwner: "operator-process-" + shard})
	if identity := os.Getenv(managerRingEnv); identity != "" {
		membership, err := newTestMembership(cfg, shard, identity)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		opts = ringReplicaOptions(shard, identity, membership)
	}
	mgrOptions, err := ManagerOptions(opts, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	mgrOptions.Scheme = NewScheme()
	mgr, err := ctrl.NewManager(cfg, mgrOptions)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx := context.Background()
	if err := SetupWithManager(ctx, mgr, opts); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := sharding.RunBeside(ctx, opts.Ring, mgr.Start); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}
