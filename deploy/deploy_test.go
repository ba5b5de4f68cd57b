// Package deploy_test checks the operations files shipped in deploy/ and
// docs/runbook.md against each other and against the code: every alert is
// complete and links to a runbook section, the Grafana dashboard is valid,
// and every metric they name is one the code defines.
package deploy_test

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

const (
	alertsFile    = "prometheus/alerts.yml"
	dashboardFile = "grafana/contrail.json"
	runbookFile   = "../docs/runbook.md"
	runbookURL    = "docs/runbook.md#"
	sourceDir     = "../internal"
)

// ruleFile is the part of a Prometheus rule file the checks read.
type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []rule `yaml:"rules"`
	} `yaml:"groups"`
}

type rule struct {
	Alert       string            `yaml:"alert"`
	Record      string            `yaml:"record"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(b)
}

func loadRules(t testing.TB) []rule {
	t.Helper()
	var f ruleFile
	dec := yaml.NewDecoder(strings.NewReader(readFile(t, alertsFile)))
	dec.KnownFields(true)
	require.NoError(t, dec.Decode(&f), "parsing %s", alertsFile)
	require.NotEmpty(t, f.Groups, "%s has no groups", alertsFile)
	var rules []rule
	for _, g := range f.Groups {
		require.NotEmpty(t, g.Name, "a group of %s has no name", alertsFile)
		require.NotEmpty(t, g.Rules, "group %s has no rules", g.Name)
		rules = append(rules, g.Rules...)
	}
	return rules
}

func TestAlertRules(t *testing.T) {
	t.Parallel()
	anchors := runbookAnchors(t, readFile(t, runbookFile))
	seen := map[string]bool{}
	for _, r := range loadRules(t) {
		require.Empty(t, r.Record, "recording rule %s: this file holds alerts only", r.Record)
		require.NotEmpty(t, r.Alert, "a rule has no alert name")
		t.Run(r.Alert, func(t *testing.T) {
			require.False(t, seen[r.Alert], "alert defined twice")
			seen[r.Alert] = true
			require.NotEmpty(t, strings.TrimSpace(r.Expr), "expr")
			require.NotEmpty(t, r.For, "for")
			_, err := model.ParseDuration(r.For)
			require.NoError(t, err, "for")
			require.Contains(t, []string{"critical", "warning", "info"}, r.Labels["severity"], "labels.severity")
			require.NotEmpty(t, r.Annotations["summary"], "annotations.summary")
			require.NotEmpty(t, r.Annotations["description"], "annotations.description")
			url := r.Annotations["runbook_url"]
			anchor, ok := strings.CutPrefix(url, runbookURL)
			require.True(t, ok, "runbook_url %q must start with %q", url, runbookURL)
			_, ok = anchors[anchor]
			require.True(t, ok, "runbook_url %q: %s has no heading with that anchor", url, runbookFile)
		})
	}
	// Every section of the runbook named like an alert belongs to one.
	for _, heading := range anchors {
		if alertName.MatchString(heading) {
			require.True(t, seen[heading], "%s has a section %q for no alert of %s", runbookFile, heading, alertsFile)
		}
	}
}

// alertName matches the name of one of our alerts.
var alertName = regexp.MustCompile(`^Contrail[A-Z][A-Za-z0-9]*$`)

// runbookAnchors returns the anchors GitHub makes for the headings of a
// Markdown document, each with its heading's text.
func runbookAnchors(t testing.TB, md string) map[string]string {
	t.Helper()
	anchors := map[string]string{}
	count := map[string]int{}
	fenced := false
	for line := range strings.Lines(md) {
		line = strings.TrimRight(line, "\r\n")
		if strings.HasPrefix(line, "```") {
			fenced = !fenced
			continue
		}
		text, ok := strings.CutPrefix(line, "#")
		if fenced || !ok {
			continue
		}
		text = strings.TrimLeft(text, "#")
		if !strings.HasPrefix(text, " ") {
			continue // "#tag", not a heading
		}
		text = strings.TrimSpace(text)
		a := githubAnchor(text)
		if n := count[a]; n > 0 {
			count[a]++
			a += "-" + strconv.Itoa(n)
		} else {
			count[a] = 1
		}
		anchors[a] = text
	}
	require.NotEmpty(t, anchors, "no headings")
	return anchors
}

// githubAnchor is GitHub's heading slug: lower case, spaces to hyphens,
// and every other character but letters, digits, '-' and '_' dropped.
func githubAnchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r > 0x7f && isLetter(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

func isLetter(r rune) bool { return strings.ToUpper(string(r)) != strings.ToLower(string(r)) }

func TestGithubAnchor(t *testing.T) {
	t.Parallel()
	f := func(heading, want string) {
		t.Helper()
		require.Equal(t, want, githubAnchor(heading))
	}
	f("ContrailShardLagHigh", "contrailshardlaghigh")
	f(" Tools ", "tools")
	f("Lag (messages) per partition", "lag-messages-per-partition")
	f("dead_total & `DEAD`", "dead_total--dead")
}

// dashboard is the part of a Grafana dashboard the checks read.
type dashboard struct {
	Title         string  `json:"title"`
	UID           string  `json:"uid"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name       string `json:"name"`
			Type       string `json:"type"`
			Multi      bool   `json:"multi"`
			Definition string `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int                 `json:"id"`
	Type       string              `json:"type"`
	Title      string              `json:"title"`
	GridPos    *struct{ W, H int } `json:"gridPos"`
	Datasource json.RawMessage     `json:"datasource"`
	Panels     []panel             `json:"panels"` // of a collapsed row
	Targets    []struct {
		Expr  string `json:"expr"`
		RefID string `json:"refId"`
	} `json:"targets"`
}

func TestDashboard(t *testing.T) {
	t.Parallel()
	var d dashboard
	require.NoError(t, json.Unmarshal([]byte(readFile(t, dashboardFile)), &d), "parsing %s", dashboardFile)
	require.NotEmpty(t, d.Title)
	require.NotEmpty(t, d.UID)
	require.GreaterOrEqual(t, d.SchemaVersion, 36)

	vars := map[string]int{}
	for i, v := range d.Templating.List {
		vars[v.Name] = i
	}
	require.Contains(t, vars, "datasource", "a datasource variable lets the dashboard run on any Prometheus")
	require.Contains(t, vars, "tenant")
	tenant := d.Templating.List[vars["tenant"]]
	require.True(t, tenant.Multi, "tenant variable is multi-select")
	require.Contains(t, tenant.Definition, "label_values(contrail_collect_events_accepted_total, tenant)")

	var all []panel
	for _, p := range d.Panels {
		all = append(all, p)
		all = append(all, p.Panels...)
	}
	ids := map[int]bool{}
	rows, graphs := 0, 0
	for _, p := range all {
		require.NotZero(t, p.ID, "panel %q has no id", p.Title)
		require.False(t, ids[p.ID], "panel id %d used twice", p.ID)
		ids[p.ID] = true
		require.NotEmpty(t, p.Title, "panel %d has no title", p.ID)
		require.NotNil(t, p.GridPos, "panel %q has no gridPos", p.Title)
		if p.Type == "row" {
			rows++
			continue
		}
		graphs++
		require.Contains(t, string(p.Datasource), "${datasource}", "panel %q uses the datasource variable", p.Title)
		require.NotEmpty(t, p.Targets, "panel %q has no targets", p.Title)
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			require.NotEmpty(t, strings.TrimSpace(tg.Expr), "panel %q has a target without expr", p.Title)
			require.NotEmpty(t, tg.RefID, "panel %q has a target without refId", p.Title)
			require.False(t, refs[tg.RefID], "panel %q repeats refId %s", p.Title, tg.RefID)
			refs[tg.RefID] = true
		}
	}
	require.GreaterOrEqual(t, rows, 4, "rows Overview, Lag, Campaigns, Health")
	require.NotZero(t, graphs)
}

var (
	// metricRef matches a metric name of Contrail in PromQL or prose.
	metricRef = regexp.MustCompile(`\bcontrail_[a-z0-9_]*[a-z0-9]\b`)
	// metricName is a string literal that is a whole metric name.
	metricName = regexp.MustCompile(`^contrail_[a-z0-9_]*[a-z0-9]$`)
	// snakeCase is a string literal that may end a prefixed metric name.
	snakeCase = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
)

// TestMetricsExist checks that every contrail_* name in the alerts, the
// dashboard and the runbook is defined by the code, so a renamed metric
// cannot silently blank a panel or disarm an alert.
func TestMetricsExist(t *testing.T) {
	t.Parallel()
	defined := definedMetrics(t, sourceDir)
	missing := map[string][]string{} // file: names
	for _, file := range []string{alertsFile, dashboardFile, runbookFile} {
		for _, name := range metricRef.FindAllString(readFile(t, file), -1) {
			if !isDefined(defined, name) && !slices.Contains(missing[file], name) {
				missing[file] = append(missing[file], name)
			}
		}
		slices.Sort(missing[file])
	}
	require.Empty(t, missing, "metrics named here that no file under %s defines", sourceDir)
}

// isDefined reports whether name is a defined metric, or one of the series
// of a histogram or summary that is.
func isDefined(defined map[string]bool, name string) bool {
	if defined[name] {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && defined[base] {
			return true
		}
	}
	return false
}

// definedMetrics returns the contrail_* string literals of the non-test Go
// files under dir that use the Prometheus client library, where metrics
// are defined. A literal prefix joined to a name ("contrail_visitor_" +
// name) is completed with every snake_case literal of the same file.
func definedMetrics(t testing.TB, dir string) map[string]bool {
	t.Helper()
	const client = `"github.com/prometheus/client_golang/prometheus"`
	defined := map[string]bool{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(f.Imports, func(s *ast.ImportSpec) bool { return s.Path.Value == client }) {
			return nil
		}
		var literals, prefixes []string
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.BasicLit:
				if s, err := strconv.Unquote(n.Value); err == nil && n.Kind == token.STRING {
					literals = append(literals, s)
				}
			case *ast.BinaryExpr:
				if lit, ok := n.X.(*ast.BasicLit); ok && n.Op == token.ADD && lit.Kind == token.STRING {
					if s, err := strconv.Unquote(lit.Value); err == nil && strings.HasPrefix(s, "contrail_") {
						prefixes = append(prefixes, s)
					}
				}
			}
			return true
		})
		for _, s := range literals {
			if metricName.MatchString(s) {
				defined[s] = true
			}
		}
		for _, p := range prefixes {
			for _, s := range literals {
				if snakeCase.MatchString(s) {
					defined[p+s] = true
				}
			}
		}
		return nil
	})
	require.NoError(t, err)
	require.NotEmpty(t, defined, "no metrics found under %s", dir)
	return defined
}

func TestDefinedMetrics(t *testing.T) {
	t.Parallel()
	defined := definedMetrics(t, sourceDir)
	for _, name := range []string{
		"contrail_collect_events_accepted_total",
		"contrail_shard_lag_messages",
		"contrail_visitor_sessions_total", // built from a prefix
	} {
		require.True(t, defined[name], name)
	}
	require.True(t, isDefined(defined, "contrail_shard_ingest_to_processed_seconds_bucket"))
	require.False(t, isDefined(defined, "contrail_no_such_metric_total"))
}
