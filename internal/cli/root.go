// Package cli is kubectl-asynctask, the command-line companion of the operator: get (with progress bars and
// an ETA), wait (exit codes per outcome), trace, repoll, resolve and version. It reads and writes only through
// the Kubernetes API, as the user's own identity, with kubectl's connection flags (k8s.io/cli-runtime).
package cli

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
)

// Exit codes. wait has its own meaning for each (see newWaitCommand); every command exits with
// ExitNotFound when a task it was given does not exist or cannot be read.
const (
	ExitOK       = 0
	ExitFailed   = 1
	ExitTimeout  = 2
	ExitNotFound = 3
)

// ExitError ends the program with Code; its message, when there is one, is printed first.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit code %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// ExitCode is the process exit code for what a command returned: an ExitError's code, 1 for any other error.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var exit *ExitError
	if errors.As(err, &exit) {
		return exit.Code
	}
	return ExitFailed
}

// Options hold what every command shares: kubectl's connection flags and the output streams.
type Options struct {
	Flags   *genericclioptions.ConfigFlags
	Streams genericiooptions.IOStreams
	// AllNamespaces is -A: commands that list read every namespace.
	AllNamespaces bool
}

// NewCommand returns the root command, named for kubectl's plugin mechanism (kubectl asynctask).
func NewCommand(streams genericiooptions.IOStreams) *cobra.Command {
	o := &Options{Flags: genericclioptions.NewConfigFlags(true), Streams: streams}
	root := &cobra.Command{
		Use:   "kubectl-asynctask",
		Short: "Watch, wait for and steer AsyncTasks: long jobs that run in vendor systems",
		Long: `kubectl asynctask shows AsyncTasks with progress bars and an ETA, waits for them with an exit code per
outcome, traces why a task is not moving, asks for a poll now and answers a submission whose outcome is unknown.
It reads and writes only through the Kubernetes API, as you.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Annotations:   map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl asynctask"},
	}
	root.SetIn(streams.In)
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)
	o.Flags.AddFlags(root.PersistentFlags())
	root.AddCommand(commands(o)...)
	return root
}

// commands lists the subcommands; each file adds its own by name here.
func commands(o *Options) []*cobra.Command {
	return []*cobra.Command{
		newGetCommand(o),
		newWaitCommand(o),
		newTraceCommand(o),
		newRepollCommand(o),
		newResolveCommand(o),
		newVersionCommand(o),
	}
}

// Scheme knows the AsyncTask kinds and Kubernetes' own.
func Scheme() *runtime.Scheme {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		panic(err)
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		panic(err)
	}
	return scheme
}

// Client connects as the flags say (kubeconfig, context, impersonation, ...).
func (o *Options) Client() (client.WithWatch, error) {
	cfg, err := o.Flags.ToRESTConfig()
	if err != nil {
		return nil, err
	}
	return client.NewWithWatch(cfg, client.Options{Scheme: Scheme()})
}

// Namespace is -n, else the kubeconfig context's namespace, else "default".
func (o *Options) Namespace() (string, error) {
	ns, _, err := o.Flags.ToRawKubeConfigLoader().Namespace()
	return ns, err
}

// IsTerminal reports whether w is a terminal: only then are colours, bars and in-place redraws used.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
