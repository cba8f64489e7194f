// promql-check reads Herald's monitoring artefacts with Prometheus's own code
// (github.com/prometheus/prometheus, the version promtool is built from), for the
// checks `make test` runs:
//
//	promql-check rules < prometheusrule.yaml > rules.yaml
//	    the spec.groups of a rendered PrometheusRule as a Prometheus rule file, for
//	    `promtool check rules` and `promtool test rules`;
//	promql-check dashboard < configmap.yaml
//	    every panel target's expr of each Grafana dashboard JSON in a rendered
//	    ConfigMap, parsed by promql/parser (promtool cannot parse bare expressions);
//	    exit 1 naming the panel of any that does not parse.
//
// Exit 2 on unreadable input.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v2"
)

func fail(code int, format string, args ...any) {
	fmt.Fprintf(os.Stderr, "promql-check: "+format+"\n", args...)
	os.Exit(code)
}

func rules(in []byte) {
	var pr struct {
		Kind string `yaml:"kind"`
		Spec struct {
			Groups []yaml.MapSlice `yaml:"groups"`
		} `yaml:"spec"`
	}
	if err := yaml.Unmarshal(in, &pr); err != nil {
		fail(2, "stdin: %v", err)
	}
	if pr.Kind != "PrometheusRule" || len(pr.Spec.Groups) == 0 {
		fail(2, "stdin is not a PrometheusRule with spec.groups (kind %q)", pr.Kind)
	}
	out, err := yaml.Marshal(map[string]any{"groups": pr.Spec.Groups})
	if err != nil {
		fail(2, "%v", err)
	}
	os.Stdout.Write(out)
}

type panel struct {
	Title   string  `json:"title"`
	Panels  []panel `json:"panels"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
}

// The parser with promtool's default options (no experimental functions), as a
// Prometheus server without feature flags parses queries.
var promql = parser.NewParser(parser.Options{})

func walk(p panel, dashboard string, count *int, bad *[]string) {
	for _, t := range p.Targets {
		*count++
		if strings.TrimSpace(t.Expr) == "" {
			*bad = append(*bad, fmt.Sprintf("%s / %q: empty expr", dashboard, p.Title))
			continue
		}
		if _, err := promql.ParseExpr(t.Expr); err != nil {
			*bad = append(*bad, fmt.Sprintf("%s / %q: %v", dashboard, p.Title, err))
		}
	}
	for _, c := range p.Panels {
		walk(c, dashboard, count, bad)
	}
}

func dashboard(in []byte) {
	var cm struct {
		Kind string            `yaml:"kind"`
		Data map[string]string `yaml:"data"`
	}
	if err := yaml.Unmarshal(in, &cm); err != nil {
		fail(2, "stdin: %v", err)
	}
	if cm.Kind != "ConfigMap" || len(cm.Data) == 0 {
		fail(2, "stdin is not a ConfigMap with data (kind %q)", cm.Kind)
	}
	count, bad := 0, []string{}
	for name, text := range cm.Data {
		var d panel
		if err := json.Unmarshal([]byte(text), &d); err != nil {
			fail(1, "%s: not JSON: %v", name, err)
		}
		walk(d, name, &count, &bad)
	}
	if len(bad) > 0 {
		fail(1, "queries that do not parse:\n  %s", strings.Join(bad, "\n  "))
	}
	if count == 0 {
		fail(1, "no panel queries found")
	}
	fmt.Printf("%d dashboard queries parse\n", count)
}

func main() {
	if len(os.Args) != 2 {
		fail(2, "usage: promql-check rules|dashboard < file.yaml")
	}
	in, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail(2, "read stdin: %v", err)
	}
	switch os.Args[1] {
	case "rules":
		rules(in)
	case "dashboard":
		dashboard(in)
	default:
		fail(2, "unknown mode %q", os.Args[1])
	}
}
