// Command promrules writes the spec of a PrometheusRule (read from stdin) as the plain Prometheus rule file
// that promtool and the chart's PrometheusRule template read: config/monitoring/alerts.yaml is the one source.
package main

import (
	"fmt"
	"io"
	"os"

	"sigs.k8s.io/yaml"
)

func main() {
	if err := run(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "promrules:", err)
		os.Exit(1)
	}
}

func run(in io.Reader, out io.Writer) error {
	data, err := io.ReadAll(in)
	if err != nil {
		return err
	}
	var rule struct {
		Kind string `json:"kind"`
		Spec struct {
			Groups []any `json:"groups"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(data, &rule); err != nil {
		return err
	}
	if rule.Kind != "PrometheusRule" || len(rule.Spec.Groups) == 0 {
		return fmt.Errorf("want a PrometheusRule with spec.groups, got kind %q with %d groups", rule.Kind, len(rule.Spec.Groups))
	}
	text, err := yaml.Marshal(map[string]any{"groups": rule.Spec.Groups})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(out, "# Generated from config/monitoring/alerts.yaml by hack/promrules (make monitoring); do not edit.\n%s", text)
	return err
}
