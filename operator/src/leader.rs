//! Leader election among operator replicas through a `coordination.k8s.io` Lease, with
//! kube-lease-manager doing the locking and renewing.
//!
//! [`elect`] joins the election and returns a [`Leadership`]: a `watch` channel that is `true`
//! while this replica holds the Lease, and [`Leadership::release`] to free the Lease on a graceful
//! stop so a standby takes over within half a grace period instead of after the lease duration.
//!
//! kube-lease-manager's own `watch()` keeps saying "leader" while renewals fail (it only logs and
//! retries), and it frees the Lease only once every receiver is dropped. So this module drives
//! `changed()` and `release()` itself and adds a check of its own: while leading, it reads the
//! Lease after each expected renewal and steps down before another replica may take the Lease,
//! when it cannot see that the renewal happened (API errors, a hung request, the Lease deleted or
//! taken). A standby manager sleeps until the expiry it last saw, so a standby also reads the
//! Lease every half grace and starts over at once when it is free: a released Lease passes within
//! that poll. RBAC: `leases` `get`, `create` and `patch` in the Lease's namespace.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, SystemTime};

use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, Client};
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

/// Default lease duration: a standby takes over within this after the leader dies.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(15);

/// How long reading or creating the Lease may take when (re)joining the election: a hung request
/// must not hold the election up for kube's default read timeout (295 s).
const BUILD_TIMEOUT: Duration = Duration::from_secs(30);

/// How long [`Leadership::release`] waits for the API server before leaving the Lease to expire.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest wait between retries after an API error while not leading.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The Lease stores the duration as an `int32` of seconds.
const MAX_DURATION_SECONDS: u64 = i32::MAX as u64;

/// kube-lease-manager uses `kube-lease-manager-<identity>` as field manager, which the API server
/// limits to 128 characters.
const MAX_IDENTITY_LEN: usize = 100;

/// Where the Lease is, who this replica is, and how long a lease lasts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderSettings {
    /// Namespace of the Lease (`--namespace`).
    pub namespace: String,
    /// Name of the Lease (`--lease-name`).
    pub lease_name: String,
    /// This replica's name in the Lease's `holderIdentity` (`--identity`); unique per process.
    pub identity: String,
    /// How long a lease lasts without renewal, in whole seconds (`--lease-duration`).
    pub duration: Duration,
    /// How long before expiry the leader renews, in whole seconds; shorter than `duration`
    /// (`--lease-grace`). Also the clock skew between replicas that is tolerated.
    pub grace: Duration,
}

impl LeaderSettings {
    /// Settings with [`default_identity`] and [`default_grace`] for `duration`.
    pub fn new(namespace: impl Into<String>, lease_name: impl Into<String>, duration: Duration) -> LeaderSettings {
        LeaderSettings {
            namespace: namespace.into(),
            lease_name: lease_name.into(),
            identity: default_identity(),
            duration,
            grace: default_grace(duration),
        }
    }

    /// Checks the settings, naming the flag of the first one that is wrong.
    pub fn validate(&self) -> Result<(), LeaderError> {
        let bad = |flag, problem: String| Err(LeaderError::Setting { flag, problem });
        if let Some(problem) = dns_problem(&self.namespace, 63, false) {
            return bad("--namespace", format!("{:?} is not a namespace name: {problem}", self.namespace));
        }
        if let Some(problem) = dns_problem(&self.lease_name, 253, true) {
            return bad("--lease-name", format!("{:?} is not a Lease name: {problem}", self.lease_name));
        }
        if self.identity.trim().is_empty() {
            return bad("--identity", "is empty".into());
        }
        if self.identity.len() > MAX_IDENTITY_LEN || self.identity.chars().any(char::is_control) {
            return bad(
                "--identity",
                format!("must be at most {MAX_IDENTITY_LEN} printable characters, got {:?}", self.identity),
            );
        }
        // The Lease and kube-lease-manager count in whole seconds: a fraction would be dropped.
        for (flag, value) in [("--lease-duration", self.duration), ("--lease-grace", self.grace)] {
            if value.is_zero() {
                return bad(flag, "must be at least 1 second, got 0".into());
            }
            if value.subsec_nanos() != 0 {
                return bad(flag, format!("must be a whole number of seconds, got {value:?}"));
            }
        }
        if self.duration.as_secs() > MAX_DURATION_SECONDS {
            return bad("--lease-duration", format!("must be at most {MAX_DURATION_SECONDS} seconds"));
        }
        if self.grace >= self.duration {
            return bad(
                "--lease-grace",
                format!(
                    "({}s) must be shorter than --lease-duration ({}s): the leader renews that long before expiry",
                    self.grace.as_secs(),
                    self.duration.as_secs()
                ),
            );
        }
        Ok(())
    }
}

/// A third of `duration` in whole seconds, at least 1 s: the leader renews a third before expiry.
pub fn default_grace(duration: Duration) -> Duration {
    Duration::from_secs((duration.as_secs() / 3).max(1))
}

/// `<host>-<pid>-<random>`: unique per process, even for two processes on one host or two
/// containers sharing a host name and pid 1, which would otherwise both think they hold the Lease.
pub fn default_identity() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok());
    // RandomState is seeded randomly per process: randomness without a dependency.
    let nonce = RandomState::new().build_hasher().finish();
    identity_from(host.as_deref(), std::process::id(), nonce)
}

fn identity_from(host: Option<&str>, pid: u32, nonce: u64) -> String {
    let host = host.map(str::trim).filter(|h| !h.is_empty()).unwrap_or("rehearsal-operator");
    // Keep the identity (and the field manager derived from it) within the API's limits.
    let host: String = host.chars().filter(|c| !c.is_control()).take(60).collect();
    format!("{host}-{pid}-{:08x}", nonce as u32)
}

/// Why `name` is not a DNS-1123 label (`dots == false`) or subdomain of at most `max` characters.
fn dns_problem(name: &str, max: usize, dots: bool) -> Option<&'static str> {
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || (dots && c == '.');
    if name.is_empty() {
        Some("it is empty")
    } else if name.len() > max {
        Some("it is too long")
    } else if !name.chars().all(allowed) {
        Some(if dots { "only a-z, 0-9, '-' and '.' are allowed" } else { "only a-z, 0-9 and '-' are allowed" })
    } else if !name.starts_with(|c: char| c.is_ascii_alphanumeric())
        || !name.ends_with(|c: char| c.is_ascii_alphanumeric())
    {
        Some("it must start and end with a letter or digit")
    } else {
        None
    }
}

/// What went wrong with leader election.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// A setting is out of range; `flag` names it.
    #[error("{flag} {problem}")]
    Setting {
        /// The command-line flag of the setting.
        flag: &'static str,
        /// What is wrong with its value.
        problem: String,
    },
    /// The Lease could not be read or created when joining the election.
    #[error("cannot use Lease {lease} for leader election: {source}")]
    Lease {
        /// `namespace/name` of the Lease.
        lease: String,
        /// What kube-lease-manager reported.
        #[source]
        source: LeaseManagerError,
    },
    /// Freeing the Lease on shutdown failed; a standby takes over when it expires.
    #[error("cannot release Lease {lease}; a standby takes over when it expires: {source}")]
    Release {
        /// `namespace/name` of the Lease.
        lease: String,
        /// What kube-lease-manager reported.
        #[source]
        source: LeaseManagerError,
    },
    /// The API server did not answer in time when joining the election.
    #[error("cannot use Lease {lease} for leader election: no answer from the API server within {BUILD_TIMEOUT:?}")]
    LeaseTimeout {
        /// `namespace/name` of the Lease.
        lease: String,
    },
    /// The API server did not answer the release in time.
    #[error("releasing Lease {lease} took longer than {RELEASE_TIMEOUT:?}; a standby takes over when it expires")]
    ReleaseTimeout {
        /// `namespace/name` of the Lease.
        lease: String,
    },
    /// The election task panicked.
    #[error("the leader election task for Lease {lease} failed: {source}")]
    Task {
        /// `namespace/name` of the Lease.
        lease: String,
        /// Why the task ended.
        #[source]
        source: tokio::task::JoinError,
    },
}

/// This replica's part in the election: whether it leads, and the way out.
#[derive(Debug)]
pub struct Leadership {
    identity: String,
    lease: String,
    leading: watch::Receiver<bool>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), LeaderError>>,
}

impl Leadership {
    /// A receiver that is `true` while this replica holds the Lease; it turns `false` before the
    /// Lease may pass to another replica, and is `false` and closed (`changed()` errs) once the
    /// election has ended through [`release`](Self::release) or a drop.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.leading.clone()
    }

    /// Whether this replica holds the Lease now.
    pub fn is_leader(&self) -> bool {
        *self.leading.borrow()
    }

    /// This replica's identity in the Lease.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Stops renewing and frees the Lease if held, so a standby takes over within its poll (half a
    /// grace period) instead of at expiry. Call it after
    /// the work that needs leadership has stopped. Dropping the `Leadership` releases too, but
    /// without waiting or reporting.
    pub async fn release(self) -> Result<(), LeaderError> {
        let Leadership { lease, stop, task, .. } = self;
        // An error means the task has already ended; its result says how.
        let _ = stop.send(());
        task.await.map_err(|source| LeaderError::Task { lease, source })?
    }
}

/// Joins the election: checks `settings`, makes sure the Lease exists (creating it if needed) and
/// starts competing for it in a task. Leadership may come at once or later; watch
/// [`Leadership::subscribe`].
pub async fn elect(client: Client, settings: LeaderSettings) -> Result<Leadership, LeaderError> {
    settings.validate()?;
    let lease = format!("{}/{}", settings.namespace, settings.lease_name);
    let (tx, leading) = watch::channel(false);
    let elector = Elector { client, settings, lease: lease.clone(), tx };
    let manager = match elector.build().await {
        Ok(manager) => manager,
        Err(None) => return Err(LeaderError::LeaseTimeout { lease }),
        Err(Some(source)) => return Err(LeaderError::Lease { lease, source }),
    };
    tracing::info!(
        identity = %elector.settings.identity,
        %lease,
        duration = ?elector.settings.duration,
        grace = ?elector.settings.grace,
        "joined leader election"
    );
    let identity = elector.settings.identity.clone();
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(elector.run(manager, stopped));
    Ok(Leadership { identity, lease, leading, stop, task })
}

/// What to do after following one LeaseManager.
enum Next {
    /// Release the Lease and end.
    Stop,
    /// Leadership was given up without the manager knowing: start over with a fresh one.
    Rebuild,
    /// The Lease is free, but a standby manager sleeps until the expiry it last saw (it neither
    /// watches nor re-reads the Lease before then): start over at once, so a released Lease is
    /// taken within one standby poll rather than up to a lease duration later.
    Retake,
}

struct Elector {
    client: Client,
    settings: LeaderSettings,
    lease: String,
    tx: watch::Sender<bool>,
}

impl Elector {
    /// A manager for the Lease, creating the Lease if missing; `Err(None)` after [`BUILD_TIMEOUT`].
    async fn build(&self) -> Result<LeaseManager, Option<LeaseManagerError>> {
        let s = &self.settings;
        let build = LeaseManagerBuilder::new(self.client.clone(), &s.lease_name)
            .with_namespace(&s.namespace)
            .with_identity(&s.identity)
            .with_duration(s.duration.as_secs())
            .with_grace(s.grace.as_secs())
            .build();
        match tokio::time::timeout(BUILD_TIMEOUT, build).await {
            Ok(result) => result.map_err(Some),
            Err(_) => Err(None),
        }
    }

    async fn run(self, first: LeaseManager, mut stop: oneshot::Receiver<()>) -> Result<(), LeaderError> {
        let mut manager = first;
        let mut failures = 0u32;
        loop {
            let next = self.follow(&manager, &mut stop, &mut failures).await;
            let fresh = match next {
                Next::Stop => return self.release(&manager).await,
                // A standby: at once, and on failure like a rebuild.
                Next::Retake => tokio::select! {
                    biased;
                    _ = &mut stop => return Ok(()),
                    built = self.build() => match built {
                        Ok(fresh) => Some(fresh),
                        Err(err) => {
                            self.warn_build(err);
                            self.rebuild(&mut stop, &mut failures).await
                        }
                    },
                },
                Next::Rebuild => self.rebuild(&mut stop, &mut failures).await,
            };
            match fresh {
                Some(fresh) => manager = fresh,
                // Stopped while not leading: if the Lease still names us, it simply expires.
                None => return Ok(()),
            }
        }
    }

    /// Follows `manager` until asked to stop or until leadership must be given up behind its back
    /// (its idea of "leader" cannot be reset, hence a new manager). "Leader" is published only
    /// once a read of the Lease confirms a live renewal: a fresh manager also reports "leader"
    /// for a stale Lease that still names this replica, before renewing it.
    async fn follow(&self, manager: &LeaseManager, stop: &mut oneshot::Receiver<()>, failures: &mut u32) -> Next {
        let mut watchdog: Option<Watchdog> = None;
        loop {
            let changed = manager.changed();
            tokio::pin!(changed);
            let result = loop {
                // Leading: the watchdog's schedule; standing by: a poll for a freed Lease.
                let check_in = watchdog.as_ref().map_or(standby_poll(self.settings.grace), |w| until(w.next_check));
                tokio::select! {
                    biased;
                    _ = &mut *stop => return Next::Stop,
                    result = &mut changed => break result,
                    _ = tokio::time::sleep(check_in) => {
                        let observation = self.observe().await;
                        match watchdog.as_mut().map(|w| w.observe(SystemTime::now(), observation.clone())) {
                            Some(Verdict::Valid) => {
                                *failures = 0;
                                self.publish(true, "");
                            }
                            Some(Verdict::StepDown(reason)) => {
                                self.step_down(&reason);
                                return Next::Rebuild;
                            }
                            Some(Verdict::Pending) => {}
                            None if matches!(observation, Observation::Free(_)) => return Next::Retake,
                            None => {}
                        }
                    }
                }
            };
            match result {
                // Holding: confirm by reading the Lease (at once) before saying so.
                Ok(true) => watchdog = Some(Watchdog::new(SystemTime::now(), &self.settings)),
                Ok(false) => {
                    *failures = 0;
                    watchdog = None;
                    self.publish(false, "the Lease passed to another replica");
                }
                Err(err) if watchdog.is_some() => {
                    self.step_down(&format!("cannot renew the Lease: {err}"));
                    return Next::Rebuild;
                }
                Err(err) => {
                    *failures += 1;
                    let wait = backoff(*failures);
                    tracing::warn!(identity = %self.settings.identity, lease = %self.lease, error = %err, retry_in = ?wait, "leader election: API error");
                    tokio::select! {
                        biased;
                        _ = &mut *stop => return Next::Stop,
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
    }

    /// A fresh manager after a backoff (which also spaces out step-down/re-acquire cycles when
    /// renewals keep failing); `None` if asked to stop meanwhile.
    async fn rebuild(&self, stop: &mut oneshot::Receiver<()>, failures: &mut u32) -> Option<LeaseManager> {
        loop {
            *failures += 1;
            tokio::select! {
                biased;
                _ = &mut *stop => return None,
                _ = tokio::time::sleep(backoff(*failures)) => {}
            }
            tokio::select! {
                biased;
                _ = &mut *stop => return None,
                built = self.build() => match built {
                    Ok(manager) => return Some(manager),
                    Err(err) => self.warn_build(err),
                }
            }
        }
    }

    fn warn_build(&self, err: Option<LeaseManagerError>) {
        let error = err.map_or_else(|| format!("no answer within {BUILD_TIMEOUT:?}"), |e| e.to_string());
        tracing::warn!(identity = %self.settings.identity, lease = %self.lease, %error, "leader election: cannot read the Lease");
    }

    fn step_down(&self, reason: &str) {
        if !self.publish(false, reason) {
            // Not published as leader yet, so no "lost leadership"; still worth a line.
            tracing::warn!(identity = %self.settings.identity, lease = %self.lease, %reason, "leader election: starting over");
        }
    }

    /// Says "not leader" first, so callers stop acting before another replica can start, then
    /// frees the Lease.
    async fn release(&self, manager: &LeaseManager) -> Result<(), LeaderError> {
        self.publish(false, "releasing the Lease on shutdown");
        let lease = self.lease.clone();
        match tokio::time::timeout(RELEASE_TIMEOUT, manager.release()).await {
            Ok(Ok(())) => {
                tracing::info!(identity = %self.settings.identity, %lease, "left leader election");
                Ok(())
            }
            Ok(Err(source)) => Err(LeaderError::Release { lease, source }),
            Err(_) => Err(LeaderError::ReleaseTimeout { lease }),
        }
    }

    /// Sets the channel, logs a change, and returns whether this replica was leading before.
    fn publish(&self, leading: bool, reason: &str) -> bool {
        let was = self.tx.send_replace(leading);
        let (identity, lease) = (&self.settings.identity, &self.lease);
        if leading && !was {
            tracing::info!(%identity, %lease, "became leader");
        } else if !leading && was {
            tracing::info!(%identity, %lease, %reason, "lost leadership");
        }
        was
    }

    /// Reads the Lease, bounded in time so a hung request cannot outlast the lease.
    async fn observe(&self) -> Observation {
        let api: Api<Lease> = Api::namespaced(self.client.clone(), &self.settings.namespace);
        let limit = read_timeout(self.settings.grace);
        match tokio::time::timeout(limit, api.get_opt(&self.settings.lease_name)).await {
            Err(_) => Observation::Unreadable(format!("no answer within {limit:?}")),
            Ok(Err(err)) => Observation::Unreadable(err.to_string()),
            Ok(Ok(None)) => Observation::Free("the Lease was deleted".into()),
            Ok(Ok(Some(lease))) => observation_of(&lease, &self.settings.identity),
        }
    }
}

/// What one read of the Lease showed, for the leader's [`Watchdog`].
#[derive(Debug, Clone, PartialEq)]
enum Observation {
    /// Held by this replica, last renewed at `renewed`.
    Held { renewed: SystemTime },
    /// Held by no one (released, or deleted); why.
    Free(String),
    /// Held by another replica, or unusable; why.
    Lost(String),
    /// The Lease could not be read; why.
    Unreadable(String),
}

fn observation_of(lease: &Lease, identity: &str) -> Observation {
    let spec = lease.spec.as_ref();
    match spec.and_then(|s| s.holder_identity.as_deref()) {
        None | Some("") => Observation::Free("the Lease has no holder".into()),
        Some(holder) if holder != identity => Observation::Lost(format!("the Lease is held by {holder}")),
        Some(_) => match spec.and_then(|s| s.renew_time.as_ref()) {
            Some(renewed) => Observation::Held { renewed: SystemTime::from(renewed.0) },
            None => Observation::Lost("the Lease names this replica but has no renewTime".into()),
        },
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Verdict {
    /// A live renewal is confirmed: this replica leads.
    Valid,
    /// Not confirmed yet (the manager is renewing a stale Lease, or the read failed); read again soon.
    Pending,
    /// Give up leadership, for this reason.
    StepDown(String),
}

/// The leader's own check that its renewals happen.
///
/// kube-lease-manager renews `grace` before expiry, and `grace` is also the clock skew tolerated
/// between replicas, so a standby may take over from `renewed + duration - grace` by its clock.
/// The watchdog reads the Lease a quarter of `grace` after each renewal is due, retries every
/// eighth of it, and gives up leadership at `renewed + duration - grace / 2` if it has not seen a
/// newer renewal by then: half the skew allowance, to leave the renewal time to complete.
#[derive(Debug, Clone)]
struct Watchdog {
    duration: Duration,
    grace: Duration,
    /// The latest `renewTime` read back, none before the first successful read.
    renewed: Option<SystemTime>,
    /// Whether a live renewal has been seen since the manager reported "leader".
    confirmed: bool,
    next_check: SystemTime,
}

impl Watchdog {
    /// The manager reported "leader" at `now`: read the Lease back at once.
    fn new(now: SystemTime, settings: &LeaderSettings) -> Watchdog {
        Watchdog {
            duration: settings.duration,
            grace: settings.grace,
            renewed: None,
            confirmed: false,
            next_check: now,
        }
    }

    fn observe(&mut self, now: SystemTime, observation: Observation) -> Verdict {
        let unreadable = match observation {
            Observation::Free(reason) | Observation::Lost(reason) => return Verdict::StepDown(reason),
            Observation::Held { renewed } => {
                self.renewed = Some(self.renewed.map_or(renewed, |seen| seen.max(renewed)));
                None
            }
            Observation::Unreadable(reason) => Some(reason),
        };
        let live = self.renewed.filter(|&renewed| now < renewed + self.duration - self.grace / 2);
        match (live, self.confirmed) {
            (Some(renewed), _) => {
                self.confirmed = true;
                let due = renewed + self.duration - self.grace + self.grace / 4;
                self.next_check = due.max(now + self.grace / 8);
                Verdict::Valid
            }
            (None, true) => {
                let since = self
                    .renewed
                    .and_then(|r| k8s_openapi::jiff::Timestamp::try_from(r).ok())
                    .map_or_else(|| "?".to_owned(), |t| t.to_string());
                let why = unreadable.map(|r| format!(" (cannot read the Lease: {r})")).unwrap_or_default();
                Verdict::StepDown(format!("no renewal seen since {since}, another replica may take the Lease now{why}"))
            }
            (None, false) => {
                self.next_check = now + self.grace / 8;
                Verdict::Pending
            }
        }
    }
}

/// How often a standby reads the Lease to notice it was released: half the grace, at least 0.5 s.
fn standby_poll(grace: Duration) -> Duration {
    (grace / 2).max(Duration::from_millis(500))
}

fn read_timeout(grace: Duration) -> Duration {
    (grace / 4).max(Duration::from_millis(250))
}

/// 1 s, 2 s, 4 s … up to 30 s after the `failures`-th failure in a row.
fn backoff(failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(5);
    Duration::from_secs(1u64 << exponent).min(MAX_BACKOFF)
}

/// The time from now until `at`, zero if past.
fn until(at: SystemTime) -> Duration {
    at.duration_since(SystemTime::now()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

    fn settings() -> LeaderSettings {
        LeaderSettings {
            namespace: "rehearsal-system".into(),
            lease_name: "rehearsal-operator".into(),
            identity: "op-a".into(),
            duration: Duration::from_secs(15),
            grace: Duration::from_secs(5),
        }
    }

    fn flag_of(s: &LeaderSettings) -> (&'static str, String) {
        match s.validate() {
            Err(err @ LeaderError::Setting { flag, .. }) => (flag, err.to_string()),
            other => panic!("expected a setting error, got {other:?}"),
        }
    }

    #[test]
    fn good_settings_and_defaults_pass() {
        settings().validate().expect("valid");
        let s = LeaderSettings::new("rehearsal-system", "rehearsal-operator", DEFAULT_DURATION);
        assert_eq!(s.grace, Duration::from_secs(5));
        s.validate().expect("defaults are valid");
        // The CLI's smallest duration still gets a usable grace.
        let s = LeaderSettings::new("ns", "lease", Duration::from_secs(2));
        assert_eq!(s.grace, Duration::from_secs(1));
        s.validate().expect("2 s / 1 s is valid");
    }

    #[test]
    fn bad_durations_name_their_flag() {
        let zero = LeaderSettings { duration: Duration::ZERO, ..settings() };
        let (flag, msg) = flag_of(&zero);
        assert_eq!(flag, "--lease-duration");
        assert_eq!(msg, "--lease-duration must be at least 1 second, got 0");

        let (flag, msg) = flag_of(&LeaderSettings { grace: Duration::ZERO, ..settings() });
        assert_eq!((flag, msg.contains("at least 1 second")), ("--lease-grace", true), "{msg}");

        for grace in [5, 6] {
            let s =
                LeaderSettings { duration: Duration::from_secs(5), grace: Duration::from_secs(grace), ..settings() };
            let (flag, msg) = flag_of(&s);
            assert_eq!(flag, "--lease-grace");
            assert!(msg.contains(&format!("({grace}s) must be shorter than --lease-duration (5s)")), "{msg}");
        }

        let (flag, msg) = flag_of(&LeaderSettings { duration: Duration::from_millis(1500), ..settings() });
        assert_eq!(flag, "--lease-duration");
        assert!(msg.contains("whole number of seconds, got 1.5s"), "{msg}");

        let s = LeaderSettings { duration: Duration::from_secs(MAX_DURATION_SECONDS + 1), ..settings() };
        assert_eq!(flag_of(&s).0, "--lease-duration");
    }

    #[test]
    fn bad_names_and_identities_name_their_flag() {
        for ns in ["", "Rehearsal", "a.b", "-a", &"a".repeat(64)] {
            assert_eq!(flag_of(&LeaderSettings { namespace: ns.into(), ..settings() }).0, "--namespace", "{ns:?}");
        }
        for name in ["", "Lease", "a_b", "a.", &"a".repeat(254)] {
            assert_eq!(
                flag_of(&LeaderSettings { lease_name: name.into(), ..settings() }).0,
                "--lease-name",
                "{name:?}"
            );
        }
        LeaderSettings { lease_name: "rehearsal.dev-leader".into(), ..settings() }.validate().expect("dots are fine");
        for identity in ["", "  ", "a\nb", &"a".repeat(MAX_IDENTITY_LEN + 1)] {
            let s = LeaderSettings { identity: identity.into(), ..settings() };
            assert_eq!(flag_of(&s).0, "--identity", "{identity:?}");
        }
    }

    #[test]
    fn default_identity_is_host_pid_and_a_random_part() {
        assert_eq!(identity_from(Some("op-7f9c\n"), 42, 0x1234_abcd), "op-7f9c-42-1234abcd");
        assert_eq!(identity_from(None, 1, 0xff), "rehearsal-operator-1-000000ff");
        assert_eq!(identity_from(Some("  "), 1, 0), "rehearsal-operator-1-00000000");
        assert!(identity_from(Some(&"h".repeat(500)), u32::MAX, u64::MAX).len() <= MAX_IDENTITY_LEN);

        let (a, b) = (default_identity(), default_identity());
        assert_ne!(a, b, "two processes (or calls) on one host must not share an identity");
        assert!(a.contains(&format!("-{}-", std::process::id())), "{a}");
        LeaderSettings { identity: a, ..settings() }.validate().expect("the default identity is valid");
    }

    fn lease(holder: Option<&str>, renewed: Option<SystemTime>) -> Lease {
        Lease {
            spec: Some(LeaseSpec {
                holder_identity: holder.map(Into::into),
                renew_time: renewed.map(|t| MicroTime(t.try_into().expect("a representable time"))),
                lease_duration_seconds: Some(15),
                ..LeaseSpec::default()
            }),
            ..Lease::default()
        }
    }

    #[test]
    fn lease_observations() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        assert_eq!(observation_of(&lease(Some("op-a"), Some(t)), "op-a"), Observation::Held { renewed: t });
        assert_eq!(
            observation_of(&lease(Some("op-b"), Some(t)), "op-a"),
            Observation::Lost("the Lease is held by op-b".into())
        );
        assert!(matches!(observation_of(&lease(None, None), "op-a"), Observation::Free(r) if r.contains("no holder")));
        assert!(matches!(observation_of(&Lease::default(), "op-a"), Observation::Free(_)));
        assert!(
            matches!(observation_of(&lease(Some("op-a"), None), "op-a"), Observation::Lost(r) if r.contains("renewTime"))
        );
    }

    #[test]
    fn watchdog_keeps_leadership_while_renewals_are_seen() {
        let s = settings(); // 15 s lease, renewed 5 s before expiry, so every 10 s
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut w = Watchdog::new(t0, &s);
        assert_eq!(w.next_check, t0, "reads the Lease back at once");

        assert_eq!(w.observe(ms(100), Observation::Held { renewed: t0 }), Verdict::Valid);
        // Next read: a quarter of the grace after the renewal due at 10 s.
        assert_eq!(w.next_check, ms(11_250));
        // Renewed on time: the next read moves a full period on.
        assert_eq!(w.observe(ms(11_250), Observation::Held { renewed: ms(10_000) }), Verdict::Valid);
        assert_eq!(w.next_check, ms(21_250));
        // A failed read before the deadline (renewed + 15 - 2.5 = 22.5 s) is retried soon.
        assert_eq!(w.observe(ms(21_300), Observation::Unreadable("timeout".into())), Verdict::Valid);
        assert_eq!(w.next_check, ms(21_925));
        // So is a read that does not show the renewal yet.
        assert_eq!(w.observe(ms(21_925), Observation::Held { renewed: ms(10_000) }), Verdict::Valid);
        assert_eq!(w.next_check, ms(22_550));
        assert_eq!(w.observe(ms(22_000), Observation::Held { renewed: ms(20_000) }), Verdict::Valid);
        assert_eq!(w.next_check, ms(31_250));
    }

    #[test]
    fn watchdog_waits_for_a_live_renewal_before_confirming() {
        // A fresh manager finds a stale Lease naming this replica, renewed 14 s ago: it says
        // "leader" before renewing, so the watchdog must not confirm until the renewal lands.
        let s = settings();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut w = Watchdog::new(ms(14_000), &s);
        assert_eq!(w.observe(ms(14_000), Observation::Held { renewed: t0 }), Verdict::Pending);
        assert_eq!(w.next_check, ms(14_625));
        assert_eq!(w.observe(ms(14_625), Observation::Unreadable("timeout".into())), Verdict::Pending);
        assert_eq!(w.observe(ms(15_250), Observation::Held { renewed: ms(15_100) }), Verdict::Valid);
        assert_eq!(w.next_check, ms(26_350));
    }

    #[test]
    fn watchdog_steps_down_before_a_standby_may_take_over() {
        let s = settings();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let confirmed = || {
            let mut w = Watchdog::new(t0, &s);
            assert_eq!(w.observe(t0, Observation::Held { renewed: t0 }), Verdict::Valid);
            w
        };

        let Verdict::StepDown(reason) =
            confirmed().observe(ms(12_500), Observation::Unreadable("connection refused".into()))
        else {
            panic!("kept leadership with no renewal seen for 12.5 s")
        };
        assert!(reason.contains("connection refused") && reason.contains("since 2027-01-15T08:00:00Z"), "{reason}");
        assert!(matches!(confirmed().observe(ms(12_499), Observation::Unreadable("x".into())), Verdict::Valid));

        // The Lease reads fine but the renewal never landed (a hung PATCH).
        assert!(matches!(confirmed().observe(ms(12_600), Observation::Held { renewed: t0 }), Verdict::StepDown(_)));

        // Taken, freed or deleted: at once, whatever the time, confirmed or not.
        assert_eq!(
            confirmed().observe(ms(1_000), Observation::Lost("the Lease is held by op-b".into())),
            Verdict::StepDown("the Lease is held by op-b".into())
        );
        assert!(matches!(Watchdog::new(t0, &s).observe(t0, Observation::Lost("gone".into())), Verdict::StepDown(_)));
        assert!(matches!(confirmed().observe(ms(1), Observation::Free("deleted".into())), Verdict::StepDown(_)));
    }

    #[test]
    fn backoff_doubles_up_to_thirty_seconds() {
        let waits: Vec<u64> = (1..=8).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
        assert_eq!(read_timeout(Duration::from_secs(5)), Duration::from_millis(1250));
        assert_eq!(read_timeout(Duration::from_secs(1)), Duration::from_millis(250));
        assert_eq!(standby_poll(Duration::from_secs(5)), Duration::from_millis(2500));
        assert_eq!(standby_poll(Duration::from_secs(1)), Duration::from_millis(500));
    }

    #[tokio::test]
    async fn an_unreachable_api_server_is_an_error_naming_the_lease() {
        // Port 9 (discard) on loopback: nothing listens, so the connection is refused at once.
        let config = kube::Config::new("http://127.0.0.1:9".parse().expect("a URL"));
        let client = Client::try_from(config).expect("a client");
        let err = elect(client.clone(), settings()).await.expect_err("no API server");
        assert!(matches!(err, LeaderError::Lease { .. }), "{err:?}");
        assert!(err.to_string().starts_with("cannot use Lease rehearsal-system/rehearsal-operator"), "{err}");

        // Settings are checked before any request.
        let bad = LeaderSettings { grace: Duration::from_secs(15), ..settings() };
        assert!(matches!(elect(client, bad).await, Err(LeaderError::Setting { flag: "--lease-grace", .. })));
    }

    /// A one-Lease API server for [`elect`]: GET, POST, and PATCH as a shallow merge of `spec`
    /// (null removes a field), which is all kube-lease-manager sends, plus a switch that makes
    /// every request fail with 500. No conflict detection: the replicas here never race.
    mod fake {
        use std::net::SocketAddr;
        use std::sync::Mutex;
        use std::sync::atomic::{AtomicBool, Ordering};

        use axum::Router;
        use axum::extract::State;
        use axum::http::StatusCode;
        use axum::routing::{get, post};
        use serde_json::{Value, json};

        #[derive(Default)]
        pub struct Fake {
            pub lease: Mutex<Option<Value>>,
            pub failing: AtomicBool,
            pub hanging: AtomicBool,
        }

        impl Fake {
            pub fn holder(&self) -> Option<String> {
                let lease = self.lease.lock().expect("not poisoned");
                lease.as_ref()?.pointer("/spec/holderIdentity")?.as_str().map(str::to_owned)
            }
        }

        type Reply = (StatusCode, String);

        fn status(code: StatusCode, reason: &str) -> Reply {
            let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": reason, "reason": reason, "code": code.as_u16()});
            (code, body.to_string())
        }

        /// The failure to answer with, after hanging until the client gives up if so switched.
        async fn fail(fake: &Fake) -> Option<Reply> {
            if fake.hanging.load(Ordering::SeqCst) {
                std::future::pending::<()>().await;
            }
            fake.failing.load(Ordering::SeqCst).then(|| status(StatusCode::INTERNAL_SERVER_ERROR, "InternalError"))
        }

        async fn read(State(fake): State<&'static Fake>) -> Reply {
            if let Some(reply) = fail(fake).await {
                return reply;
            }
            match &*fake.lease.lock().expect("not poisoned") {
                Some(lease) => (StatusCode::OK, lease.to_string()),
                None => status(StatusCode::NOT_FOUND, "NotFound"),
            }
        }

        async fn create(State(fake): State<&'static Fake>, body: String) -> Reply {
            if let Some(reply) = fail(fake).await {
                return reply;
            }
            let lease: Value = serde_json::from_str(&body).expect("a JSON Lease");
            *fake.lease.lock().expect("not poisoned") = Some(lease.clone());
            (StatusCode::CREATED, lease.to_string())
        }

        async fn patch(State(fake): State<&'static Fake>, body: String) -> Reply {
            if let Some(reply) = fail(fake).await {
                return reply;
            }
            let patch: Value = serde_json::from_str(&body).expect("a JSON patch");
            let mut guard = fake.lease.lock().expect("not poisoned");
            let Some(lease) = guard.as_mut() else { return status(StatusCode::NOT_FOUND, "NotFound") };
            if lease.get("spec").is_none_or(Value::is_null) {
                lease["spec"] = json!({});
            }
            if let (Some(spec), Some(Value::Object(changes))) = (lease["spec"].as_object_mut(), patch.get("spec")) {
                for (key, value) in changes {
                    if value.is_null() {
                        spec.remove(key);
                    } else {
                        spec.insert(key.clone(), value.clone());
                    }
                }
            }
            (StatusCode::OK, lease.to_string())
        }

        pub async fn start() -> (SocketAddr, &'static Fake) {
            // Leaked: one small struct per test, and 'static state keeps the handlers simple.
            let fake: &'static Fake = Box::leak(Box::default());
            let base = "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases";
            let app = Router::new()
                .route(base, post(create))
                .route(&format!("{base}/{{name}}"), get(read).patch(patch))
                .with_state(fake);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binds");
            let addr = listener.local_addr().expect("an address");
            tokio::spawn(async move { axum::serve(listener, app).await });
            (addr, fake)
        }
    }

    async fn becomes(rx: &mut watch::Receiver<bool>, want: bool, within: Duration) -> Duration {
        let start = std::time::Instant::now();
        tokio::time::timeout(within, rx.wait_for(|v| *v == want))
            .await
            .unwrap_or_else(|_| panic!("not {want} within {within:?}"))
            .expect("the election task is running");
        start.elapsed()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_leader_prompt_handover_and_step_down_on_api_errors_and_hangs() {
        let (addr, fake) = fake::start().await;
        let client =
            Client::try_from(kube::Config::new(format!("http://{addr}").parse().expect("a URL"))).expect("a client");
        // Renewal every 2 s; a standby polls every 0.5 s.
        let replica = |identity: &str| LeaderSettings {
            namespace: "ns".into(),
            lease_name: "lease".into(),
            identity: identity.into(),
            duration: Duration::from_secs(3),
            grace: Duration::from_secs(1),
        };

        let a = elect(client.clone(), replica("op-a")).await.expect("joins");
        let mut a_rx = a.subscribe();
        becomes(&mut a_rx, true, Duration::from_secs(3)).await;
        let b = elect(client.clone(), replica("op-b")).await.expect("joins");
        let mut b_rx = b.subscribe();

        // Over a renewal, a keeps the Lease and b stands by.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert!(a.is_leader() && !b.is_leader());
        assert_eq!(fake.holder().as_deref(), Some("op-a"));

        // A graceful stop: b takes over within its poll, not at a's lease expiry (up to 3 s).
        a.release().await.expect("released");
        assert!(!*a_rx.borrow(), "a still says leader after release");
        let took = becomes(&mut b_rx, true, Duration::from_secs(3)).await;
        assert!(took < Duration::from_millis(1500), "handover took {took:?}");
        assert_eq!(fake.holder().as_deref(), Some("op-b"));

        // The API server fails: b says "not leader" before its lease could pass to anyone.
        let lease_ends = || {
            let lease = fake.lease.lock().expect("not poisoned").clone().expect("a Lease");
            let renewed: Lease = serde_json::from_value(lease).expect("a Lease");
            let renewed = renewed.spec.and_then(|s| s.renew_time).expect("a renewTime");
            SystemTime::from(renewed.0) + Duration::from_secs(3)
        };
        fake.failing.store(true, std::sync::atomic::Ordering::SeqCst);
        let expiry = lease_ends();
        becomes(&mut b_rx, false, Duration::from_secs(4)).await;
        assert!(SystemTime::now() < expiry, "stepped down only after the lease expired");

        // It comes back: b, still named in the Lease, leads again.
        fake.failing.store(false, std::sync::atomic::Ordering::SeqCst);
        becomes(&mut b_rx, true, Duration::from_secs(6)).await;
        assert!(lease_ends() > SystemTime::now() + Duration::from_secs(1), "leading on a stale Lease");

        // Requests hang (no error for kube's 295 s): the watchdog steps down before expiry too.
        fake.hanging.store(true, std::sync::atomic::Ordering::SeqCst);
        let expiry = lease_ends();
        becomes(&mut b_rx, false, Duration::from_secs(4)).await;
        assert!(SystemTime::now() < expiry, "stepped down only after the lease expired");
        fake.hanging.store(false, std::sync::atomic::Ordering::SeqCst);
        becomes(&mut b_rx, true, Duration::from_secs(6)).await;
        b.release().await.expect("released");
        assert_eq!(fake.holder(), None);
    }
}
