package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

// operatorNameLabel selects the operator's Deployment: config/manager and the Helm chart both set it (the
// chart's nameOverride changes it, a rare choice that makes version report the operator not found).
const operatorNameLabel = "app.kubernetes.io/name"

// operatorName is the label's value.
const operatorName = "asynctask-operator"

// operatorContainer is the manager's container in config/manager and the chart.
const operatorContainer = "manager"

// versionInfo is what version prints; -o json and -o yaml print it as it is.
type versionInfo struct {
	Client clientVersion `json:"client"`
	// Server is the Kubernetes API server's version, "" when it cannot be read (ServerError says why).
	Server      string `json:"server,omitempty"`
	ServerError string `json:"serverError,omitempty"`
	// Operators are the operator's Deployments found; none when OperatorError says why or none exist.
	Operators     []operatorVersion `json:"operators"`
	OperatorError string            `json:"operatorError,omitempty"`
}

type clientVersion struct {
	// Version is the module version the binary was built as: a release tag, a pseudo-version, or "(devel)".
	Version   string `json:"version"`
	Commit    string `json:"commit,omitempty"`
	Modified  bool   `json:"modified,omitempty"`
	GoVersion string `json:"goVersion"`
}

type operatorVersion struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Image     string `json:"image"`
	// Tag is the image's tag or digest.
	Tag string `json:"tag"`
	// Version is the Deployment's app.kubernetes.io/version label, where it has one (the Helm chart sets it).
	Version string `json:"version,omitempty"`
}

func newVersionCommand(o *Options) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the versions of this command, the Kubernetes API server and the operator",
		Long: `version prints this command's version (its module version or commit, and the Go version it was built
with), the Kubernetes API server's version, and the operator's: the image tag of each Deployment labelled
app.kubernetes.io/name=asynctask-operator, in any namespace, and its app.kubernetes.io/version label where it
has one. What it cannot read it says so, as you: "not found" or "cannot read (forbidden)".`,
		Example: `  kubectl asynctask version
  kubectl asynctask version -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "" && output != "json" && output != "yaml" {
				return fmt.Errorf("--output %q: want json or yaml", output)
			}
			info := versions(cmd.Context(), o)
			return printVersions(o.Streams.Out, info, output)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "json or yaml; plain text when unset")
	return cmd
}

// versions gathers the three versions; what cannot be read is recorded, not returned as an error: version
// is the command people run to find out what is wrong.
func versions(ctx context.Context, o *Options) versionInfo {
	info := versionInfo{Client: buildVersion()}
	if dc, err := o.Flags.ToDiscoveryClient(); err != nil {
		info.ServerError = err.Error()
	} else if v, err := dc.ServerVersion(); err != nil {
		info.ServerError = err.Error()
	} else {
		info.Server = v.GitVersion
	}
	info.Operators, info.OperatorError = operatorVersions(ctx, o)
	return info
}

// buildVersion reads this binary's version from what the Go toolchain stamped into it.
func buildVersion() clientVersion {
	v := clientVersion{Version: "unknown"}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	v.Version, v.GoVersion = bi.Main.Version, bi.GoVersion
	if v.Version == "" {
		v.Version = "(devel)"
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Commit = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}

// operatorVersions finds the operator's Deployments in every namespace.
func operatorVersions(ctx context.Context, o *Options) ([]operatorVersion, string) {
	c, err := o.Client()
	if err != nil {
		return nil, err.Error()
	}
	list := &appsv1.DeploymentList{}
	if err := c.List(ctx, list, client.MatchingLabels{operatorNameLabel: operatorName}); err != nil {
		if apierrors.IsForbidden(err) {
			return nil, "cannot read (forbidden)"
		}
		return nil, err.Error()
	}
	out := []operatorVersion{}
	for _, d := range list.Items {
		image := managerImage(d.Spec.Template.Spec.Containers)
		out = append(out, operatorVersion{Namespace: d.Namespace, Name: d.Name, Image: image, Tag: imageTag(image),
			Version: d.Labels["app.kubernetes.io/version"]})
	}
	return out, ""
}

// managerImage is the image of the manager container, else of the first.
func managerImage(containers []corev1.Container) string {
	for _, c := range containers {
		if c.Name == operatorContainer {
			return c.Image
		}
	}
	if len(containers) > 0 {
		return containers[0].Image
	}
	return ""
}

// imageTag is an image reference's digest or tag ("latest" when it has neither, as a runtime reads it).
func imageTag(image string) string {
	if _, digest, ok := strings.Cut(image, "@"); ok {
		return digest
	}
	// A tag follows the last ':' after the last '/'; a ':' before it is a registry's port.
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		return image[i+1:]
	}
	if image == "" {
		return ""
	}
	return "latest"
}

func printVersions(w io.Writer, info versionInfo, output string) error {
	switch output {
	case "json":
		raw, err := json.MarshalIndent(info, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(w, string(raw))
		return err
	case "yaml":
		raw, err := yaml.Marshal(info)
		if err != nil {
			return err
		}
		_, err = w.Write(raw)
		return err
	}
	client := info.Client.Version
	if info.Client.Commit != "" {
		client += ", commit " + info.Client.Commit
		if info.Client.Modified {
			client += " (modified)"
		}
	}
	fmt.Fprintf(w, "client:   %s, %s\n", client, info.Client.GoVersion)
	if info.ServerError != "" {
		fmt.Fprintf(w, "server:   cannot read: %s\n", info.ServerError)
	} else {
		fmt.Fprintf(w, "server:   %s\n", info.Server)
	}
	switch {
	case info.OperatorError != "":
		fmt.Fprintf(w, "operator: %s\n", info.OperatorError)
	case len(info.Operators) == 0:
		fmt.Fprintln(w, "operator: not found")
	}
	for _, op := range info.Operators {
		line := op.Tag
		if op.Version != "" && strings.TrimPrefix(op.Version, "v") != strings.TrimPrefix(op.Tag, "v") {
			line += ", version label " + op.Version
		}
		fmt.Fprintf(w, "operator: %s (deployment %s/%s)\n", line, op.Namespace, op.Name)
		fmt.Fprintf(w, "          image %s\n", op.Image)
	}
	return nil
}
