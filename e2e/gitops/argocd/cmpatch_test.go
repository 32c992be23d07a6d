// Checks config/gitops/argocd/argocd-cm-patch.yaml against the health.lua files it copies: the
// .lua files are the single source, and this test fails while an inlined copy differs. With
// UPDATE_ARGOCD_CM=1 it first rewrites the inlined copies from the .lua files.
package argocd

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

const cmPatchPath = "../../../config/gitops/argocd/argocd-cm-patch.yaml"

const caBundleKey = "resource.customizations.ignoreDifferences.admissionregistration.k8s.io_MutatingWebhookConfiguration"

type configMap struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string            `json:"name"`
		Namespace string            `json:"namespace"`
		Labels    map[string]string `json:"labels"`
	} `json:"metadata"`
	Data map[string]string `json:"data"`
}

func TestArgoCMPatch(t *testing.T) {
	all := loadAll(t)
	if os.Getenv("UPDATE_ARGOCD_CM") == "1" {
		if err := rewriteInlinedScripts(cmPatchPath, all); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := os.ReadFile(cmPatchPath)
	if err != nil {
		t.Fatal(err)
	}
	var cm configMap
	if err := yaml.UnmarshalStrict(raw, &cm); err != nil {
		t.Fatalf("%s: %v", cmPatchPath, err)
	}
	if cm.APIVersion != "v1" || cm.Kind != "ConfigMap" || cm.Metadata.Name != "argocd-cm" || cm.Metadata.Namespace != "argocd" {
		t.Errorf("%s patches %s %s/%s, want v1 ConfigMap argocd/argocd-cm", cmPatchPath, cm.APIVersion+" "+cm.Kind, cm.Metadata.Namespace, cm.Metadata.Name)
	}
	if cm.Metadata.Labels["app.kubernetes.io/part-of"] != "argocd" {
		t.Errorf("%s: label app.kubernetes.io/part-of=argocd missing (Argo CD only reads a labelled argocd-cm)", cmPatchPath)
	}

	want := map[string]bool{}
	for _, c := range all {
		key := c.ConfigMapKey()
		want[key] = true
		got, ok := cm.Data[key]
		if !ok {
			t.Errorf("%s: data has no %s (the copy of %s/health.lua)", cmPatchPath, key, c.Kind)
			continue
		}
		if got != c.Script {
			t.Errorf("%s: %s differs from %s/health.lua %s; run UPDATE_ARGOCD_CM=1 e2e/gitops/test.sh",
				cmPatchPath, key, c.Kind, firstDifference(c.Script, got))
		}
	}
	for key := range cm.Data {
		if strings.HasPrefix(key, "resource.customizations.health.") && !want[key] {
			t.Errorf("%s: %s has no health.lua under resource_customizations", cmPatchPath, key)
		}
	}

	var ignore struct {
		JQPathExpressions []string `json:"jqPathExpressions"`
	}
	if err := yaml.UnmarshalStrict([]byte(cm.Data[caBundleKey]), &ignore); err != nil {
		t.Errorf("%s: %s: %v", cmPatchPath, caBundleKey, err)
	}
	if fmt.Sprint(ignore.JQPathExpressions) != "[.webhooks[]?.clientConfig.caBundle]" {
		t.Errorf("%s: %s ignores %v, want [.webhooks[]?.clientConfig.caBundle]", cmPatchPath, caBundleKey, ignore.JQPathExpressions)
	}
}

// firstDifference names the first line where the inlined copy leaves the .lua file.
func firstDifference(file, inlined string) string {
	a, b := strings.Split(file, "\n"), strings.Split(inlined, "\n")
	for i := 0; i < len(a) || i < len(b); i++ {
		var la, lb string
		if i < len(a) {
			la = a[i]
		}
		if i < len(b) {
			lb = b[i]
		}
		if la != lb || i >= len(a) || i >= len(b) {
			return fmt.Sprintf("at line %d: file %q, inlined %q", i+1, la, lb)
		}
	}
	return "(only in line endings)"
}

var healthKeyLine = regexp.MustCompile(`^  (resource\.customizations\.health\.[^:]+): \|$`)

// rewriteInlinedScripts replaces the block under each `  resource.customizations.health.X: |`
// line (its lines indented by four spaces, and blank lines) with the matching script.
func rewriteInlinedScripts(path string, all []Customization) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	scripts := map[string]string{}
	for _, c := range all {
		scripts[c.ConfigMapKey()] = c.Script
	}
	lines := strings.Split(string(raw), "\n")
	var out []string
	for i := 0; i < len(lines); i++ {
		out = append(out, lines[i])
		m := healthKeyLine.FindStringSubmatch(lines[i])
		if m == nil {
			continue
		}
		script, ok := scripts[m[1]]
		if !ok {
			return fmt.Errorf("%s: %s has no health.lua under resource_customizations", path, m[1])
		}
		for i+1 < len(lines) && (lines[i+1] == "" || strings.HasPrefix(lines[i+1], "    ")) && i+1 < len(lines)-1 {
			i++
		}
		for _, l := range strings.Split(strings.TrimSuffix(script, "\n"), "\n") {
			if l == "" {
				out = append(out, "")
			} else {
				out = append(out, "    "+l)
			}
		}
		delete(scripts, m[1])
	}
	for key := range scripts {
		return fmt.Errorf("%s: no `  %s: |` line to copy the script under; add it to data", path, key)
	}
	return os.WriteFile(path, []byte(strings.Join(out, "\n")), 0o644)
}
