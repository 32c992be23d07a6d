// Package kstatus gives the kstatus verdict (sigs.k8s.io/cli-utils pkg/kstatus/status, what Flux
// and kstatus-based tools wait on) for one Kubernetes object read as JSON, e.g. the output of
// `kubectl get simulation NAME -o json`. Bad input is an error that says what was expected.
package kstatus

import (
	"bytes"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

// Decode reads one object. Numbers are decoded as the API machinery does (whole numbers to
// int64), which kstatus needs to read metadata.generation and status.observedGeneration.
func Decode(data []byte) (*unstructured.Unstructured, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return nil, fmt.Errorf("no input: expected one Kubernetes object as JSON (kubectl get simulation NAME -o json)")
	}
	if trimmed[0] != '{' {
		return nil, fmt.Errorf("input is not a JSON object (it starts with %q; use kubectl ... -o json, not -o yaml or a list)", firstLine(trimmed))
	}
	obj := map[string]any{}
	if err := utiljson.Unmarshal(trimmed, &obj); err != nil {
		return nil, fmt.Errorf("input is not one JSON object: %v", err)
	}
	kind, _ := obj["kind"].(string)
	apiVersion, _ := obj["apiVersion"].(string)
	if kind == "" || apiVersion == "" {
		return nil, fmt.Errorf("input has no kind and apiVersion: expected a Kubernetes object (kubectl get simulation NAME -o json)")
	}
	if _, isList := obj["items"]; isList || strings.HasSuffix(kind, "List") {
		return nil, fmt.Errorf("input is a %s, not one object: name the object (kubectl get simulation NAME -o json)", kind)
	}
	return &unstructured.Unstructured{Object: obj}, nil
}

// Compute returns the kstatus result of an object, with an error naming the object when kstatus
// cannot read its status (e.g. conditions that are not a list of objects).
func Compute(u *unstructured.Unstructured) (*status.Result, error) {
	res, err := status.Compute(u)
	if err != nil {
		return nil, fmt.Errorf("kstatus cannot read the status of %s %s: %v", u.GetKind(), u.GetName(), err)
	}
	return res, nil
}

// Line is the command's output for one object: "<Status>: <message>", on one line (line breaks
// and runs of spaces in a condition message become one space).
func Line(data []byte) (string, error) {
	u, err := Decode(data)
	if err != nil {
		return "", err
	}
	res, err := Compute(u)
	if err != nil {
		return "", err
	}
	msg := strings.Join(strings.Fields(res.Message), " ")
	return fmt.Sprintf("%s: %s", res.Status, msg), nil
}

func firstLine(b []byte) string {
	line, _, _ := strings.Cut(string(b), "\n")
	if len(line) > 40 {
		line = line[:40] + "..."
	}
	return line
}
