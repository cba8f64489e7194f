//! Leader election on a `coordination.k8s.io/v1` Lease: one replica reconciles, the
//! others stand by and take over when it stops renewing.
//!
//! Why a module of our own rather than a crate: `kube-leader-election` 0.44 is built on
//! kube 4 (Herald is on kube 5), and `kube-lease-manager` 0.13 (kube 5) keeps reporting
//! "leader" while its renewals fail (it logs and backs off), whereas Herald needs a
//! leader that cannot renew to stop writing *before* its lease can expire. The protocol
//! is client-go's `leaderelection` with a Lease lock, in about 300 lines:
//!
//! - **Lease duration** (10 s): how long after its last renewal others wait before they
//!   take the lease. A standby measures it on its own monotonic clock from the moment it
//!   *observed* the record change, so clock skew between nodes does not matter.
//! - **Renew deadline** (6 s, less than the duration): a leader that has not renewed
//!   for this long gives up: [`Leadership::lost`] resolves, the caller drops its
//!   controllers at once (in-flight reconciles are cancelled at their next await) and
//!   the process exits non-zero for Kubernetes to restart it as a standby. Stepping down
//!   4 s before anyone else may take the lease is what guarantees that two replicas
//!   never write at the same time. Exiting (rather than dropping back to standby
//!   in-process) is client-go's choice too: it leaves no half-stopped state behind.
//!
//! Three things keep that margin real under load, each learnt from a leader that
//! stepped down 6 s after acquiring under the start-up burst:
//!
//! - the deadline is counted from the start of the write that won or renewed the lease
//!   (not from when the caller got round to holding it), and a timer fires *at* the
//!   deadline, whatever the renewal loop is doing;
//! - the elector runs in a task of its own ([`Elector::lead`]) with a client of its own
//!   (no shared in-flight limit), so renewals never queue behind reconciles;
//! - if the process has not stopped [`EXIT_GRACE`] after the deadline (a caller stuck
//!   in a long poll), the elector task exits the process itself, still 3 s before the
//!   lease can expire.
//! - **Retry period** (2 s): how often the leader renews and a standby looks again.
//!
//! A standby therefore takes over at most `duration + retry` (12 s) after the leader
//! died, and within one retry period of the leader releasing the lease on SIGTERM
//! ([`Elector::release`]: holder cleared, after the controllers stopped — at most the
//! 5 s shutdown grace of `run`), which is how a rolling update hands over.
//!
//! Writes use the Lease's `resourceVersion` (optimistic concurrency): of two replicas
//! that race for an expired lease, the API server lets exactly one update win.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::oneshot;

/// How long after stepping down the elector waits for the process to stop on its own
/// before it exits it (code 1): well inside the 4 s between the renew deadline and the
/// lease's expiry.
pub const EXIT_GRACE: Duration = Duration::from_secs(1);
use prometheus_client::registry::Registry;

/// How the lease is named and timed.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    /// The Lease's name.
    pub name: String,
    /// The Lease's namespace (the operator's own, from the downward API).
    pub namespace: String,
    /// This replica's identity, written as `holderIdentity` (the pod name).
    pub identity: String,
    /// How long a lease stays valid after its last renewal.
    pub lease_duration: Duration,
    /// How long a leader keeps trying to renew before it steps down; below
    /// `lease_duration`, so it steps down before anyone may take over.
    pub renew_deadline: Duration,
    /// Interval of renewals (leader) and of attempts to acquire (standby).
    pub retry_period: Duration,
}

impl LeaseConfig {
    /// A lease with Herald's timings: 10 s duration, 6 s renew deadline, 2 s retry.
    pub fn new(
        name: impl Into<String>,
        namespace: impl Into<String>,
        identity: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            namespace: namespace.into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(10),
            renew_deadline: Duration::from_secs(6),
            retry_period: Duration::from_secs(2),
        }
    }

    /// The same lease with other timings (`--lease-duration-seconds` and friends), when
    /// they keep the one order that makes two leaders impossible: a leader retries
    /// within its renew deadline, and steps down before the lease may be taken over.
    pub fn with_timings(
        self,
        lease_duration: Duration,
        renew_deadline: Duration,
        retry_period: Duration,
    ) -> Result<Self, String> {
        if retry_period.is_zero()
            || retry_period >= renew_deadline
            || renew_deadline >= lease_duration
        {
            return Err(format!(
                "lease timings must satisfy 0 < retry period ({}s) < renew deadline ({}s) < lease duration ({}s): \
                 a leader must step down before its lease can be taken over",
                retry_period.as_secs(),
                renew_deadline.as_secs(),
                lease_duration.as_secs()
            ));
        }
        Ok(Self {
            lease_duration,
            renew_deadline,
            retry_period,
            ..self
        })
    }
}

/// This process's identity when none is given: `POD_NAME` in a pod, else host and pid.
pub fn default_identity() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "herald".to_owned());
    format!("{host}-{}", std::process::id())
}

/// Registers `herald_leader` (1 while this replica leads, 0 on standby).
pub fn register(registry: &mut Registry) -> Gauge {
    let gauge = Gauge::default();
    registry.register(
        "leader",
        "1 while this replica holds the leader Lease and reconciles; 0 on standby",
        gauge.clone(),
    );
    gauge
}

/// Why leadership ended or could not be sought.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error(
        "could not renew Lease {namespace}/{name} for {deadline:?}; stepped down before it could expire"
    )]
    RenewDeadline {
        namespace: String,
        name: String,
        deadline: Duration,
    },
    #[error("the leader election task stopped unexpectedly")]
    Stopped,
    #[error("Lease {namespace}/{name} was taken over by {holder:?}")]
    Taken {
        namespace: String,
        name: String,
        holder: Option<String>,
    },
}

/// The part of a Lease that the decision reads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    /// `holderIdentity` (`None` or empty: released).
    pub holder: Option<String>,
    /// `renewTime` as written (compared for change only, never against our clock).
    pub renew_time: Option<String>,
    /// `leaseTransitions`.
    pub transitions: i32,
    /// `leaseDurationSeconds`, if set.
    pub duration_seconds: Option<i32>,
}

impl Record {
    fn of(lease: &Lease) -> Self {
        let spec = lease.spec.clone().unwrap_or_default();
        Self {
            holder: spec.holder_identity.filter(|h| !h.is_empty()),
            renew_time: spec.renew_time.map(|t| t.0.to_string()),
            transitions: spec.lease_transitions.unwrap_or(0),
            duration_seconds: spec.lease_duration_seconds,
        }
    }
}

/// What to do with the lease as it is now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// No Lease exists: create it, held by us.
    Create,
    /// Free (released) or expired: take it.
    Acquire,
    /// Ours: renew it.
    Renew,
    /// Held by another, still valid: wait.
    StandBy { holder: String },
}

/// The pure decision. `record` is the lease as read now (`None`: absent); `observed_at`
/// is when this replica first saw this exact record (holder, renewTime, transitions):
/// the lease expires `duration` after that instant, measured on our monotonic clock.
pub fn decide(
    record: Option<&Record>,
    observed_at: Instant,
    now: Instant,
    identity: &str,
    default_duration: Duration,
) -> Decision {
    let Some(record) = record else {
        return Decision::Create;
    };
    let Some(holder) = record.holder.as_deref() else {
        return Decision::Acquire;
    };
    if holder == identity {
        return Decision::Renew;
    }
    let duration = record
        .duration_seconds
        .and_then(|s| u64::try_from(s).ok())
        .map(Duration::from_secs)
        .unwrap_or(default_duration);
    if now.saturating_duration_since(observed_at) >= duration {
        Decision::Acquire
    } else {
        Decision::StandBy {
            holder: holder.to_owned(),
        }
    }
}

/// One replica's side of the election.
pub struct Elector {
    api: Api<Lease>,
    config: LeaseConfig,
    gauge: Gauge,
    /// The last record read and when it was first seen unchanged.
    observed: Option<(Record, Instant)>,
    /// When the write that last won or renewed the lease was started: the renew
    /// deadline counts from here (others count the lease's duration from later).
    last_renewal: Instant,
}

/// The outcome of one attempt.
enum Attempt {
    Leading,
    StandingBy(String),
}

impl Elector {
    /// An elector for `config`'s Lease; `gauge` is `herald_leader`.
    pub fn new(client: Client, config: LeaseConfig, gauge: Gauge) -> Self {
        gauge.set(0);
        Self {
            api: Api::namespaced(client, &config.namespace),
            config,
            gauge,
            observed: None,
            last_renewal: Instant::now(),
        }
    }

    /// This replica's identity.
    pub fn identity(&self) -> &str {
        &self.config.identity
    }

    /// Returns once this replica holds the lease. Errors reaching the API server are
    /// logged and retried: a standby that cannot see the lease simply stays standby.
    pub async fn acquire(&mut self) {
        let mut last_holder: Option<String> = None;
        loop {
            let started = Instant::now();
            match self.try_once().await {
                Ok(Attempt::Leading) => {
                    self.last_renewal = started;
                    self.gauge.set(1);
                    tracing::info!(lease = %self.config.name, identity = %self.config.identity, "acquired the leader lease; starting the controllers");
                    return;
                }
                Ok(Attempt::StandingBy(holder)) => {
                    if last_holder.as_deref() != Some(holder.as_str()) {
                        tracing::info!(lease = %self.config.name, %holder, "standing by: another replica leads");
                        last_holder = Some(holder);
                    }
                }
                Err(e) => {
                    tracing::warn!(lease = %self.config.name, error = %crate::error_chain(&e), "cannot read or take the leader lease; retrying");
                }
            }
            tokio::time::sleep(self.config.retry_period).await;
        }
    }

    /// Renews the lease every retry period while this replica leads. Returns why
    /// leadership ended: the lease was taken, or the renew deadline passed without a
    /// successful renewal — returned *at* the deadline, even while a renewal request is
    /// still waiting for an answer. The caller must stop writing at once.
    pub async fn hold(&mut self) -> LeaderError {
        loop {
            let deadline = self.last_renewal + self.config.renew_deadline;
            let renewal = async {
                tokio::time::sleep(self.config.retry_period).await;
                let started = Instant::now();
                (started, self.try_once().await)
            };
            let outcome = tokio::select! {
                biased;
                () = tokio::time::sleep_until(deadline.into()) => None,
                outcome = renewal => Some(outcome),
            };
            let Some((started, attempt)) = outcome else {
                return self.deadline_passed();
            };
            match attempt {
                Ok(Attempt::Leading) => self.last_renewal = started,
                Ok(Attempt::StandingBy(holder)) => {
                    self.gauge.set(0);
                    return LeaderError::Taken {
                        namespace: self.config.namespace.clone(),
                        name: self.config.name.clone(),
                        holder: Some(holder),
                    };
                }
                Err(e) => {
                    tracing::warn!(lease = %self.config.name, error = %crate::error_chain(&e), "cannot renew the leader lease; retrying until the renew deadline");
                }
            }
        }
    }

    fn deadline_passed(&self) -> LeaderError {
        self.gauge.set(0);
        LeaderError::RenewDeadline {
            namespace: self.config.namespace.clone(),
            name: self.config.name.clone(),
            deadline: self.config.renew_deadline,
        }
    }

    /// Moves the elector into a task of its own that holds the lease (call after
    /// [`Elector::acquire`]). The returned [`Leadership`] tells when it is lost and
    /// hands it over on shutdown.
    pub fn lead(mut self) -> Leadership {
        let (lost_tx, lost_rx) = oneshot::channel();
        let (release_tx, release_rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            tokio::select! {
                lost = self.hold() => {
                    tracing::error!(lease = %self.config.name, error = %lost, "lost the leader lease; stepping down: stopping the controllers");
                    let _ = lost_tx.send(lost);
                    // The caller drops its controllers and returns at once; if it has
                    // not after the grace, nothing it still does may reach the API
                    // server once the lease can expire: end the process from here.
                    tokio::time::sleep(EXIT_GRACE).await;
                    tracing::error!(lease = %self.config.name, "lost the leader lease and the controllers did not stop within {EXIT_GRACE:?}; exiting");
                    std::process::exit(1);
                }
                _ = release_rx => self.release().await,
            }
        });
        Leadership {
            lost: lost_rx,
            release: release_tx,
            task,
        }
    }

    /// Gives the lease up (holder cleared) so that a standby takes over at its next
    /// retry instead of waiting for expiry. Called on a clean shutdown, after the
    /// controllers stopped. Best effort: a failure only means the standby waits.
    pub async fn release(&mut self) {
        self.gauge.set(0);
        let result = async {
            let Some(mut lease) = self.api.get_opt(&self.config.name).await? else {
                return Ok(false);
            };
            if Record::of(&lease).holder.as_deref() != Some(self.config.identity.as_str()) {
                return Ok(false);
            }
            let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
            spec.holder_identity = None;
            spec.lease_duration_seconds = Some(1);
            spec.renew_time = Some(MicroTime(Timestamp::now()));
            self.api
                .replace(&self.config.name, &PostParams::default(), &lease)
                .await?;
            Ok::<bool, kube::Error>(true)
        }
        .await;
        match result {
            Ok(true) => tracing::info!(lease = %self.config.name, "released the leader lease"),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(lease = %self.config.name, error = %crate::error_chain(&e), "could not release the leader lease; a standby takes over when it expires");
            }
        }
    }

    /// One read-decide-write round.
    async fn try_once(&mut self) -> Result<Attempt, kube::Error> {
        let current = self.api.get_opt(&self.config.name).await?;
        let record = current.as_ref().map(Record::of);
        let now = Instant::now();
        let observed_at = match (&self.observed, &record) {
            (Some((seen, at)), Some(r)) if seen == r => *at,
            _ => now,
        };
        self.observed = record.clone().map(|r| (r, observed_at));
        let decision = decide(
            record.as_ref(),
            observed_at,
            now,
            &self.config.identity,
            self.config.lease_duration,
        );
        let duration_seconds = i32::try_from(self.config.lease_duration.as_secs()).unwrap_or(10);
        let stamp = Some(MicroTime(Timestamp::now()));
        match (decision, current) {
            (Decision::StandBy { holder }, _) => Ok(Attempt::StandingBy(holder)),
            (Decision::Create, _) | (_, None) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.config.name.clone()),
                        namespace: Some(self.config.namespace.clone()),
                        labels: Some(
                            [("app.kubernetes.io/part-of".to_owned(), "herald".to_owned())].into(),
                        ),
                        ..ObjectMeta::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(self.config.identity.clone()),
                        lease_duration_seconds: Some(duration_seconds),
                        acquire_time: stamp.clone(),
                        renew_time: stamp,
                        lease_transitions: Some(0),
                        ..LeaseSpec::default()
                    }),
                };
                match self.api.create(&PostParams::default(), &lease).await {
                    Ok(_) => Ok(Attempt::Leading),
                    // Another replica created it first: look again next round.
                    Err(kube::Error::Api(s)) if s.code == 409 => {
                        Ok(Attempt::StandingBy("(just created)".to_owned()))
                    }
                    Err(e) => Err(e),
                }
            }
            (decision, Some(mut lease)) => {
                let taking = decision == Decision::Acquire;
                let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
                if taking {
                    spec.acquire_time = stamp.clone();
                    spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
                }
                spec.holder_identity = Some(self.config.identity.clone());
                spec.lease_duration_seconds = Some(duration_seconds);
                spec.renew_time = stamp;
                // `lease` carries the resourceVersion we read: if anyone wrote since,
                // the API server refuses (409) and we decide again next round.
                match self
                    .api
                    .replace(&self.config.name, &PostParams::default(), &lease)
                    .await
                {
                    Ok(_) => Ok(Attempt::Leading),
                    Err(kube::Error::Api(s)) if s.code == 409 => {
                        Ok(Attempt::StandingBy("(conflict)".to_owned()))
                    }
                    Err(e) => Err(e),
                }
            }
        }
    }
}

/// A lease held by an elector running in its own task ([`Elector::lead`]).
pub struct Leadership {
    lost: oneshot::Receiver<LeaderError>,
    release: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Leadership {
    /// Resolves when the lease is lost (taken, or not renewed in time): stop writing.
    pub async fn lost(&mut self) -> LeaderError {
        match (&mut self.lost).await {
            Ok(lost) => lost,
            // The task ended without a verdict: it can only have panicked. Without an
            // elector nobody renews, so this replica is no longer leader either.
            Err(_) => LeaderError::Stopped,
        }
    }

    /// Hands the lease over (holder cleared, see [`Elector::release`]) once the
    /// controllers stopped; waits for that write.
    pub async fn release(self) {
        let _ = self.release.send(());
        let _ = self.task.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEN: Duration = Duration::from_secs(10);

    fn held_by(holder: &str) -> Record {
        Record {
            holder: Some(holder.to_owned()),
            renew_time: Some("2026-01-01T00:00:00Z".to_owned()),
            transitions: 3,
            duration_seconds: Some(10),
        }
    }

    #[test]
    fn no_lease_is_created() {
        let t = Instant::now();
        assert_eq!(decide(None, t, t, "a", TEN), Decision::Create);
    }

    #[test]
    fn a_released_lease_is_taken_at_once() {
        let t = Instant::now();
        let released = Record {
            holder: None,
            ..held_by("b")
        };
        assert_eq!(decide(Some(&released), t, t, "a", TEN), Decision::Acquire);
    }

    #[test]
    fn our_own_lease_is_renewed() {
        let t = Instant::now();
        assert_eq!(decide(Some(&held_by("a")), t, t, "a", TEN), Decision::Renew);
        // Even when it looks expired: a restarted container with the same pod name.
        assert_eq!(
            decide(Some(&held_by("a")), t, t + 3 * TEN, "a", TEN),
            Decision::Renew
        );
    }

    #[test]
    fn another_holders_valid_lease_means_standing_by() {
        let t = Instant::now();
        let d = decide(Some(&held_by("b")), t, t + Duration::from_secs(9), "a", TEN);
        assert_eq!(
            d,
            Decision::StandBy {
                holder: "b".to_owned()
            }
        );
    }

    #[test]
    fn a_lease_unchanged_for_its_duration_has_expired() {
        let t = Instant::now();
        assert_eq!(
            decide(Some(&held_by("b")), t, t + TEN, "a", TEN),
            Decision::Acquire
        );
    }

    #[test]
    fn the_leases_own_duration_wins_over_the_default() {
        let t = Instant::now();
        let short = Record {
            duration_seconds: Some(1),
            ..held_by("b")
        };
        assert_eq!(
            decide(Some(&short), t, t + Duration::from_secs(1), "a", TEN),
            Decision::Acquire
        );
        let unset = Record {
            duration_seconds: None,
            ..held_by("b")
        };
        assert!(matches!(
            decide(Some(&unset), t, t + Duration::from_secs(9), "a", TEN),
            Decision::StandBy { .. }
        ));
    }

    #[test]
    fn other_timings_only_in_the_order_that_excludes_two_leaders() {
        let s = Duration::from_secs;
        let base = || LeaseConfig::new("l", "ns", "a");
        let ok = base().with_timings(s(30), s(20), s(5)).unwrap();
        assert_eq!(
            (ok.lease_duration, ok.renew_deadline, ok.retry_period),
            (s(30), s(20), s(5))
        );
        assert_eq!(ok.name, "l");
        for (d, r, p) in [(10, 10, 2), (10, 12, 2), (10, 6, 6), (10, 6, 0), (0, 0, 0)] {
            let e = base().with_timings(s(d), s(r), s(p)).unwrap_err();
            assert!(e.contains("must step down"), "{d} {r} {p}: {e}");
        }
    }

    #[test]
    fn the_leader_steps_down_before_anyone_may_take_over() {
        let c = LeaseConfig::new("l", "ns", "a");
        assert!(c.renew_deadline < c.lease_duration);
        assert!(c.retry_period < c.renew_deadline);
        // Worst-case takeover after the leader dies: it renewed just before, a standby
        // sees it expire `duration` later and tries within one retry period.
        assert!(c.lease_duration + c.retry_period <= Duration::from_secs(15));
    }
}
