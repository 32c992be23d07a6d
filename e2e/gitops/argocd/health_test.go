// Runs every health_test.yaml case under config/gitops/argocd/resource_customizations through
// gopher-lua as Argo CD does, in both ways Argo CD loads a script, and checks that the scripts
// never raise an error on malformed objects.
package argocd

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/yaml"
)

const customizationsRoot = "../../../config/gitops/argocd/resource_customizations"

func loadAll(t *testing.T) []Customization {
	t.Helper()
	all, err := LoadCustomizations(customizationsRoot)
	if err != nil {
		t.Fatal(err)
	}
	return all
}

// asFromAPIServer re-decodes a sample the way a live object reaches Argo CD (JSON from the API
// server into unstructured: whole numbers are int64, not float64).
func asFromAPIServer(t *testing.T, obj map[string]any) map[string]any {
	t.Helper()
	raw, err := yaml.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	js, err := yaml.YAMLToJSON(raw)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]any{}
	if err := utiljson.Unmarshal(js, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestHealthCases: each case gives the expected {status, message}, both as Argo CD's own test
// harness runs a built-in script (all libraries, numbers from YAML) and as Argo CD runs a script
// from argocd-cm (no useOpenLibs: base, table and package only; numbers from the API server).
func TestHealthCases(t *testing.T) {
	for _, c := range loadAll(t) {
		for _, tc := range c.Cases {
			obj, err := LoadObject(filepath.Join(c.Dir, tc.InputPath))
			if err != nil {
				t.Errorf("%s/%s: %v", c.Kind, tc.InputPath, err)
				continue
			}
			modes := []struct {
				name     string
				obj      map[string]any
				openLibs bool
			}{
				{"builtin", obj, true},
				{"argocd-cm", asFromAPIServer(t, obj), false},
			}
			for _, m := range modes {
				t.Run(c.Kind+"/"+tc.InputPath+"/"+m.name, func(t *testing.T) {
					got, err := ExecuteHealth(m.obj, c.Script, m.openLibs)
					if err != nil {
						t.Fatalf("%s/health.lua on %s: %v", c.Kind, tc.InputPath, err)
					}
					if *got != tc.HealthStatus {
						t.Errorf("%s/health.lua on %s:\n got  %s: %q\n want %s: %q",
							c.Kind, tc.InputPath, got.Status, got.Message, tc.HealthStatus.Status, tc.HealthStatus.Message)
					}
				})
			}
		}
	}
}

// TestSamplesAreCoveredAndMatchTheirKind: every file in a testdata folder is used by a case, every
// case's file exists, and each sample is a full object of that folder's group and kind.
func TestSamplesAreCoveredAndMatchTheirKind(t *testing.T) {
	for _, c := range loadAll(t) {
		used := map[string]bool{}
		for _, tc := range c.Cases {
			used[filepath.Clean(tc.InputPath)] = true
			obj, err := LoadObject(filepath.Join(c.Dir, tc.InputPath))
			if err != nil {
				t.Errorf("%s: case %s: %v", c.Kind, tc.InputPath, err)
				continue
			}
			if api, _ := obj["apiVersion"].(string); !strings.HasPrefix(api, c.Group+"/") {
				t.Errorf("%s/%s: apiVersion %q is not in group %s", c.Kind, tc.InputPath, api, c.Group)
			}
			if kind, _ := obj["kind"].(string); kind != c.Kind {
				t.Errorf("%s/%s: kind %q, want %s", c.Kind, tc.InputPath, kind, c.Kind)
			}
			meta, _ := obj["metadata"].(map[string]any)
			if _, ok := meta["generation"].(float64); !ok {
				t.Errorf("%s/%s: metadata.generation missing (a live object always has one)", c.Kind, tc.InputPath)
			}
		}
		files, _ := filepath.Glob(filepath.Join(c.Dir, "testdata", "*"))
		for _, f := range files {
			rel, _ := filepath.Rel(c.Dir, f)
			if !used[rel] {
				t.Errorf("%s: %s is not used by any case in health_test.yaml", c.Kind, rel)
			}
		}
	}
}

// TestEveryHealthIsExercised: each script's cases reach every health it can give, so a rule that
// no sample reaches is noticed.
func TestEveryHealthIsExercised(t *testing.T) {
	want := map[string][]string{
		"Simulation": {"Degraded", "Healthy", "Progressing", "Suspended"},
		"Scenario":   {"Degraded", "Healthy", "Progressing"},
	}
	for _, c := range loadAll(t) {
		seen := map[string]bool{}
		for _, tc := range c.Cases {
			seen[tc.HealthStatus.Status] = true
		}
		var got []string
		for s := range seen {
			got = append(got, s)
		}
		sort.Strings(got)
		if fmt.Sprint(got) != fmt.Sprint(want[c.Kind]) {
			t.Errorf("%s: cases expect %v, want exactly %v", c.Kind, got, want[c.Kind])
		}
	}
}

// hostile values put in place of each field a script reads.
var hostile = []any{nil, true, 7, "x", []any{}, []any{"Ready", 3, nil}, map[string]any{}}

// paths a script reads; a path ending in "0" is the first element of a list.
var readPaths = [][]string{
	{"metadata"}, {"metadata", "generation"}, {"metadata", "deletionTimestamp"}, {"spec"}, {"spec", "suspend"},
	{"status"}, {"status", "observedGeneration"}, {"status", "phase"}, {"status", "runsSummary"},
	{"status", "steps"}, {"status", "expectedDuration"}, {"status", "conditions"},
	{"status", "conditions", "0"}, {"status", "conditions", "0", "type"}, {"status", "conditions", "0", "status"},
	{"status", "conditions", "0", "message"}, {"status", "conditions", "0", "reason"},
}

// TestScriptsNeverRaise: every sample, with each field a script reads replaced by each kind of
// wrong value, still gives a valid health (never a Lua error, never Unknown).
func TestScriptsNeverRaise(t *testing.T) {
	runs := 0
	for _, c := range loadAll(t) {
		for _, tc := range c.Cases {
			for _, path := range readPaths {
				for _, v := range hostile {
					obj, err := LoadObject(filepath.Join(c.Dir, tc.InputPath))
					if err != nil {
						t.Fatal(err)
					}
					if !setPath(obj, path, v) {
						continue
					}
					runs++
					got, err := ExecuteHealth(obj, c.Script, false)
					if err != nil {
						t.Errorf("%s/%s with %v = %#v: %v", c.Kind, tc.InputPath, path, v, err)
						continue
					}
					if !validStatuses[got.Status] || got.Status == "Unknown" || got.Message == "" {
						t.Errorf("%s/%s with %v = %#v: got %+v", c.Kind, tc.InputPath, path, v, got)
					}
				}
			}
		}
	}
	t.Logf("%d mutated objects checked", runs)
	if runs < 500 {
		t.Errorf("only %d mutated objects were checked; the samples lost the fields the scripts read", runs)
	}
}

// TestUnknownStatusIsReportedAsArgoCDDoes: a script returning a status Argo CD does not know gives
// Unknown with Argo CD's message (this checks the harness, not the scripts).
func TestUnknownStatusIsReportedAsArgoCDDoes(t *testing.T) {
	got, err := ExecuteHealth(map[string]any{}, `return {status = "Fine", message = "m"}`, false)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != "Unknown" || got.Message != InvalidHealthStatus {
		t.Errorf("got %+v, want Unknown: %s", got, InvalidHealthStatus)
	}
	if _, err := ExecuteHealth(map[string]any{}, `return string.format("%d", 1)`, false); err == nil {
		t.Error("the string library must be closed without useOpenLibs, as in Argo CD")
	}
}

// setPath replaces the value at path (creating nothing but the last key); false when the path's
// parent is absent from this sample.
func setPath(obj map[string]any, path []string, v any) bool {
	var cur any = obj
	for i, key := range path {
		last := i == len(path)-1
		switch node := cur.(type) {
		case map[string]any:
			if last {
				node[key] = v
				return true
			}
			cur = node[key]
		case []any:
			if key != "0" || len(node) == 0 {
				return false
			}
			if last {
				node[0] = v
				return true
			}
			cur = node[0]
		default:
			return false
		}
	}
	return false
}

func TestMain(m *testing.M) {
	if _, err := os.Stat(customizationsRoot); err != nil {
		fmt.Fprintf(os.Stderr, "argocd tests: %s not found (run from e2e/gitops/argocd): %v\n", customizationsRoot, err)
		os.Exit(2)
	}
	os.Exit(m.Run())
}
