// The command's contract: one line and exit 0 for an object, a message on stderr and exit 2
// otherwise.
package main

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

const sample = "../../../../config/gitops/argocd/resource_customizations/rehearsal.dev/Simulation/testdata/"

func runWith(t *testing.T, args []string, stdin []byte) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(args, bytes.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

func sampleJSON(t *testing.T, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(sample + name)
	if err != nil {
		t.Fatal(err)
	}
	js, err := yaml.YAMLToJSON(raw)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func TestPrintsOneLine(t *testing.T) {
	cases := map[string]string{
		"running.yaml":                    "InProgress: run 1/2: replaying, 37/120 events\n",
		"succeeded.yaml":                  "Current: Resource is Ready\n",
		"stalled-scenario-not-found.yaml": "Failed: spec.source.scenarioRef.name: Scenario web-brust not found\n",
		"deleting.yaml":                   "Terminating: Resource scheduled for deletion\n",
	}
	for name, want := range cases {
		code, out, errOut := runWith(t, nil, sampleJSON(t, name))
		if code != 0 || out != want || errOut != "" {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit 0, stdout %q", name, code, out, errOut, want)
		}
	}
}

func TestBadInputExits2(t *testing.T) {
	cases := map[string]struct {
		args  []string
		stdin []byte
		says  string
	}{
		"empty stdin":       {nil, nil, "no input"},
		"yaml":              {nil, []byte("kind: Simulation\n"), "not a JSON object"},
		"list":              {nil, []byte(`{"apiVersion":"v1","kind":"List","items":[]}`), "not one object"},
		"unreadable status": {nil, sampleJSON(t, "malformed-conditions.yaml"), "kstatus cannot read the status of Simulation broken-conditions"},
		"argument":          {[]string{"my-sim"}, nil, `unexpected argument "my-sim"`},
	}
	for name, c := range cases {
		code, out, errOut := runWith(t, c.args, c.stdin)
		if code != 2 || out != "" || !strings.HasPrefix(errOut, "kstatus: ") || !strings.Contains(errOut, c.says) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit 2 and stderr saying %q", name, code, out, errOut, c.says)
		}
	}
}

func TestTooMuchInput(t *testing.T) {
	big := append([]byte(`{"kind":"x","pad":"`), bytes.Repeat([]byte("a"), maxInput)...)
	code, _, errOut := runWith(t, nil, big)
	if code != 2 || !strings.Contains(errOut, "more than 32 MiB") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}

func TestHelp(t *testing.T) {
	code, out, _ := runWith(t, []string{"--help"}, nil)
	if code != 0 || !strings.HasPrefix(out, "usage:") {
		t.Errorf("exit %d, stdout %q", code, out)
	}
}
