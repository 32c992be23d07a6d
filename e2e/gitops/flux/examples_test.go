// Checks the example Flux Kustomizations in config/gitops/flux: only fields of
// kustomize.toolkit.fluxcd.io/v1 that the examples mean to show (a misspelt field fails), one
// example waiting on everything with a timeout, one naming a Simulation in healthChecks.
package flux

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

const examples = "../../../config/gitops/flux"

type kustomization struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
	Spec struct {
		DependsOn     []struct{ Name string } `json:"dependsOn"`
		Interval      string                  `json:"interval"`
		RetryInterval string                  `json:"retryInterval"`
		SourceRef     struct {
			Kind string `json:"kind"`
			Name string `json:"name"`
		} `json:"sourceRef"`
		Path         string `json:"path"`
		Prune        bool   `json:"prune"`
		Wait         bool   `json:"wait"`
		Timeout      string `json:"timeout"`
		HealthChecks []struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Name       string `json:"name"`
			Namespace  string `json:"namespace"`
		} `json:"healthChecks"`
	} `json:"spec"`
}

func load(t *testing.T, name string) kustomization {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(examples, name))
	if err != nil {
		t.Fatal(err)
	}
	var k kustomization
	if err := yaml.UnmarshalStrict(raw, &k); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if k.APIVersion != "kustomize.toolkit.fluxcd.io/v1" || k.Kind != "Kustomization" {
		t.Errorf("%s: %s %s, want kustomize.toolkit.fluxcd.io/v1 Kustomization", name, k.APIVersion, k.Kind)
	}
	for field, d := range map[string]string{"interval": k.Spec.Interval, "timeout": k.Spec.Timeout} {
		if _, err := time.ParseDuration(d); err != nil {
			t.Errorf("%s: spec.%s %q is not a duration: %v", name, field, d, err)
		}
	}
	if k.Spec.Path == "" || k.Spec.SourceRef.Name == "" {
		t.Errorf("%s: spec.path and spec.sourceRef are required", name)
	}
	return k
}

func TestWaitExample(t *testing.T) {
	k := load(t, "kustomization-wait.yaml")
	if !k.Spec.Wait || k.Spec.Timeout == "" || len(k.Spec.HealthChecks) != 0 {
		t.Errorf("want wait: true, a timeout and no healthChecks (ignored under wait); got wait %v, timeout %q, %d healthChecks",
			k.Spec.Wait, k.Spec.Timeout, len(k.Spec.HealthChecks))
	}
}

func TestHealthChecksExample(t *testing.T) {
	k := load(t, "kustomization-healthchecks.yaml")
	if k.Spec.Wait {
		t.Error("wait: true would make Flux ignore healthChecks")
	}
	if len(k.Spec.HealthChecks) != 1 {
		t.Fatalf("want one health check, got %d", len(k.Spec.HealthChecks))
	}
	hc := k.Spec.HealthChecks[0]
	if hc.APIVersion != "rehearsal.dev/v1alpha1" || hc.Kind != "Simulation" || hc.Name == "" || hc.Namespace != "" {
		t.Errorf("health check %+v: want a rehearsal.dev/v1alpha1 Simulation by name, without namespace (cluster-scoped)", hc)
	}
}
