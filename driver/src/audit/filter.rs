//! Which audit events are a run's, and the fields of them `audit.jsonl` keeps.

use std::collections::BTreeMap;

use memchr::memmem::Finder;
use serde::Deserialize;

use crate::collect::records::AuditRecord;

/// What a run is, for picking its audit events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditScope {
    /// The run's namespaces: exact names (a scenario's namespace).
    pub namespaces: Vec<String>,
    /// Namespaces starting with `<prefix>-` (a replay's virtual namespaces).
    pub namespace_prefix: Option<String>,
    /// The Simulation, if any (its status writes, its runs' roots).
    pub simulation: Option<String>,
}

impl AuditScope {
    fn namespace_is_ours(&self, ns: &str) -> bool {
        self.namespaces.iter().any(|n| n == ns)
            || self.namespace_prefix.as_deref().is_some_and(|p| crate::collect::has_prefix(p, ns))
    }

    /// The byte search [`LineFilter::may_keep`] makes for this run, built once.
    pub fn line_filter(&self) -> LineFilter {
        let finder = |s: String| Finder::new(s.as_bytes()).into_owned();
        let mut names: Vec<Finder<'static>> = self.namespaces.iter().map(|ns| finder(format!("\"{ns}\""))).collect();
        names.extend(self.namespace_prefix.iter().map(|p| finder(format!("\"{p}-"))));
        let broad = ["\"nodes\"", "\"simulations\"", "\"simulationroots\""].map(|m| finder(m.to_string()));
        LineFilter { names, broad }
    }

    /// Whether the event is about the run: an object in (or the object of) one of its
    /// namespaces, a node (not the status heartbeats, which the node collector already turns
    /// into Ready/NotReady), or its Simulation and roots.
    pub fn keeps(&self, event: &AuditEvent) -> bool {
        let Some(o) = &event.object_ref else { return false };
        let resource = o.resource.as_deref().unwrap_or("");
        let name = o.name.as_deref().unwrap_or("");
        if let Some(ns) = o.namespace.as_deref().filter(|n| !n.is_empty()) {
            return self.namespace_is_ours(ns);
        }
        match resource {
            "namespaces" => self.namespace_is_ours(name),
            "nodes" => o.subresource.as_deref().unwrap_or("").is_empty(),
            "simulations" | "simulationroots" => {
                let group_ok = o.api_group.as_deref() == Some(rehearsal_crds::keys::GROUP);
                let ours = self.simulation.as_deref().is_some_and(|sim| {
                    name == sim || (resource == "simulationroots" && name.starts_with(&format!("{sim}-run-")))
                });
                group_ok && ours
            }
            _ => false,
        }
    }
}

/// Whether a raw log line may be one the run keeps: a byte search for the run's namespace
/// names, nodes and Simulations, before any parsing. Never false for a line
/// [`AuditScope::keeps`] would keep, whatever the JSON spacing: only compact keys are searched
/// when the value is known to follow them directly, and the broad markers otherwise.
pub struct LineFilter {
    /// `"<namespace>"` and `"<prefix>-`: most lines of a busy run are its own, so these go first.
    names: Vec<Finder<'static>>,
    /// `"nodes"`, `"simulations"`, `"simulationroots"`.
    broad: [Finder<'static>; 3],
}

impl LineFilter {
    /// Whether `line` may be one the run keeps (false: it is certainly not).
    pub fn may_keep(&self, line: &[u8]) -> bool {
        // memchr's searchers: the naive window search it replaces was a third of the
        // follower's CPU on a bench-replay run, every line being scanned up to five times.
        self.names.iter().chain(&self.broad).any(|f| f.find(line).is_some())
    }
}

/// The fields of an `audit.k8s.io/v1` Event this module reads; the rest (request and response
/// bodies) is skipped when parsing.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    /// Request id.
    #[serde(rename = "auditID", default)]
    pub audit_id: String,
    /// Stage.
    #[serde(default)]
    pub stage: String,
    /// Verb.
    #[serde(default)]
    pub verb: String,
    /// Request URI.
    #[serde(rename = "requestURI", default)]
    pub request_uri: String,
    /// Who.
    #[serde(default)]
    pub user: Option<AuditUser>,
    /// User agent.
    #[serde(default)]
    pub user_agent: Option<String>,
    /// The object.
    #[serde(default)]
    pub object_ref: Option<ObjectRef>,
    /// The answer's status.
    #[serde(default)]
    pub response_status: Option<ResponseStatus>,
    /// Received at.
    #[serde(default)]
    pub request_received_timestamp: String,
    /// Stage reached at.
    #[serde(default)]
    pub stage_timestamp: String,
}

/// `user` of an audit event.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AuditUser {
    /// User name.
    #[serde(default)]
    pub username: String,
}

/// `objectRef` of an audit event.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    /// Resource (plural).
    pub resource: Option<String>,
    /// Namespace.
    pub namespace: Option<String>,
    /// Name.
    pub name: Option<String>,
    /// API group ("" for core).
    pub api_group: Option<String>,
    /// Subresource.
    pub subresource: Option<String>,
}

/// `responseStatus` of an audit event.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ResponseStatus {
    /// HTTP code.
    pub code: Option<i32>,
}

/// The record `audit.jsonl` keeps of an event (its strings moved, not copied).
pub fn to_record(e: AuditEvent) -> AuditRecord {
    let mut object_ref = BTreeMap::new();
    if let Some(o) = e.object_ref {
        let fields = [
            ("resource", o.resource),
            ("namespace", o.namespace),
            ("name", o.name),
            ("apiGroup", o.api_group),
            ("subresource", o.subresource),
        ];
        for (key, value) in fields {
            if let Some(v) = value.filter(|v| !v.is_empty()) {
                object_ref.insert(key.to_string(), v);
            }
        }
    }
    AuditRecord {
        audit_id: e.audit_id,
        stage: e.stage,
        verb: e.verb,
        request_uri: e.request_uri,
        user: e.user.map(|u| u.username).unwrap_or_default(),
        user_agent: e.user_agent.unwrap_or_default(),
        object_ref,
        code: e.response_status.and_then(|s| s.code),
        request_received_timestamp: e.request_received_timestamp,
        stage_timestamp: e.stage_timestamp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(json: serde_json::Value) -> AuditEvent {
        serde_json::from_value(json).unwrap()
    }

    fn scope() -> AuditScope {
        AuditScope {
            namespaces: vec!["karpenter-test".into()],
            namespace_prefix: Some("virtual".into()),
            simulation: Some("shop".into()),
        }
    }

    #[test]
    fn keeps_the_runs_namespaces_nodes_and_simulation() {
        let s = scope();
        let obj = |o: serde_json::Value| event(serde_json::json!({"auditID": "a", "objectRef": o}));
        assert!(s.keeps(&obj(serde_json::json!({"resource": "pods", "namespace": "karpenter-test", "name": "p"}))));
        assert!(s.keeps(&obj(serde_json::json!({"resource": "pods", "namespace": "virtual-shop"}))));
        assert!(!s.keeps(&obj(serde_json::json!({"resource": "pods", "namespace": "virtualx-shop"}))));
        assert!(!s.keeps(&obj(serde_json::json!({"resource": "pods", "namespace": "virtual"}))));
        assert!(!s.keeps(&obj(serde_json::json!({"resource": "pods", "namespace": "default"}))));
        assert!(s.keeps(&obj(serde_json::json!({"resource": "namespaces", "name": "virtual-shop"}))));
        assert!(!s.keeps(&obj(serde_json::json!({"resource": "namespaces", "name": "kube-system"}))));
        assert!(s.keeps(&obj(serde_json::json!({"resource": "nodes", "name": "kwok-node-0"}))));
        assert!(
            !s.keeps(&obj(serde_json::json!({"resource": "nodes", "name": "kwok-node-0", "subresource": "status"})))
        );
        let sim = |res: &str, name: &str| {
            obj(serde_json::json!({"resource": res, "name": name, "apiGroup": "rehearsal.dev"}))
        };
        assert!(s.keeps(&sim("simulations", "shop")));
        assert!(s.keeps(&sim("simulationroots", "shop-run-0")));
        assert!(!s.keeps(&sim("simulations", "other")));
        assert!(!s.keeps(&sim("simulationroots", "shopping-run-0")));
        assert!(!s.keeps(&event(serde_json::json!({"auditID": "a", "requestURI": "/healthz"}))));
    }

    #[test]
    fn the_byte_search_never_drops_a_line_the_filter_keeps() {
        let s = scope();
        let lines = [
            r#"{"auditID":"a","objectRef":{"resource":"pods","namespace":"karpenter-test","name":"p"}}"#,
            r#"{"auditID":"a","objectRef":{"resource":"pods","namespace":"virtual-shop"}}"#,
            r#"{"auditID":"a", "objectRef": {"resource": "namespaces", "name": "virtual-shop"}}"#,
            r#"{"auditID":"a","objectRef":{"resource":"nodes","name":"kwok-node-0"}}"#,
            r#"{"auditID":"a","objectRef":{"resource":"simulations","name":"shop","apiGroup":"rehearsal.dev"}}"#,
            r#"{"auditID":"a","objectRef":{"resource":"pods","namespace":"default"}}"#,
            r#"{"auditID":"a","objectRef":{"resource":"configmaps","namespace":"kube-system","name":"x"}}"#,
            r#"{"auditID":"a","requestURI":"/healthz"}"#,
        ];
        let f = s.line_filter();
        for line in lines {
            let keeps = s.keeps(&serde_json::from_str(line).unwrap());
            assert!(!keeps || f.may_keep(line.as_bytes()), "dropped a kept line: {line}");
        }
        assert!(
            !f.may_keep(lines[5].as_bytes()) && !f.may_keep(lines[6].as_bytes()) && !f.may_keep(lines[7].as_bytes())
        );
        // A prefix is searched with its dash: "virtualx-shop" is not the run's.
        assert!(!f.may_keep(br#"{"objectRef":{"resource":"pods","namespace":"virtualx-shop"}}"#));
    }

    #[test]
    fn records_keep_what_the_report_reads() {
        let e = event(serde_json::json!({
            "kind": "Event", "level": "RequestResponse", "auditID": "id-1", "stage": "ResponseComplete",
            "requestURI": "/api/v1/namespaces/ns/pods", "verb": "create",
            "user": {"username": "system:serviceaccount:rehearsal-system:rehearsal-driver", "groups": ["x"]},
            "userAgent": "rehearsal-driver", "objectRef": {"resource": "pods", "namespace": "ns", "name": "p", "apiVersion": "v1"},
            "responseStatus": {"metadata": {}, "code": 201},
            "requestObject": {"big": "body"},
            "requestReceivedTimestamp": "2026-12-02T02:03:46.832511Z", "stageTimestamp": "2026-12-02T02:03:46.838722Z"
        }));
        let r = to_record(e);
        assert_eq!(r.code, Some(201));
        assert_eq!(r.user, "system:serviceaccount:rehearsal-system:rehearsal-driver");
        assert_eq!(r.object_ref.get("name").map(String::as_str), Some("p"));
        assert!(!r.object_ref.contains_key("apiGroup"));
        let line = serde_json::to_string(&r).unwrap();
        assert!(
            line.contains(r#""auditID":"id-1""#)
                && line.contains(r#""requestReceivedTimestamp":"2026-12-02T02:03:46.832511Z""#),
            "{line}"
        );
    }
}
