package cli

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/asynctask-operator/asynctask-operator/test/vendorsim"
)

func TestCompletionScripts(t *testing.T) {
	for shell, want := range map[string]string{
		"bash":       "__start_kubectl-asynctask",
		"zsh":        "#compdef kubectl-asynctask",
		"fish":       "complete -c kubectl-asynctask",
		"powershell": "Register-ArgumentCompleter",
	} {
		res := run(context.Background(), "completion", shell)
		if res.code != ExitOK || !strings.Contains(res.stdout, want) {
			t.Errorf("completion %s: exit %d, no %q in %.200q", shell, res.code, want, res.stdout)
		}
	}
}

// completions runs cobra's hidden __complete, as a shell (or kubectl, through kubectl_complete-asynctask)
// does on <TAB>, and returns the candidates it printed, without the flags cobra offers too (a command's
// required flags).
func completions(t *testing.T, args ...string) []string {
	t.Helper()
	res := run(context.Background(), append([]string{"__complete"}, args...)...)
	if res.code != ExitOK {
		t.Fatalf("__complete %v: exit %d, stderr %s", args, res.code, res.stderr)
	}
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(res.stdout), "\n") {
		if strings.HasPrefix(line, ":") { // the directive ends the list
			break
		}
		if !strings.HasPrefix(line, "-") {
			out = append(out, line)
		}
	}
	return out
}

// Every command that takes TASK arguments completes them with the names of the namespace's tasks.
func TestCompletionOfTaskNames(t *testing.T) {
	ns := newNamespace(t)
	for _, name := range []string{"import-orders", "import-users", "export"} {
		newTask(t, ns, name, "to", vendorsim.Step{Phase: vendorsim.Running})
	}
	other := newNamespace(t)
	newTask(t, other, "elsewhere", "to", vendorsim.Step{Phase: vendorsim.Running})

	root := NewCommand(genericiooptions.NewTestIOStreamsDiscard())
	var taking []string
	for _, cmd := range root.Commands() {
		if strings.Contains(cmd.Use, "TASK") {
			taking = append(taking, cmd.Name())
		}
	}
	if !slices.Contains(taking, "trace") {
		t.Fatalf("commands taking TASK: %v", taking)
	}
	for _, name := range taking {
		t.Run(name, func(t *testing.T) {
			if got, want := completions(t, name, "-n", ns, ""), []string{"export", "import-orders", "import-users"}; !slices.Equal(got, want) {
				t.Errorf("%s <TAB>: %v, want %v", name, got, want)
			}
			if got, want := completions(t, name, "-n", ns, "imp"), []string{"import-orders", "import-users"}; !slices.Equal(got, want) {
				t.Errorf("%s imp<TAB>: %v, want %v", name, got, want)
			}
		})
	}

	// A command that takes one task offers none after it; one that takes several leaves out those given.
	if got := completions(t, "trace", "-n", ns, "export", ""); len(got) != 0 {
		t.Errorf("trace export <TAB>: %v, want nothing", got)
	}
	if got, want := completions(t, "repoll", "-n", ns, "export", ""), []string{"import-orders", "import-users"}; !slices.Equal(got, want) {
		t.Errorf("repoll export <TAB>: %v, want %v", got, want)
	}
}

func TestCompletionCommandIsEnabled(t *testing.T) {
	root := NewCommand(genericiooptions.NewTestIOStreamsDiscard())
	if root.CompletionOptions.DisableDefaultCmd {
		t.Error("the completion command is disabled")
	}
	root.InitDefaultCompletionCmd()
	if cmd, _, err := root.Find([]string{"completion"}); err != nil || cmd.Name() != "completion" {
		t.Errorf("no completion command: %v", err)
	}
}

// `kubectl asynctask <TAB>`: kubectl runs kubectl_complete-asynctask (dist/completion), which asks the plugin.
func TestKubectlCompletesThePluginThroughItsScript(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	must(t, err)
	kubectl := filepath.Join(root, "bin", "kubectl")
	if _, err := os.Stat(kubectl); err != nil {
		t.Fatalf("no bin/kubectl: it is built with the control plane (make test, make controlplane): %v", err)
	}
	ns := newNamespace(t)
	newTask(t, ns, "import-orders", "to", vendorsim.Step{Phase: vendorsim.Running})

	bin := filepath.Dir(pluginBinary(t))
	// kubectl drops its own flags before it calls the script: the kubeconfig comes from the environment.
	cmd := exec.Command(kubectl, "__complete", "asynctask", "trace", "-n", ns, "")
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig,
		"PATH="+bin+string(os.PathListSeparator)+filepath.Join(root, "dist", "completion")+string(os.PathListSeparator)+os.Getenv("PATH"))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kubectl __complete: %v", err)
	}
	if got := strings.Split(strings.TrimSpace(string(out)), "\n"); !slices.Equal(got, []string{"import-orders", ":4"}) {
		t.Errorf("kubectl asynctask trace <TAB>: %q, want import-orders and the no-file directive", got)
	}
}
