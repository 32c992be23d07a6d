//! Kubernetes objects of a scenario: reading multi-document manifest files, and the checks every
//! object must pass before it can be applied (apiVersion, kind, metadata.name).

use serde_json::Value;

/// serde-saphyr options for the scenario's own files (`config.yml`, `steps.yml`).
///
/// `strict_booleans`: YAML 1.2 core booleans only, so `n`, `y`, `yes`, `no`, `on`, `off` stay the
/// strings they look like (serde-saphyr's default reads them as YAML 1.1 booleans). No snippet:
/// messages are one line, ending with the line and column.
pub(crate) fn yaml_options() -> serde_saphyr::Options {
    let mut options = serde_saphyr::Options::default();
    options.strict_booleans = true;
    options.with_snippet = false;
    options
}

/// serde-saphyr options for manifests: as [`yaml_options`], plus YAML 1.1 octals.
///
/// Kubernetes reads manifests with a YAML 1.1 parser, where `defaultMode: 0644` is octal (420).
/// YAML 1.2 would read it as 644, a different file mode, so manifests keep the 1.1 meaning.
pub(crate) fn manifest_options() -> serde_saphyr::Options {
    let mut options = yaml_options();
    options.legacy_octal_numbers = true;
    options
}

/// Every document of a manifest file; empty documents (a stray `---`) are skipped.
pub(crate) fn parse_documents(text: &str) -> Result<Vec<Value>, serde_saphyr::Error> {
    let docs: Vec<Value> = serde_saphyr::from_multiple_with_options(text, manifest_options())?;
    Ok(docs.into_iter().filter(|doc| !doc.is_null()).collect())
}

/// What makes an object appliable that this object lacks; empty when it has all of it.
pub(crate) fn object_problems(doc: &Value) -> Vec<&'static str> {
    let Some(map) = doc.as_object() else {
        return vec!["is not a mapping (a Kubernetes object needs apiVersion, kind and metadata.name)"];
    };
    let mut problems = Vec::new();
    if !non_empty_str(map.get("apiVersion")) {
        problems.push("apiVersion is missing");
    }
    if !non_empty_str(map.get("kind")) {
        problems.push("kind is missing");
    }
    if !non_empty_str(map.get("metadata").and_then(|m| m.get("name"))) {
        problems.push("metadata.name is missing");
    }
    problems
}

fn non_empty_str(v: Option<&Value>) -> bool {
    v.and_then(Value::as_str).is_some_and(|s| !s.is_empty())
}

/// The name of a Deployment object (`apps/v1`... group `apps`, kind `Deployment`), else None.
pub(crate) fn deployment_name(doc: &Value) -> Option<&str> {
    let api_version = doc.get("apiVersion")?.as_str()?;
    let is_apps = api_version.split_once('/').is_some_and(|(group, _)| group == "apps");
    if is_apps && doc.get("kind")?.as_str()? == "Deployment" {
        doc.get("metadata")?.get("name")?.as_str()
    } else {
        None
    }
}

/// What identifies an object in a cluster: group, kind, namespace and name (not the version, so
/// the same object under two versions counts once).
pub(crate) fn object_id(doc: &Value) -> Option<(String, String, String, String)> {
    let api_version = doc.get("apiVersion")?.as_str()?;
    let group = api_version.rsplit_once('/').map_or("", |(group, _)| group);
    let kind = doc.get("kind")?.as_str()?;
    let metadata = doc.get("metadata")?;
    let namespace = metadata.get("namespace").and_then(Value::as_str).unwrap_or("");
    let name = metadata.get("name")?.as_str()?;
    Some((group.to_string(), kind.to_string(), namespace.to_string(), name.to_string()))
}

/// `Kind "name"` for messages.
pub(crate) fn describe(doc: &Value) -> String {
    let kind = doc.get("kind").and_then(Value::as_str).unwrap_or("object");
    let name = doc.get("metadata").and_then(|m| m.get("name")).and_then(Value::as_str).unwrap_or("");
    format!("{kind} {name:?}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn yaml_1_1_booleans_stay_strings_and_octals_keep_kubernetes_meaning() {
        let text =
            "metadata:\n  labels: {a: n, b: yes, c: on, d: off, e: y, f: no}\nflag: true\nmode: 0644\nport: 8080\n";
        let docs = parse_documents(text).unwrap();
        assert_eq!(
            docs,
            vec![json!({
                "metadata": {"labels": {"a": "n", "b": "yes", "c": "on", "d": "off", "e": "y", "f": "no"}},
                "flag": true,
                "mode": 420,
                "port": 8080
            })]
        );
    }

    #[test]
    fn empty_documents_are_skipped() {
        let docs = parse_documents("---\na: 1\n---\n---\nb: 2\n---\n").unwrap();
        assert_eq!(docs, vec![json!({"a": 1}), json!({"b": 2})]);
        assert!(parse_documents("# nothing\n").unwrap().is_empty());
    }

    #[test]
    fn object_checks() {
        assert!(object_problems(&json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}})).is_empty());
        assert_eq!(
            object_problems(&json!({"kind": "", "metadata": {}})),
            vec!["apiVersion is missing", "kind is missing", "metadata.name is missing"]
        );
        assert_eq!(object_problems(&json!([1])).len(), 1);
        let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}});
        assert_eq!(deployment_name(&deploy), Some("d"));
        assert_eq!(
            deployment_name(&json!({"apiVersion": "v1", "kind": "Deployment", "metadata": {"name": "d"}})),
            None
        );
        assert_eq!(object_id(&deploy), Some(("apps".into(), "Deployment".into(), String::new(), "d".into())));
        assert_eq!(describe(&deploy), r#"Deployment "d""#);
    }
}
