//! What a play owns, and how it keeps to it on a shared cluster.
//!
//! Every play has an identity of its own (a play id, unique per play even when two CI jobs play
//! the same scenario), written as the `rehearsal.dev/play` label on everything it creates, next
//! to the scenario's run id and, for an operator run, the Simulation's name. An object the
//! scenario names that already exists and does not carry this play's id is refused (or taken
//! over with `--adopt`, never from a play that is still running). What the play created or took
//! over is recorded with its UID in a [`Ledger`]; the cleanup deletes exactly those, each with a
//! UID precondition, never what a label query alone finds.
//!
//! A running play holds a Lease (`rehearsal-play-<id>`, in its namespace, renewed every
//! [`RENEW_EVERY`]): a play whose Lease has expired (killed, or finished with `--keep`) is not
//! live, so what it left may be adopted; a live one's never is.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use rehearsal_crds::keys::{DRIVER_MANAGER, OWNED_BY_SIMULATION_LABEL, PLAY_LABEL, SCENARIO_RUN_LABEL};
use serde_json::{Value, json};

use super::apply::{ApplyError, Kind, api_for, what};

/// How long a play's Lease lasts without renewal.
pub const LEASE_SECONDS: i32 = 60;
/// How often a running play renews its Lease.
pub const RENEW_EVERY: Duration = Duration::from_secs(20);
/// Longest play id: the Lease name `rehearsal-play-<id>` and the label value stay within limits.
pub const MAX_PLAY_ID: usize = 48;

/// Who a play is: the labels on everything it creates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The scenario's run id (shared by every play of the scenario).
    pub run_id: String,
    /// This play's own id.
    pub play_id: String,
    /// The Simulation the play runs for, if any.
    pub simulation: Option<String>,
}

impl Identity {
    /// The labels every object of the play carries.
    pub fn labels(&self) -> BTreeMap<String, String> {
        let mut labels = BTreeMap::from([
            (SCENARIO_RUN_LABEL.to_string(), self.run_id.clone()),
            (PLAY_LABEL.to_string(), self.play_id.clone()),
        ]);
        if let Some(sim) = &self.simulation {
            labels.insert(OWNED_BY_SIMULATION_LABEL.to_string(), sim.clone());
        }
        labels
    }

    /// Whether labels say this play made the object.
    pub fn owns(&self, labels: &BTreeMap<String, String>) -> bool {
        labels.get(PLAY_LABEL).is_some_and(|v| *v == self.play_id)
    }

    /// The name of this play's Lease.
    pub fn lease_name(&self) -> String {
        format!("rehearsal-play-{}", self.play_id)
    }
}

/// A fresh play id: 16 hex digits from the time and the process's random hash keys.
pub fn new_play_id() -> String {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher
        .write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    hasher.write_u32(std::process::id());
    format!("{:016x}", hasher.finish())
}

/// Why a play id given by flag cannot be used; None when it can.
pub fn play_id_problem(id: &str) -> Option<&'static str> {
    let ok_chars = id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if id.is_empty() || id.len() > MAX_PLAY_ID {
        Some("a play id has 1 to 48 characters")
    } else if !ok_chars || id.starts_with('-') || id.ends_with('-') {
        Some("a play id has lowercase letters, digits and '-', and starts and ends with a letter or digit")
    } else {
        None
    }
}

/// One object the play created or took over.
#[derive(Debug, Clone)]
pub struct Owned {
    /// How the cluster serves its kind.
    pub kind: Kind,
    /// Its namespace (None: cluster-scoped).
    pub namespace: Option<String>,
    /// Its name.
    pub name: String,
    /// Its UID: the cleanup deletes this object and no other of the same name.
    pub uid: String,
    /// Taken over with `--adopt` rather than created.
    pub adopted: bool,
}

impl Owned {
    /// `Kind namespace/name`, for messages.
    pub fn what(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{} {ns}/{}", self.kind.resource.kind, self.name),
            None => format!("{} {}", self.kind.resource.kind, self.name),
        }
    }
}

/// Everything the play created or took over, in order.
#[derive(Debug, Default)]
pub struct Ledger {
    entries: Mutex<Vec<Owned>>,
}

impl Ledger {
    /// Records an object (once per UID).
    pub fn record(&self, owned: Owned) {
        let mut entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !entries.iter().any(|e| e.uid == owned.uid) {
            entries.push(owned);
        }
    }

    /// A copy of the entries.
    pub fn entries(&self) -> Vec<Owned> {
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

/// Whether play `play_id` is running: some Lease of it, anywhere, is unexpired. Returns how long
/// ago the freshest was renewed.
pub async fn live_play(client: &kube::Client, play_id: &str) -> Result<Option<Duration>, kube::Error> {
    let leases: Api<Lease> = Api::all(client.clone());
    let list = leases.list(&ListParams::default().labels(&format!("{PLAY_LABEL}={play_id}"))).await?;
    let now = Timestamp::now();
    let mut freshest: Option<Duration> = None;
    for lease in list.items {
        let Some(spec) = lease.spec else { continue };
        let Some(renewed) = spec.renew_time.map(|t| t.0) else { continue };
        let lasts = Duration::from_secs(u64::try_from(spec.lease_duration_seconds.unwrap_or(0)).unwrap_or(0));
        // A renewTime in the future (clock skew) counts as just renewed.
        let age = Duration::try_from(now.duration_since(renewed)).unwrap_or(Duration::ZERO);
        if age < lasts {
            freshest = Some(freshest.map_or(age, |f| f.min(age)));
        }
    }
    Ok(freshest)
}

/// The play's Lease, renewed in the background until dropped (or until it is deleted).
pub struct LeaseGuard {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Creates the play's Lease in `namespace` (recorded in the ledger, so the cleanup removes it)
/// and renews it every [`RENEW_EVERY`].
pub async fn hold_lease(
    client: &kube::Client,
    namespace: &str,
    identity: &Identity,
    ledger: &Ledger,
) -> Result<LeaseGuard, ApplyError> {
    let name = identity.lease_name();
    let fail = |message: String| ApplyError::Namespace { name: namespace.to_string(), message };
    let api: Api<Lease> = Api::namespaced(client.clone(), namespace);
    let body: Lease = serde_json::from_value(json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": name, "labels": identity.labels()},
        "spec": {"holderIdentity": identity.play_id, "leaseDurationSeconds": LEASE_SECONDS}
    }))
    .map_err(|e| fail(format!("cannot build Lease {name}: {e}")))?;
    let mut body = body;
    if let Some(spec) = body.spec.as_mut() {
        spec.renew_time = Some(MicroTime(Timestamp::now()));
    }
    let pp = PostParams { field_manager: Some(DRIVER_MANAGER.to_string()), ..Default::default() };
    let created = api.create(&pp, &body).await.map_err(|e| fail(format!("cannot create Lease {name}: {e}")))?;
    let kind = Kind { resource: kube::api::ApiResource::erase::<Lease>(&()), namespaced: true };
    ledger.record(Owned {
        kind,
        namespace: Some(namespace.to_string()),
        name: name.clone(),
        uid: created.uid().unwrap_or_default(),
        adopted: false,
    });
    let task = tokio::spawn(async move {
        loop {
            tokio::time::sleep(RENEW_EVERY).await;
            let patch = json!({"spec": {"renewTime": MicroTime(Timestamp::now())}});
            match api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                Ok(_) => {}
                // Deleted by the cleanup: nothing left to renew.
                Err(kube::Error::Api(s)) if s.code == 404 => return,
                Err(e) => tracing::warn!(lease = %name, error = %e, "cannot renew the play's Lease; retrying"),
            }
        }
    });
    Ok(LeaseGuard { task })
}

/// How an existing object stands against this play.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// Not there.
    Absent,
    /// There, made by this play.
    Ours,
    /// There, not made by any play.
    Foreign,
    /// There, made by another play that is not running any more.
    LeftBy(String),
    /// There, made by a play that is still running.
    Live(String),
}

/// Where `object` stands: read it and, when another play made it, whether that play runs.
pub async fn standing(
    client: &kube::Client,
    kind: &Kind,
    namespace: &str,
    object: &Value,
    identity: &Identity,
) -> Result<(Standing, Option<DynamicObject>), ApplyError> {
    let name = object_name(object)?;
    let api = api_for(client, kind, namespace);
    let existing = api.get_opt(name).await.map_err(|source| ApplyError::Api { what: what(object), source })?;
    let Some(existing) = existing else { return Ok((Standing::Absent, None)) };
    let standing = standing_of(client, existing.labels(), identity).await.map_err(|source| ApplyError::Api {
        what: format!("the Leases of the play that made {}", what(object)),
        source,
    })?;
    Ok((standing, Some(existing)))
}

/// Where an object with these labels stands.
pub async fn standing_of(
    client: &kube::Client,
    labels: &BTreeMap<String, String>,
    identity: &Identity,
) -> Result<Standing, kube::Error> {
    if identity.owns(labels) {
        return Ok(Standing::Ours);
    }
    match labels.get(PLAY_LABEL) {
        None => Ok(Standing::Foreign),
        Some(other) => Ok(match live_play(client, other).await? {
            Some(_) => Standing::Live(other.clone()),
            None => Standing::LeftBy(other.clone()),
        }),
    }
}

/// Why an object that exists cannot be applied by this play; None when it can.
pub fn refusal(standing: &Standing, adopt: bool) -> Option<String> {
    match standing {
        Standing::Absent | Standing::Ours => None,
        Standing::LeftBy(_) | Standing::Foreign if adopt => None,
        Standing::Foreign => Some("it exists and was not created by a rehearsal play".to_string()),
        Standing::LeftBy(play) => Some(format!("it exists, left by play {play} (no longer running)")),
        Standing::Live(play) => {
            Some(format!("it belongs to play {play}, which is still running (even --adopt never takes it)"))
        }
    }
}

fn object_name(object: &Value) -> Result<&str, ApplyError> {
    object
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .ok_or_else(|| ApplyError::NoName(what(object)))
}

/// Puts a prepared object (it carries the play's labels) into the cluster: created when absent,
/// updated (server-side apply) when this play made it, taken over with `adopt`; anything else
/// is refused, naming the object and who has it. Created and adopted objects go in the ledger.
pub async fn claim(
    client: &kube::Client,
    kind: &Kind,
    namespace: &str,
    object: &Value,
    identity: &Identity,
    adopt: bool,
    ledger: &Ledger,
) -> Result<(), ApplyError> {
    let name = object_name(object)?;
    let api = api_for(client, kind, namespace);
    let api_error = |source| ApplyError::Api { what: what(object), source };
    let owned = |uid: String, adopted: bool| Owned {
        kind: kind.clone(),
        namespace: kind.namespaced.then(|| namespace.to_string()),
        name: name.to_string(),
        uid,
        adopted,
    };
    // Twice at most: a create that loses a race to someone else is decided again on what won.
    for _ in 0..2 {
        let (standing, existing) = standing(client, kind, namespace, object, identity).await?;
        if let Some(reason) = refusal(&standing, adopt) {
            return Err(ApplyError::NotOurs { what: what(object), reason });
        }
        match existing {
            None => {
                let body: DynamicObject = serde_json::from_value(object.clone()).map_err(|e| ApplyError::NotOurs {
                    what: what(object),
                    reason: format!("it is not a Kubernetes object: {e}"),
                })?;
                let pp = PostParams { field_manager: Some(DRIVER_MANAGER.to_string()), ..Default::default() };
                match api.create(&pp, &body).await {
                    Ok(created) => {
                        ledger.record(owned(created.uid().unwrap_or_default(), false));
                        return Ok(());
                    }
                    Err(kube::Error::Api(s)) if s.code == 409 => continue,
                    Err(source) => return Err(api_error(source)),
                }
            }
            Some(existing) => {
                let uid = existing.uid().unwrap_or_default();
                // The UID in the body is a precondition: an object replaced meanwhile is a
                // conflict, not a silent change to someone else's object.
                let mut body = object.clone();
                if let Some(metadata) = body.get_mut("metadata").and_then(Value::as_object_mut) {
                    metadata.insert("uid".to_string(), json!(uid));
                }
                api.patch(name, &PatchParams::apply(DRIVER_MANAGER).force(), &Patch::Apply(&body))
                    .await
                    .map_err(api_error)?;
                if standing != Standing::Ours {
                    tracing::warn!(object = %what(object), "adopted (--adopt): the play changes it and deletes it at the end");
                }
                ledger.record(owned(uid, standing != Standing::Ours));
                return Ok(());
            }
        }
    }
    Err(ApplyError::NotOurs {
        what: what(object),
        reason: "it was created and deleted again while the play tried to create it".into(),
    })
}

/// Objects in `namespace`, of the given namespaced kinds, that another play made: (what, play id).
pub async fn other_plays_objects(
    client: &kube::Client,
    kinds: &[Kind],
    namespace: &str,
    identity: &Identity,
) -> Result<Vec<(String, String)>, ApplyError> {
    let selector = format!("{PLAY_LABEL},{PLAY_LABEL}!={}", identity.play_id);
    let mut found = Vec::new();
    let mut seen: Vec<&kube::api::ApiResource> = Vec::new();
    for kind in kinds.iter().filter(|k| k.namespaced) {
        if seen.contains(&&kind.resource) {
            continue;
        }
        seen.push(&kind.resource);
        let api = api_for(client, kind, namespace);
        let list = api.list(&ListParams::default().labels(&selector)).await.map_err(|source| ApplyError::Api {
            what: format!("{} in namespace {namespace}", kind.resource.plural),
            source,
        })?;
        for object in list.items {
            let play = object.labels().get(PLAY_LABEL).cloned().unwrap_or_default();
            found.push((format!("{} {}", kind.resource.kind, object.name_any()), play));
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(sim: Option<&str>) -> Identity {
        Identity { run_id: "run".into(), play_id: "p1".into(), simulation: sim.map(String::from) }
    }

    #[test]
    fn labels_name_the_run_the_play_and_the_simulation() {
        let labels = identity(Some("shop")).labels();
        assert_eq!(labels.get(SCENARIO_RUN_LABEL).map(String::as_str), Some("run"));
        assert_eq!(labels.get(PLAY_LABEL).map(String::as_str), Some("p1"));
        assert_eq!(labels.get(OWNED_BY_SIMULATION_LABEL).map(String::as_str), Some("shop"));
        assert!(!identity(None).labels().contains_key(OWNED_BY_SIMULATION_LABEL));
        assert!(identity(None).owns(&labels));
        let mut other = labels.clone();
        other.insert(PLAY_LABEL.into(), "p2".into());
        assert!(!identity(None).owns(&other), "same run id, another play");
        assert_eq!(identity(None).lease_name(), "rehearsal-play-p1");
    }

    #[test]
    fn play_ids_are_fresh_and_checked() {
        let (a, b) = (new_play_id(), new_play_id());
        assert_ne!(a, b);
        assert_eq!(play_id_problem(&a), None);
        assert_eq!(a.len(), 16);
        for bad in ["", "-a", "a-", "A", "a_b", "a.b", &"a".repeat(49)] {
            assert!(play_id_problem(bad).is_some(), "{bad:?}");
        }
        assert_eq!(play_id_problem("ci-1234-run-2"), None);
    }

    #[test]
    fn only_absent_and_own_objects_go_without_adopt() {
        assert_eq!(refusal(&Standing::Absent, false), None);
        assert_eq!(refusal(&Standing::Ours, false), None);
        assert!(refusal(&Standing::Foreign, false).is_some_and(|r| r.contains("not created by a rehearsal play")));
        assert!(refusal(&Standing::LeftBy("p0".into()), false).is_some_and(|r| r.contains("left by play p0")));
        assert_eq!(refusal(&Standing::Foreign, true), None);
        assert_eq!(refusal(&Standing::LeftBy("p0".into()), true), None);
        let live = refusal(&Standing::Live("p2".into()), true);
        assert!(live.is_some_and(|r| r.contains("play p2, which is still running")));
    }

    #[test]
    fn the_ledger_keeps_one_entry_per_uid() {
        let gvk = kube::core::GroupVersionKind::gvk("apps", "v1", "Deployment");
        let kind = Kind { resource: kube::api::ApiResource::from_gvk(&gvk), namespaced: true };
        let ledger = Ledger::default();
        let owned = |uid: &str| Owned {
            kind: kind.clone(),
            namespace: Some("ns".into()),
            name: "web".into(),
            uid: uid.into(),
            adopted: false,
        };
        ledger.record(owned("u1"));
        ledger.record(owned("u1"));
        ledger.record(owned("u2"));
        let entries = ledger.entries();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].what(), "Deployment ns/web");
    }
}
