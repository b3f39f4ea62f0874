package workflows

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
)

// tektonTask is the part of a Tekton Task the example's step is made of.
type tektonTask struct {
	Spec struct {
		Params []struct {
			Name string `json:"name"`
		} `json:"params"`
		Results []struct {
			Name string `json:"name"`
		} `json:"results"`
		Steps []struct {
			Name   string `json:"name"`
			Script string `json:"script"`
		} `json:"steps"`
	} `json:"spec"`
}

// stepRun is one run of the example's step script.
type stepRun struct {
	err            error
	stderr, result string
}

// startStep starts the Tekton example's script as Tekton would, with its $(params.*) and $(results.*.path)
// substituted, and the real kubectl on PATH pointed at the control plane, in the task's namespace (a
// TaskRun's pod has its namespace's service account). wait returns when the script exits.
func startStep(t *testing.T, task, timeout string) (wait func() stepRun) {
	t.Helper()
	g := NewWithT(t)
	var tt tektonTask
	g.Expect(readYAML("tekton-task.yaml", &tt)).To(Succeed())
	g.Expect(tt.Spec.Steps).To(HaveLen(1))
	g.Expect(tt.Spec.Results).To(HaveLen(1))

	dir := t.TempDir()
	resultPath := filepath.Join(dir, "result")
	script := tt.Spec.Steps[0].Script
	for name, value := range map[string]string{"task": task, "timeout": timeout} {
		g.Expect(script).To(ContainSubstring("$(params."+name+")"), "the step uses param %s", name)
		script = strings.ReplaceAll(script, "$(params."+name+")", value)
	}
	script = strings.ReplaceAll(script, "$(results."+tt.Spec.Results[0].Name+".path)", resultPath)
	g.Expect(script).NotTo(MatchRegexp(`\$\((params|results|context|workspaces|steps)\.`), "every Tekton variable is substituted")
	scriptPath := filepath.Join(dir, "step.sh")
	g.Expect(os.WriteFile(scriptPath, []byte(script), 0o600)).To(Succeed())

	base, err := exampleTask()
	g.Expect(err).NotTo(HaveOccurred())
	cfg, err := clientcmd.Load(kubeCfg)
	g.Expect(err).NotTo(HaveOccurred())
	cfg.Contexts[cfg.CurrentContext].Namespace = base.Namespace
	kubeconfig := filepath.Join(dir, "kubeconfig")
	g.Expect(clientcmd.WriteToFile(*cfg, kubeconfig)).To(Succeed())

	cmd := exec.Command("sh", scriptPath)
	cmd.Env = append(os.Environ(), "PATH="+binDir+string(os.PathListSeparator)+os.Getenv("PATH"),
		"KUBECONFIG="+kubeconfig, "HOME="+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	g.Expect(cmd.Start()).To(Succeed())
	return func() stepRun {
		err := cmd.Wait()
		result, _ := os.ReadFile(resultPath)
		return stepRun{err: err, stderr: stderr.String(), result: string(result)}
	}
}

func TestTektonStepSucceedsOnASucceededTask(t *testing.T) {
	run := startStep(t, taskName(stateSucceeded), "1m")()
	g := NewWithT(t)
	g.Expect(run.err).NotTo(HaveOccurred(), "stderr: %s", run.stderr)
	g.Expect(run.result).To(Equal("Succeeded"))
}

func TestTektonStepFailsOnAFailedTaskWithItsMessage(t *testing.T) {
	run := startStep(t, taskName(stateFailed), "1m")()
	g := NewWithT(t)
	g.Expect(run.err).To(HaveOccurred(), "a failed task fails the step")
	g.Expect(run.result).To(Equal("Failed"))
	g.Expect(run.stderr).To(ContainSubstring("Line 3: bad path"))
}

// kubectl wait --timeout=0s checks once and says "condition not met": a task that is not Finished (running, or stalled past its progress
// deadline) is still waited for.
func TestTektonStepKeepsWaitingOnATaskThatIsNotFinished(t *testing.T) {
	for _, s := range []taskState{stateNew, stateRunning, stateStalled} {
		run := startStep(t, taskName(s), "0s")()
		g := NewWithT(t)
		g.Expect(run.err).To(HaveOccurred(), "a %s task", s)
		g.Expect(run.stderr).To(ContainSubstring("condition not met"), "a %s task", s)
		g.Expect(run.result).To(BeEmpty(), "no result before the task finished")
	}
}

// The step started on a running task returns once the operator writes Finished. (Whether kubectl sees the
// status write through its watch or already in its first read depends on who is faster; either way the step
// must not fail or hang.)
func TestTektonStepReturnsWhenTheTaskFinishes(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	task, err := exampleTask()
	g.Expect(err).NotTo(HaveOccurred())
	task.Name = "import-petstore-later"
	g.Expect(k8s.Create(ctx, task)).To(Succeed())
	setStatus(task, stateRunning)
	g.Expect(k8s.Status().Update(ctx, task)).To(Succeed())

	wait := startStep(t, task.Name, "1m")
	g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(task), task)).To(Succeed())
	setStatus(task, stateSucceeded)
	g.Expect(k8s.Status().Update(ctx, task)).To(Succeed())

	run := wait()
	g.Expect(run.err).NotTo(HaveOccurred(), "stderr: %s", run.stderr)
	g.Expect(run.result).To(Equal(string(v1alpha1.TaskPhaseSucceeded)))
}
