// What kstatus (and so Flux's `wait`/`healthChecks`) concludes from each sample Simulation and
// Scenario in config/gitops/argocd/.../testdata, read through the same path as the command
// (YAML -> JSON -> Decode -> Compute).
package kstatus

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

const samples = "../../../config/gitops/argocd/resource_customizations/rehearsal.dev"

type want struct {
	status  string
	message string // exact; empty means not checked
}

// Every Simulation sample must be listed here, so a new sample gets a kstatus expectation.
var simulationWants = map[string]want{
	"queued.yaml":       {"InProgress", "waiting for Simulation other-sim (created 2026-12-01T10:00:00Z) to finish"},
	"pending.yaml":      {"InProgress", "checking Scenario web-burst"},
	"initializing.yaml": {"InProgress", "run 1/2: starting driver Job cronjob-replay-run-0"},
	"running.yaml":      {"InProgress", "run 1/2: replaying, 37/120 events"},
	"cleaning-up.yaml":  {"InProgress", "run 1/1: deleting 22 pods and 2 deployments in web-burst"},

	// Ready=True, Reconciling and Stalled False: kstatus's last rule (checkReadyCondition).
	"succeeded.yaml":                      {"Current", "Resource is Ready"},
	"succeeded-without-runs-summary.yaml": {"Current", "Resource is Ready"},
	"suspended-after-success.yaml":        {"Current", "Resource is Ready"},

	"failed.yaml":                     {"Failed", "run 2/2 (Job cronjob-replay-run-1) failed: driver container OOMKilled during Replay (64/120 events)"},
	"stalled-scenario-not-found.yaml": {"Failed", "spec.source.scenarioRef.name: Scenario web-brust not found"},
	"stalled-secret-not-found.yaml":   {"Failed", "spec.artifacts.credentialsSecret.name: Secret rehearsal-system/evidence-writer not found"},

	"generation-ahead.yaml": {"InProgress", "Simulation generation is 3, but latest observed generation is 2"},
	"deleting.yaml":         {"Terminating", "Resource scheduled for deletion"},

	// kstatus has no notion of suspension: Ready=False reads as InProgress (with Ready's
	// message), so a Flux wait on a suspended Simulation lasts until its timeout.
	"suspended.yaml":                  {"InProgress", "suspended before run 2/3 (spec.suspend is true); set it to false to go on"},
	"suspended-before-first-run.yaml": {"InProgress", "suspended (spec.suspend is true): no run starts until it is false"},
	// The operator still reports the current run as Reconciling.
	"suspend-requested.yaml": {"InProgress", "run 1/3: driver Job cronjob-replay-run-0 running; suspended: no further run starts after this one"},

	// Before the operator writes observedGeneration and its conditions, kstatus sees nothing to
	// wait for: a brand-new Simulation is Current until the operator's first status write.
	"no-status.yaml":                 {"Current", "Resource is current"},
	"driver-only-status.yaml":        {"Current", "Resource is current"},
	"queued-without-conditions.yaml": {"Current", "Resource is current"},
}

// Samples kstatus cannot read at all: the command exits 2 on them.
var simulationUnreadable = map[string]string{
	"malformed-status.yaml":     "status.observedGeneration",
	"malformed-conditions.yaml": "",
	"status-not-object.yaml":    "status.observedGeneration",
}

// kstatus only knows Reconciling and Stalled: a Scenario's Valid condition means nothing to it.
var scenarioWants = map[string]want{
	"valid.yaml":            {"Current", "Resource is current"},
	"valid-one-step.yaml":   {"Current", "Resource is current"},
	"invalid.yaml":          {"Current", "Resource is current"},
	"valid-unknown.yaml":    {"Current", "Resource is current"},
	"no-status.yaml":        {"Current", "Resource is current"},
	"generation-ahead.yaml": {"InProgress", "Scenario generation is 3, but latest observed generation is 2"},
	"deleting.yaml":         {"Terminating", "Resource scheduled for deletion"},
}

var scenarioUnreadable = map[string]string{
	"malformed-status.yaml": "",
}

func sampleJSON(t *testing.T, path string) []byte {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	js, err := yaml.YAMLToJSON(raw)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return js
}

func checkKind(t *testing.T, kind string, wants map[string]want, unreadable map[string]string) {
	files, err := filepath.Glob(filepath.Join(samples, kind, "testdata", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no %s samples under %s: %v", kind, samples, err)
	}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(kind+"/"+name, func(t *testing.T) {
			line, err := Line(sampleJSON(t, f))
			if field, bad := unreadable[name]; bad {
				if err == nil {
					t.Fatalf("kstatus read %s as %q, want an error", name, line)
				}
				if !strings.Contains(err.Error(), "kstatus cannot read the status of "+kind) || !strings.Contains(err.Error(), field) {
					t.Errorf("error %q does not name the %s and the field %q", err, kind, field)
				}
				return
			}
			w, ok := wants[name]
			if !ok {
				t.Fatalf("%s has no kstatus expectation in kstatus_test.go", name)
			}
			if err != nil {
				t.Fatal(err)
			}
			status, message, _ := strings.Cut(line, ": ")
			if status != w.status {
				t.Errorf("kstatus %s, want %s (line %q)", status, w.status, line)
			}
			if w.message != "" && message != w.message {
				t.Errorf("message %q, want %q", message, w.message)
			}
		})
	}
	for name := range wants {
		if _, err := os.Stat(filepath.Join(samples, kind, "testdata", name)); err != nil {
			t.Errorf("expectation for %s/%s, but no such sample", kind, name)
		}
	}
}

func TestSimulationKstatus(t *testing.T) {
	checkKind(t, "Simulation", simulationWants, simulationUnreadable)
}

func TestScenarioKstatus(t *testing.T) {
	checkKind(t, "Scenario", scenarioWants, scenarioUnreadable)
}

// TestDecodeRejects: input that is not one object is refused with a message saying what to pass.
func TestDecodeRejects(t *testing.T) {
	cases := map[string]struct{ input, says string }{
		"empty":        {"  \n", "no input"},
		"yaml":         {"apiVersion: rehearsal.dev/v1alpha1\nkind: Simulation\n", "not a JSON object"},
		"array":        {`[{"kind":"Simulation"}]`, "not a JSON object"},
		"truncated":    {`{"apiVersion":"rehearsal.dev/v1alpha1","kind":"Simulation"`, "not one JSON object"},
		"two objects":  {`{"apiVersion":"v1","kind":"Pod"} {"apiVersion":"v1","kind":"Pod"}`, "not one JSON object"},
		"no kind":      {`{"metadata":{"name":"x"}}`, "no kind and apiVersion"},
		"list":         {`{"apiVersion":"v1","kind":"List","items":[]}`, "is a List, not one object"},
		"typed list":   {`{"apiVersion":"rehearsal.dev/v1alpha1","kind":"SimulationList","items":[]}`, "is a SimulationList"},
		"string value": {`"Simulation"`, "not a JSON object"},
	}
	for name, c := range cases {
		if _, err := Decode([]byte(c.input)); err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s: error %v, want one saying %q", name, err, c.says)
		}
	}
}

// TestLineIsOneLine: a multi-line condition message is printed on one line.
func TestLineIsOneLine(t *testing.T) {
	in := `{"apiVersion":"rehearsal.dev/v1alpha1","kind":"Simulation","metadata":{"name":"s","generation":1},
	"status":{"observedGeneration":1,"conditions":[{"type":"Stalled","status":"True","reason":"InvalidSpec","message":"two\nlines"}]}}`
	line, err := Line([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if line != "Failed: two lines" {
		t.Errorf("got %q", line)
	}
}
