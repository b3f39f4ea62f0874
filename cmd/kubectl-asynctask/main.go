// Command kubectl-asynctask is the operator's command-line companion; as a kubectl plugin it runs as
// `kubectl asynctask`. See docs/cli.md.
package main

import (
	"fmt"
	"os"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/asynctask-operator/asynctask-operator/internal/cli"
)

func main() {
	err := cli.NewCommand(genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}).Execute()
	if err != nil && err.Error() != "" {
		fmt.Fprintln(os.Stderr, "Error:", err)
	}
	os.Exit(cli.ExitCode(err))
}
