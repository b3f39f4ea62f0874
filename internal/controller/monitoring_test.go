package controller

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/promql/parser"
	"sigs.k8s.io/yaml"
)

// monitoringDir holds the dashboard and the alerts.
var monitoringDir = filepath.Join("..", "..", "config", "monitoring")

// fromOutsideTheOperator are the series the alerts and the dashboard use that the operator's registry serves
// only in some deployments, or that other exporters serve: controller-runtime registers
// leader_election_master_status when leader election is on (the chart's default; off in this suite's manager);
// the ring's series exist only with --sharding=ring (ring.go: absent, not 0, so that the ring alert stays silent
// under leader election); the ring alert finds each pod's Deployment through kube-state-metrics.
var fromOutsideTheOperator = map[string][]string{
	"leader_election_master_status":  {"name"},
	"asynctask_ring_members":         {},
	"asynctask_ring_owned_tasks":     {},
	"asynctask_ring_owned_backends":  {},
	"asynctask_ring_handovers_total": {"direction"},
	"kube_pod_owner":                 {"namespace", "pod", "owner_kind", "owner_name"},
	"kube_replicaset_owner":          {"namespace", "replicaset", "owner_kind", "owner_name"},
	"kube_deployment_spec_replicas":  {"namespace", "deployment"},
}

// promQL parses as Prometheus does by default (no experimental functions).
var promQL = parser.NewParser(parser.Options{})

// grafanaVariables are what the dashboard's variables stand for when its queries are parsed.
var grafanaVariables = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "${datasource}", "prometheus",
	"$namespace", ".*", "$backend", ".*")

// exportedNames lists every series name the registry serves, histograms with their _bucket, _sum and _count,
// with the label names of each (a histogram's buckets add le).
func exportedNames(families map[string]*dto.MetricFamily) map[string]map[string]bool {
	names := map[string]map[string]bool{}
	add := func(name string, f *dto.MetricFamily, extra ...string) {
		labels := map[string]bool{}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = true
			}
		}
		for _, e := range extra {
			labels[e] = true
		}
		names[name] = labels
	}
	for name, f := range families {
		add(name, f)
		switch f.GetType() {
		case dto.MetricType_HISTOGRAM:
			add(name+"_bucket", f, "le")
			add(name+"_sum", f)
			add(name+"_count", f)
		case dto.MetricType_SUMMARY:
			add(name+"_sum", f)
			add(name+"_count", f)
		}
	}
	for name, labels := range fromOutsideTheOperator {
		if names[name] == nil {
			names[name] = map[string]bool{}
			for _, l := range labels {
				names[name][l] = true
			}
		}
	}
	return names
}

// checkExpression parses one PromQL expression and checks that every series it selects is exported, and
// every label it matches on is one those series carry.
func checkExpression(g Gomega, where, expr string, exported map[string]map[string]bool) {
	parsed, err := promQL.ParseExpr(expr)
	g.Expect(err).NotTo(HaveOccurred(), "%s: %s", where, expr)
	selectors := 0
	parser.Inspect(parsed, func(node parser.Node, _ []parser.Node) error {
		vs, ok := node.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		selectors++
		labels, known := exported[vs.Name]
		g.Expect(known).To(BeTrue(), "%s: %s selects %q, which the operator does not export", where, expr, vs.Name)
		for _, m := range vs.LabelMatchers {
			if m.Name != "__name__" {
				g.Expect(labels).To(HaveKey(m.Name), "%s: %s matches label %q, which %s does not have", where, expr, m.Name, vs.Name)
			}
		}
		return nil
	})
	g.Expect(selectors).To(BeNumerically(">", 0), "%s: %s selects nothing", where, expr)
}

// scrapeAfterTasks runs tasks that make every operator metric appear, and scrapes the registry.
func scrapeAfterTasks(t *testing.T) map[string]map[string]bool {
	t.Helper()
	g := NewWithT(t)
	runMeasuredTasks(t)
	limited := runRateLimitedTasks(t)
	g.Eventually(func(g Gomega) {
		deferred, _ := sample(g, scrape(g), "asynctask_polls_deferred_total", with(limited, "reason", "RateLimit"))
		g.Expect(deferred).To(BeNumerically(">", 0))
	}, eventually, tick).Should(Succeed())
	return exportedNames(scrape(g))
}

// dashboard is the part of a Grafana dashboard the test reads.
type dashboard struct {
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name  string `json:"name"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	Type    string `json:"type"`
	Title   string `json:"title"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
	Panels []panel `json:"panels"`
}

// labelValuesQuery is a Grafana variable's label_values(selector, label).
var labelValuesQuery = regexp.MustCompile(`^label_values\((.+), *[a-zA-Z_]+\)$`)

// TestDashboardQueriesParseAndUseExportedMetrics parses config/monitoring/dashboard.json, checks each PromQL
// expression (panels and variables) with the Prometheus parser, and that every series and label it names is
// one the operator exports after real tasks ran.
func TestDashboardQueriesParseAndUseExportedMetrics(t *testing.T) {
	g := NewWithT(t)
	exported := scrapeAfterTasks(t)
	data, err := os.ReadFile(filepath.Join(monitoringDir, "dashboard.json"))
	g.Expect(err).NotTo(HaveOccurred())
	var d dashboard
	g.Expect(json.Unmarshal(data, &d)).To(Succeed())
	g.Expect(d.SchemaVersion).To(BeNumerically(">=", 39))

	var panels []panel
	for _, p := range d.Panels {
		panels = append(append(panels, p), p.Panels...)
	}
	titles := map[string]bool{}
	exprs := 0
	for _, p := range panels {
		titles[p.Title] = true
		if p.Type == "row" {
			continue
		}
		g.Expect(p.Targets).NotTo(BeEmpty(), "panel %q has no query", p.Title)
		for _, target := range p.Targets {
			checkExpression(g, "panel "+p.Title, grafanaVariables.Replace(target.Expr), exported)
			exprs++
		}
	}
	for _, v := range d.Templating.List {
		q, ok := v.Query.(map[string]any)
		if !ok {
			continue // the data source variable
		}
		m := labelValuesQuery.FindStringSubmatch(q["query"].(string))
		g.Expect(m).NotTo(BeNil(), "variable %s: %v", v.Name, q["query"])
		checkExpression(g, "variable "+v.Name, grafanaVariables.Replace(m[1]), exported)
	}
	g.Expect(exprs).To(BeNumerically(">=", 15))
	for _, want := range []string{"Tasks by phase", "Polls per second", "Poll error ratio", "Poll latency p50 / p99",
		"Detection latency p50 / p99", "Vendor logins per second", "Refused logins per second", "Rate-limit waits",
		"Deferred polls", "Workers busy", "Submissions by outcome", "Submit queue length", "Tasks waiting for a person",
		"Ring members", "Tasks owned per replica", "Backends owned per replica", "Task handovers per second"} {
		g.Expect(titles).To(HaveKey(want))
	}
}

// TestAlertsParseAndUseExportedMetrics checks each alert of config/monitoring/alerts.yaml with the Prometheus
// parser and against the metrics the operator exports, and that each has a runbook section in
// docs/operations.md that its runbook_url names. promtool tests what they fire on (make test-alerts).
func TestAlertsParseAndUseExportedMetrics(t *testing.T) {
	g := NewWithT(t)
	exported := scrapeAfterTasks(t)
	data, err := os.ReadFile(filepath.Join(monitoringDir, "alerts.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	var rule struct {
		Kind string `json:"kind"`
		Spec struct {
			Groups []struct {
				Rules []struct {
					Alert       string            `json:"alert"`
					Expr        string            `json:"expr"`
					Annotations map[string]string `json:"annotations"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"spec"`
	}
	g.Expect(yaml.Unmarshal(data, &rule)).To(Succeed())
	g.Expect(rule.Kind).To(Equal("PrometheusRule"))
	runbooks, err := os.ReadFile(filepath.Join("..", "..", "docs", "operations.md"))
	g.Expect(err).NotTo(HaveOccurred())
	alerts := 0
	for _, group := range rule.Spec.Groups {
		for _, r := range group.Rules {
			alerts++
			checkExpression(g, "alert "+r.Alert, r.Expr, exported)
			g.Expect(string(runbooks)).To(ContainSubstring("\n### "+r.Alert+"\n"), "no runbook section for %s", r.Alert)
			g.Expect(r.Annotations["runbook_url"]).To(HaveSuffix("docs/operations.md#" + strings.ToLower(r.Alert)))
		}
	}
	g.Expect(alerts).To(Equal(8))
}
