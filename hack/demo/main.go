// Command demo runs the operator on an embedded default: a local control plane, the vendor simulator and
// scripted tasks. Run it with `make demo` from the repository root.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/go-logr/logr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/asynctask-operator/asynctask-operator/internal/demo"
)

func main() {
	exit := flag.Bool("exit-when-settled", false, "Stop once every task finished instead of waiting for Ctrl-C.")
	verbose := flag.Bool("v", false, "Show the operator's logs.")
	flag.Parse()
	if *verbose {
		ctrl.SetLogger(zap.New())
	} else {
		ctrl.SetLogger(logr.Discard())
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root, err := os.Getwd()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := demo.Run(ctx, demo.Options{RepoRoot: root, Out: os.Stdout, ExitWhenSettled: *exit}); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}
