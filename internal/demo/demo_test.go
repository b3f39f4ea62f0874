package demo

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDemoRunsToSettled runs the README's first command end to end: control plane, simulator, operator, tasks.
func TestDemoRunsToSettled(t *testing.T) {
	root, _ := filepath.Abs(filepath.Join("..", ".."))
	var out bytes.Buffer
	var table string
	kubectlGet := func(kubeconfig string) error {
		cmd := exec.Command(filepath.Join(root, "bin", "kubectl"), "--kubeconfig", kubeconfig, "get", "asynctasks", "-n", "demo", "-o", "wide")
		got, err := cmd.CombinedOutput()
		table = string(got)
		return err
	}
	err := Run(context.Background(), Options{RepoRoot: root, Out: &out, ExitWhenSettled: true, SettleTimeout: 90 * time.Second,
		AfterSettled: kubectlGet})
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	header := strings.Fields(strings.SplitN(table, "\n", 2)[0])
	if want := []string{"NAME", "BACKEND", "TASK", "ID", "PHASE", "PROGRESS", "AGE", "MESSAGE"}; strings.Join(header, " ") != strings.Join(want, " ") {
		t.Errorf("kubectl get asynctasks -o wide columns = %v, want %v\n%s", header, want, table)
	}
	if !strings.Contains(table, "Imported 1 APIs") {
		t.Errorf("kubectl get asynctasks -o wide lacks the message:\n%s", table)
	}
	for _, want := range []string{"apig-import", "Succeeded", "apig-conflict", "Failed", "KUBECONFIG=",
		"render-4", "Queued", "zstack-new-vm", "apig-import-orders", "SubmitOutcomeUnknown", "adopts it"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("demo output lacks %q:\n%s", want, out.String())
		}
	}
}
