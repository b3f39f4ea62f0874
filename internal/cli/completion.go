package cli

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/asynctask-operator/asynctask-operator/api/v1alpha1"
)

// Shell completion is cobra's: its default `completion` command writes the bash, zsh, fish and PowerShell
// scripts, and its hidden `__complete` command answers them (and kubectl, which runs a plugin's
// kubectl_complete-asynctask script for `kubectl asynctask <TAB>`). What this file adds is the task names.

// completionTimeout bounds the API request behind one <TAB>: a shell waits for it.
const completionTimeout = 5 * time.Second

// completeTaskNames completes TASK arguments with the names of the AsyncTasks in the namespace (-n, else the
// kubeconfig's), leaving out those already given. With single set, it offers nothing once one task is given.
func completeTaskNames(o *Options, single bool) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if single && len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), completionTimeout)
		defer cancel()
		names, err := taskNames(ctx, o)
		if err != nil {
			cobra.CompDebugln("listing AsyncTasks: "+err.Error(), true)
			return nil, cobra.ShellCompDirectiveError | cobra.ShellCompDirectiveNoFileComp
		}
		var out []cobra.Completion
		for _, name := range names {
			if strings.HasPrefix(name, toComplete) && !slices.Contains(args, name) {
				out = append(out, name)
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

// taskNames lists the names of the AsyncTasks in the namespace, sorted.
func taskNames(ctx context.Context, o *Options) ([]string, error) {
	c, err := o.Client()
	if err != nil {
		return nil, err
	}
	ns, err := o.Namespace()
	if err != nil {
		return nil, err
	}
	tasks := &v1alpha1.AsyncTaskList{}
	if err := c.List(ctx, tasks, client.InNamespace(ns)); err != nil {
		return nil, err
	}
	names := make([]string, 0, len(tasks.Items))
	for _, t := range tasks.Items {
		names = append(names, t.Name)
	}
	slices.Sort(names)
	return names, nil
}
