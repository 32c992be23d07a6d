// Reading Argo CD's built-in layout: resource_customizations/<group>/<Kind>/health.lua next to
// a health_test.yaml whose cases name sample objects (inputPath) and the expected health.
package argocd

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"sigs.k8s.io/yaml"
)

// Customization is one <group>/<Kind> folder holding a health script and its cases.
type Customization struct {
	Group, Kind string
	Dir         string // the folder
	Script      string // health.lua
	Cases       []Case
}

// Case is one entry of health_test.yaml.
type Case struct {
	InputPath    string       `json:"inputPath"`
	HealthStatus HealthStatus `json:"healthStatus"`
}

// ConfigMapKey is the argocd-cm key of this customization's health script.
func (c Customization) ConfigMapKey() string {
	return "resource.customizations.health." + c.Group + "_" + c.Kind
}

// LoadCustomizations reads every <group>/<Kind>/health.lua under root with its health_test.yaml,
// sorted by group then kind. A folder with a script but no cases is an error.
func LoadCustomizations(root string) ([]Customization, error) {
	scripts, err := filepath.Glob(filepath.Join(root, "*", "*", "health.lua"))
	if err != nil {
		return nil, err
	}
	if len(scripts) == 0 {
		return nil, fmt.Errorf("no <group>/<Kind>/health.lua under %s", root)
	}
	sort.Strings(scripts)
	var out []Customization
	for _, script := range scripts {
		dir := filepath.Dir(script)
		c := Customization{Group: filepath.Base(filepath.Dir(dir)), Kind: filepath.Base(dir), Dir: dir}
		body, err := os.ReadFile(script)
		if err != nil {
			return nil, err
		}
		c.Script = string(body)
		testFile := filepath.Join(dir, "health_test.yaml")
		raw, err := os.ReadFile(testFile)
		if err != nil {
			return nil, fmt.Errorf("%s has no cases: %w", script, err)
		}
		var parsed struct {
			Tests []Case `json:"tests"`
		}
		if err := yaml.UnmarshalStrict(raw, &parsed); err != nil {
			return nil, fmt.Errorf("%s: %w", testFile, err)
		}
		if len(parsed.Tests) == 0 {
			return nil, fmt.Errorf("%s: no tests listed", testFile)
		}
		c.Cases = parsed.Tests
		out = append(out, c)
	}
	return out, nil
}

// LoadObject reads a sample object the way Argo CD's test harness does (sigs.k8s.io/yaml into a
// map, so numbers are float64).
func LoadObject(path string) (map[string]any, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	obj := map[string]any{}
	if err := yaml.Unmarshal(raw, &obj); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return obj, nil
}
