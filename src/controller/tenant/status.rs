//! The pure part of a Tenant reconcile that turns the decision and what was observed
//! into the status: phase, conditions (kstatus-compatible Ready / Reconciling /
//! Stalled, plus DPASigned, ResidencyCompliant, RetentionApplied, PurgesCurrent,
//! SendersAvailable), and the printer-column fields.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::build::namespace_name;
use super::decide::{Decision, Hold};
use crate::api::v1alpha1::conditions::{self as types, reason};
use crate::api::v1alpha1::{CategoryPurge, Tenant, TenantPhase, TenantStatus};
use crate::conditions::{Desired, merge};
use crate::retention::Category;

/// What the reconcile saw of the sender Deployment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct SendersObserved {
    /// Replicas the Deployment wants (its spec).
    pub desired: i32,
    /// Ready replicas on the current template.
    pub ready: i32,
    /// Replicas updated to the current template.
    pub updated: i32,
    /// Replicas in total, old and new.
    pub total: i32,
    /// The Deployment controller has seen the latest spec.
    pub generation_observed: bool,
}

impl SendersObserved {
    /// The rollout is finished: every pod is on the current template and ready.
    pub fn rolled_out(&self) -> bool {
        self.generation_observed
            && self.updated == self.desired
            && self.ready == self.desired
            && self.total == self.desired
    }
}

/// A sender pod found on a node whose region the tenant does not allow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The pod's name.
    pub pod: String,
    /// The node it was on.
    pub node: String,
    /// The node's region label (`None`: the node has no region label).
    pub region: Option<String>,
}

/// A purge CronJob as found in the tenant namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PurgeObserved {
    /// The category it purges.
    pub category: Category,
    /// When the CronJob was created.
    pub created: Option<Timestamp>,
    /// Its status.lastSuccessfulTime.
    pub last_success: Option<Timestamp>,
}

/// Everything observed in this reconcile.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// The sender Deployment's state (`None`: it does not exist yet).
    pub senders: Option<SendersObserved>,
    /// Pods found outside the allowed regions (each has been evicted).
    pub violations: Vec<Violation>,
    /// The purge CronJobs found (none for a terminated tenant).
    pub purges: Vec<PurgeObserved>,
    /// The ChannelBindings whose first credential the first sender start waits for.
    pub awaiting: Vec<String>,
    /// The tenant namespace exists but Herald did not create it (its name): nothing is
    /// built in it, and a person must resolve the clash.
    pub namespace_not_owned: Option<String>,
    /// Why a Secret the tenant names (signing secret, export token) is not read: one
    /// message per Secret that exists but is not labelled for the tenant.
    pub unowned_secrets: Vec<String>,
}

/// The purge of a category that is overdue: since when its clock runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Overdue {
    /// The category.
    pub category: Category,
    /// Its retention period in days.
    pub period_days: i32,
    /// The later of its last success and its CronJob's creation.
    pub since: Timestamp,
}

/// Each purged category's record: its period in force, and its last success as its
/// CronJob reports it, or as last recorded (a recreated CronJob forgets its history).
pub fn purges(
    decision: &Decision,
    observed: &Observed,
    current: &TenantStatus,
) -> Vec<CategoryPurge> {
    Category::PURGED
        .iter()
        .map(|c| {
            let found = observed.purges.iter().find(|p| p.category == *c);
            let recorded = current
                .purges
                .iter()
                .find(|p| p.category == c.key())
                .and_then(|p| p.last_success.clone());
            CategoryPurge {
                category: c.key().to_owned(),
                period_days: decision.periods.days(*c),
                last_success: found.and_then(|p| p.last_success).map(Time).or(recorded),
            }
        })
        .collect()
}

/// The categories whose purge has not succeeded within their period: the CronJob has
/// existed (or last succeeded) longer ago than the period, with no success since. A
/// category whose CronJob is not there yet is not overdue: it is being created.
pub fn overdue(records: &[CategoryPurge], observed: &Observed, now: Timestamp) -> Vec<Overdue> {
    records
        .iter()
        .filter_map(|r| {
            let found = observed
                .purges
                .iter()
                .find(|p| p.category.key() == r.category)?;
            let since = match (r.last_success.as_ref().map(|t| t.0), found.created) {
                (Some(a), Some(b)) => a.max(b),
                (a, b) => a.or(b)?,
            };
            let period = SignedDuration::from_hours(i64::from(r.period_days) * 24);
            let due = since.checked_add(period).ok()?;
            (now > due).then_some(Overdue {
                category: found.category,
                period_days: r.period_days,
                since,
            })
        })
        .collect()
}

/// `ResidencyCompliant` from the decision's refused regions and the pods found (and
/// evicted) outside the allowed ones: the same for a paused tenant, whose pods are
/// still checked and evicted (a pause never holds residency).
pub fn residency(decision: &Decision, violations: &[Violation]) -> Desired {
    if !decision.refusals.is_empty() {
        let why: Vec<String> = decision.refusals.iter().map(ToString::to_string).collect();
        Desired::no(
            types::RESIDENCY_COMPLIANT,
            reason::REGION_NOT_ALLOWED,
            format!(
                "{}; no sender runs until every region is allowed",
                why.join("; ")
            ),
        )
    } else if !violations.is_empty() {
        let pods: Vec<String> = violations
            .iter()
            .map(|v| {
                format!(
                    "{} on {} ({})",
                    v.pod,
                    v.node,
                    v.region.as_deref().unwrap_or("no region label")
                )
            })
            .collect();
        Desired::no(
            types::RESIDENCY_COMPLIANT,
            reason::POD_EVICTED,
            format!(
                "evicted sender pods running outside the allowed regions: {}",
                pods.join(", ")
            ),
        )
    } else {
        Desired::yes(
            types::RESIDENCY_COMPLIANT,
            reason::RECONCILED,
            format!(
                "senders may run only in {}",
                decision.allowed_regions.join(", ")
            ),
        )
    }
}

/// The status of `tenant` given `decision` and `observed`, at `now`.
pub fn compute(
    tenant: &Tenant,
    decision: &Decision,
    observed: &Observed,
    now: Timestamp,
) -> TenantStatus {
    let current = tenant.status.clone().unwrap_or_default();
    let name = tenant.metadata.name.clone().unwrap_or_default();
    let senders = observed.senders.clone().unwrap_or_default();
    let rolled_out = observed.senders.is_some() && senders.rolled_out();

    let dpa = match &tenant.spec.contract.dpa {
        Some(dpa) if !decision.dpa_signed => Desired::no(
            types::DPA_SIGNED,
            reason::DPA_SIGNED_IN_FUTURE,
            format!(
                "DPA {} is dated {}, in the future: it does not count as signed until then",
                dpa.reference, dpa.signed_at.0
            ),
        ),
        Some(dpa) => Desired::yes(
            types::DPA_SIGNED,
            reason::DPA_ON_RECORD,
            format!("DPA {} is on record", dpa.reference),
        ),
        None => Desired::no(
            types::DPA_SIGNED,
            reason::DPA_MISSING,
            "no signed DPA on record (spec.contract.dpa): no sender runs without one",
        ),
    };

    let residency = residency(decision, &observed.violations);

    let policy = &tenant.spec.retention_policy_ref.name;
    let retention = if !decision.retention_longer.is_empty() && decision.retention_found {
        let why: Vec<String> = decision
            .retention_longer
            .iter()
            .map(ToString::to_string)
            .collect();
        Desired::no(
            types::RETENTION_APPLIED,
            reason::RETENTION_LONGER_THAN_PLATFORM,
            format!(
                "RetentionPolicy {policy} may shorten the platform's periods, never lengthen them: {}",
                why.join("; ")
            ),
        )
    } else if decision.retention_found {
        Desired::yes(
            types::RETENTION_APPLIED,
            reason::RECONCILED,
            format!(
                "RetentionPolicy {policy} applied: data erased within {} days of termination",
                decision.periods.delete_within_days
            ),
        )
    } else {
        Desired::no(
            types::RETENTION_APPLIED,
            reason::RETENTION_POLICY_NOT_FOUND,
            format!(
                "RetentionPolicy {policy} does not exist; the platform's default periods apply until it does"
            ),
        )
    };

    let (hold_reason, hold_message) = match decision.hold {
        Some(Hold::Terminated) => (
            reason::CONTRACT_TERMINATED,
            "the contract is terminated: senders are stopped",
        ),
        Some(Hold::Suspended) => (
            reason::CONTRACT_SUSPENDED,
            "the contract is suspended: senders are stopped, the stack is kept",
        ),
        Some(Hold::NoDpa) => (reason::DPA_MISSING, "no signed DPA: senders are held at 0"),
        Some(Hold::Residency) => (
            reason::REGION_NOT_ALLOWED,
            "a requested region is not allowed: senders are held at 0",
        ),
        None => ("", ""),
    };
    let senders_cond = if decision.hold.is_some() {
        Desired::no(types::SENDERS_AVAILABLE, hold_reason, hold_message)
    } else if rolled_out {
        Desired::yes(
            types::SENDERS_AVAILABLE,
            reason::RECONCILED,
            format!("{}/{} senders ready", senders.ready, decision.replicas),
        )
    } else if observed.senders.is_none() && !observed.awaiting.is_empty() {
        Desired::no(
            types::SENDERS_AVAILABLE,
            reason::PROGRESSING,
            format!(
                "waiting for the first credential of ChannelBinding {}: the senders start once with every channel",
                observed.awaiting.join(", ")
            ),
        )
    } else {
        Desired::no(
            types::SENDERS_AVAILABLE,
            reason::PROGRESSING,
            format!(
                "{}/{} senders ready on the current version",
                senders.ready.min(senders.updated),
                decision.replicas
            ),
        )
    };

    let secrets_owned = if observed.unowned_secrets.is_empty() {
        Desired::yes(
            types::SECRETS_OWNED,
            reason::RECONCILED,
            format!("no Secret the tenant names lacks the label herald.dev/tenant={name}"),
        )
    } else {
        Desired::no(
            types::SECRETS_OWNED,
            reason::SOURCE_NOT_OWNED_BY_TENANT,
            format!(
                "{}; nothing is signed or sent with it",
                observed.unowned_secrets.join("; ")
            ),
        )
    };

    // Purges run while the contract is active or suspended; once it is terminated the
    // erasure takes over, and the last record is kept as it was.
    let terminated = decision.hold == Some(Hold::Terminated);
    let purge_records = if terminated {
        current.purges.clone()
    } else {
        purges(decision, observed, &current)
    };
    let late = if terminated {
        Vec::new()
    } else {
        overdue(&purge_records, observed, now)
    };
    let purges_current = (!terminated).then(|| {
        if late.is_empty() {
            Desired::yes(
                types::PURGES_CURRENT,
                reason::RECONCILED,
                "every category's purge runs daily and has succeeded within its retention period",
            )
        } else {
            let what: Vec<String> = late
                .iter()
                .map(|o| {
                    format!(
                        "{} (period {} days, no success since {})",
                        o.category.key(),
                        o.period_days,
                        o.since
                    )
                })
                .collect();
            Desired::no(
                types::PURGES_CURRENT,
                reason::PURGE_OVERDUE,
                format!(
                    "purges overdue: {}; data older than the period may remain",
                    what.join(", ")
                ),
            )
        }
    });

    // Stalled: progress needs a person to change something. Reconciling: Herald is
    // still converging and will finish by itself.
    let stalled = match decision.hold {
        _ if observed.namespace_not_owned.is_some() => Some((
            reason::NAMESPACE_NOT_OWNED,
            format!(
                "namespace {} exists but Herald did not create it (no app.kubernetes.io/managed-by=herald label and owner reference to this Tenant): Herald does not adopt it and writes nothing in it; remove it or rename the Tenant",
                observed.namespace_not_owned.as_deref().unwrap_or_default()
            ),
        )),
        Some(Hold::NoDpa) => Some((
            reason::DPA_MISSING,
            "waiting for a signed DPA (spec.contract.dpa)".to_owned(),
        )),
        Some(Hold::Residency) => Some((
            reason::REGION_NOT_ALLOWED,
            "waiting for spec.residency to name only allowed regions".to_owned(),
        )),
        _ if !decision.retention_found => Some((
            reason::RETENTION_POLICY_NOT_FOUND,
            format!("waiting for RetentionPolicy {policy}"),
        )),
        _ if !observed.unowned_secrets.is_empty() => Some((
            reason::SOURCE_NOT_OWNED_BY_TENANT,
            format!(
                "waiting for the Secrets the tenant names to be labelled herald.dev/tenant={name}"
            ),
        )),
        _ if !decision.retention_longer.is_empty() => Some((
            reason::RETENTION_LONGER_THAN_PLATFORM,
            format!(
                "waiting for RetentionPolicy {policy} to ask for no period longer than the platform's"
            ),
        )),
        // A purge that has not succeeded within its period does not recover by
        // waiting (its CronJob fails or never runs): data may be kept too long, and
        // a person must look. PurgesCurrent says which categories.
        _ if !late.is_empty() => Some((
            reason::PURGE_OVERDUE,
            format!(
                "retention purges overdue for {}: see the PurgesCurrent condition and the herald-purge CronJobs",
                late.iter()
                    .map(|o| o.category.key())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
        _ => None,
    };
    let converging = !rolled_out || !observed.violations.is_empty();
    let reconciling = stalled.is_none() && converging;

    let ready = match (&stalled, decision.hold) {
        (Some((r, m)), _) => Desired::no(types::READY, r, m.clone()),
        (None, Some(Hold::Terminated)) => {
            Desired::no(types::READY, reason::CONTRACT_TERMINATED, hold_message)
        }
        (None, _) if reconciling => {
            Desired::no(types::READY, reason::PROGRESSING, "the stack is converging")
        }
        (None, Some(Hold::Suspended)) => {
            Desired::yes(types::READY, reason::CONTRACT_SUSPENDED, hold_message)
        }
        (None, _) => Desired::yes(
            types::READY,
            reason::RECONCILED,
            "the stack runs as specified",
        ),
    };

    let mut desired = vec![
        ready,
        crate::conditions::stalled(stalled.clone()),
        crate::conditions::reconciling(reconciling.then(|| {
            (
                reason::PROGRESSING,
                "rolling out the senders or correcting residency".to_owned(),
            )
        })),
        dpa,
        residency,
        retention,
        senders_cond,
        secrets_owned,
    ];
    desired.extend(purges_current);
    let generation = tenant.metadata.generation;
    let conditions: Vec<Condition> = merge(&current.conditions, &desired, generation, now);

    let phase = match decision.hold {
        Some(Hold::Terminated) => TenantPhase::Terminating,
        Some(Hold::Suspended) => TenantPhase::Suspended,
        Some(Hold::NoDpa | Hold::Residency) => TenantPhase::Pending,
        None => TenantPhase::Active,
    };

    TenantStatus {
        observed_generation: generation,
        conditions,
        phase: Some(phase),
        namespace: Some(namespace_name(&name)),
        regions: Some(decision.allowed_regions.join(",")),
        senders_ready: Some(format!(
            "{}/{}",
            senders.ready.min(senders.updated),
            decision.replicas
        )),
        termination_accepted_at: current.termination_accepted_at,
        deletion_deadline: current.deletion_deadline,
        erasure: current.erasure,
        purges: purge_records,
        last_handled_reconcile_at: tenant
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(crate::controller::RECONCILE_REQUESTED_ANNOTATION))
            .cloned(),
        // The Subprocessor and BreachNotice controllers', never written from here (see
        // publish_status).
        subprocessor_notices: Vec::new(),
        breach_notices: Vec::new(),
    }
}

/// The status of a paused tenant at `now`, or `None` when the published one already
/// says so for the current generation (nothing to write).
///
/// What kstatus readers (Flux's `wait`, `kubectl wait`) and Argo CD need from it:
/// `observedGeneration` follows the spec while paused, so a spec change does not read
/// as "not observed yet" forever (Herald has observed it and chosen not to act: the
/// Paused condition says the spec is applied when the pause is lifted). A tenant
/// paused before its first reconcile was never built: Reconciling=True says it is
/// not Current, where an empty status would read as done.
///
/// A pause holds only the building of an active tenant's stack: its sender pods are
/// still checked where they run and evicted outside the allowed regions, so
/// `ResidencyCompliant` is computed from `residency` (see [`residency`]) as for any
/// tenant, not kept as last observed.
pub fn paused(tenant: &Tenant, residency: Desired, now: Timestamp) -> Option<TenantStatus> {
    use crate::controller::PAUSED_ANNOTATION;
    let current = tenant.status.clone().unwrap_or_default();
    let generation = tenant.metadata.generation;
    // Only compute() writes a phase: without one, nothing was ever built.
    let never_built = current.phase.is_none();
    let spec_changed = !never_built && current.observed_generation != generation;
    let message = if never_built {
        format!(
            "the annotation {PAUSED_ANNOTATION} is set: Herald has built nothing for this tenant and builds it when the annotation is removed"
        )
    } else if spec_changed {
        format!(
            "the annotation {PAUSED_ANNOTATION} is set: Herald leaves this tenant alone; spec changes (generation {}) are applied when it is removed",
            generation.unwrap_or_default()
        )
    } else {
        format!(
            "the annotation {PAUSED_ANNOTATION} is set: Herald leaves this tenant alone until it is removed"
        )
    };
    let mut desired: Vec<Desired> = if never_built {
        vec![
            Desired::no(
                types::READY,
                reason::PAUSED,
                "not built: paused before the first reconcile",
            ),
            Desired::no(
                types::STALLED,
                reason::PAUSED,
                "nothing blocks progress but the pause",
            ),
            Desired::yes(
                types::RECONCILING,
                reason::PAUSED,
                "not built yet: waiting for the pause to be lifted",
            ),
        ]
    } else {
        // Keep every other condition as last observed.
        crate::controller::pause::kept_as_observed(&current.conditions)
    };
    desired.retain(|d| d.type_ != types::RESIDENCY_COMPLIANT);
    desired.push(residency);
    desired.push(Desired::yes(types::PAUSED, reason::PAUSED, message));
    let conditions = merge(&current.conditions, &desired, generation, now);
    if conditions == current.conditions && current.observed_generation == generation {
        return None;
    }
    Some(TenantStatus {
        observed_generation: generation,
        conditions,
        ..current
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::OperatorConfig;
    use crate::controller::tenant::decide::{decide, tests as fixtures};
    use crate::retention::Periods;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap()
    }

    fn status(yaml: &str, observed: &Observed, found: bool) -> TenantStatus {
        let tenant = fixtures::tenant(yaml);
        let config = OperatorConfig::load(None).unwrap();
        let decision = decide(
            &tenant,
            &config,
            Periods::default(),
            found,
            Timestamp::now(),
        );
        compute(&tenant, &decision, observed, t(1000))
    }

    fn cond<'a>(s: &'a TenantStatus, type_: &str) -> (&'a str, &'a str) {
        let c =
            crate::conditions::find(&s.conditions, type_).unwrap_or_else(|| panic!("no {type_}"));
        (c.status.as_str(), c.reason.as_str())
    }

    fn rolled(n: i32) -> Observed {
        Observed {
            senders: Some(SendersObserved {
                desired: n,
                ready: n,
                updated: n,
                total: n,
                generation_observed: true,
            }),
            violations: vec![],
            purges: vec![],
            awaiting: vec![],
            namespace_not_owned: None,
            unowned_secrets: vec![],
        }
    }

    #[test]
    fn a_namespace_herald_did_not_create_stalls_the_tenant_with_its_own_reason() {
        let mut o = rolled(0);
        o.senders = None;
        o.namespace_not_owned = Some("tenant-acme".into());
        let s = status(fixtures::ACTIVE, &o, true);
        assert_eq!(
            cond(&s, types::STALLED),
            ("True", reason::NAMESPACE_NOT_OWNED)
        );
        assert_eq!(
            cond(&s, types::READY),
            ("False", reason::NAMESPACE_NOT_OWNED)
        );
        let stalled = crate::conditions::find(&s.conditions, types::STALLED).unwrap();
        assert!(
            stalled.message.contains("tenant-acme"),
            "{}",
            stalled.message
        );
    }

    #[test]
    fn a_first_start_waiting_for_credentials_says_which() {
        let mut o = rolled(2);
        o.senders = None;
        o.awaiting = vec!["acme-sms".into(), "acme-whatsapp".into()];
        let s = status(fixtures::ACTIVE, &o, true);
        let c = s
            .conditions
            .iter()
            .find(|c| c.type_ == types::SENDERS_AVAILABLE)
            .unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", reason::PROGRESSING)
        );
        assert!(
            c.message.contains("acme-sms, acme-whatsapp"),
            "{}",
            c.message
        );
    }

    #[test]
    fn a_secret_not_labelled_for_the_tenant_stalls_it_and_says_which() {
        let s = status(fixtures::ACTIVE, &rolled(2), true);
        assert_eq!(cond(&s, types::SECRETS_OWNED), ("True", reason::RECONCILED));
        let mut o = rolled(2);
        o.unowned_secrets =
            vec!["the Secret herald-system/x has no herald.dev/tenant label".into()];
        let s = status(fixtures::ACTIVE, &o, true);
        assert_eq!(
            cond(&s, types::SECRETS_OWNED),
            ("False", reason::SOURCE_NOT_OWNED_BY_TENANT)
        );
        assert_eq!(
            cond(&s, types::STALLED),
            ("True", reason::SOURCE_NOT_OWNED_BY_TENANT)
        );
        assert_eq!(
            cond(&s, types::READY),
            ("False", reason::SOURCE_NOT_OWNED_BY_TENANT)
        );
        let c = crate::conditions::find(&s.conditions, types::SECRETS_OWNED).unwrap();
        assert!(c.message.contains("herald-system/x"), "{}", c.message);
    }

    #[test]
    fn a_rolled_out_active_tenant_is_ready() {
        let s = status(fixtures::ACTIVE, &rolled(2), true);
        assert_eq!(cond(&s, types::READY), ("True", reason::RECONCILED));
        assert_eq!(cond(&s, types::RECONCILING).0, "False");
        assert_eq!(cond(&s, types::STALLED).0, "False");
        assert_eq!(s.phase, Some(TenantPhase::Active));
        assert_eq!(s.senders_ready.as_deref(), Some("2/2"));
        assert_eq!(s.regions.as_deref(), Some("eu-central-1,eu-west-1"));
    }

    #[test]
    fn a_rollout_in_progress_is_reconciling_not_ready() {
        let mut o = rolled(2);
        o.senders = Some(SendersObserved {
            desired: 2,
            ready: 1,
            updated: 2,
            total: 3,
            generation_observed: true,
        });
        let s = status(fixtures::ACTIVE, &o, true);
        assert_eq!(cond(&s, types::READY), ("False", reason::PROGRESSING));
        assert_eq!(cond(&s, types::RECONCILING).0, "True");
    }

    #[test]
    fn no_dpa_is_stalled_with_the_reason() {
        let yaml = fixtures::ACTIVE.replace(
            "    dpa: {reference: DPA-1, signedAt: \"2026-01-01T00:00:00Z\"}\n",
            "",
        );
        let s = status(&yaml, &rolled(0), true);
        assert_eq!(cond(&s, types::DPA_SIGNED), ("False", reason::DPA_MISSING));
        assert_eq!(cond(&s, types::STALLED), ("True", reason::DPA_MISSING));
        assert_eq!(cond(&s, types::READY), ("False", reason::DPA_MISSING));
        assert_eq!(s.phase, Some(TenantPhase::Pending));
    }

    #[test]
    fn a_refused_region_says_region_not_allowed() {
        let s = status(
            &fixtures::ACTIVE.replace("eu-west-1]", "mars-1]"),
            &rolled(0),
            true,
        );
        let c = crate::conditions::find(&s.conditions, types::RESIDENCY_COMPLIANT).unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", reason::REGION_NOT_ALLOWED)
        );
        assert!(
            c.message.contains("mars-1 is not in the region catalog"),
            "{}",
            c.message
        );
    }

    #[test]
    fn an_evicted_pod_shows_until_compliant() {
        let mut o = rolled(2);
        o.violations = vec![Violation {
            pod: "p".into(),
            node: "n".into(),
            region: Some("us-east-1".into()),
        }];
        let s = status(fixtures::ACTIVE, &o, true);
        assert_eq!(
            cond(&s, types::RESIDENCY_COMPLIANT),
            ("False", reason::POD_EVICTED)
        );
        assert_eq!(cond(&s, types::READY).0, "False");
    }

    #[test]
    fn suspended_is_ready_with_no_senders() {
        let s = status(
            &fixtures::ACTIVE.replace("state: Active", "state: Suspended"),
            &rolled(0),
            true,
        );
        assert_eq!(cond(&s, types::READY), ("True", reason::CONTRACT_SUSPENDED));
        assert_eq!(
            cond(&s, types::SENDERS_AVAILABLE),
            ("False", reason::CONTRACT_SUSPENDED)
        );
        assert_eq!(s.phase, Some(TenantPhase::Suspended));
    }

    #[test]
    fn a_missing_retention_policy_is_a_condition() {
        let s = status(fixtures::ACTIVE, &rolled(2), false);
        assert_eq!(
            cond(&s, types::RETENTION_APPLIED),
            ("False", reason::RETENTION_POLICY_NOT_FOUND)
        );
        assert_eq!(cond(&s, types::STALLED).0, "True");
    }

    const DAY: i64 = 86_400;

    fn cron(category: Category, created: i64, success: Option<i64>) -> PurgeObserved {
        PurgeObserved {
            category,
            created: Some(t(created)),
            last_success: success.map(t),
        }
    }

    fn at(yaml: &str, observed: &Observed, now: i64) -> TenantStatus {
        let tenant = fixtures::tenant(yaml);
        let config = OperatorConfig::load(None).unwrap();
        let decision = decide(&tenant, &config, Periods::default(), true, Timestamp::now());
        compute(&tenant, &decision, observed, t(now))
    }

    #[test]
    fn every_purged_category_is_recorded_with_its_period_and_last_success() {
        let mut o = rolled(2);
        o.purges = vec![cron(Category::Backups, 0, Some(3 * DAY))];
        let s = at(fixtures::ACTIVE, &o, 4 * DAY);
        let keys: Vec<&str> = s.purges.iter().map(|p| p.category.as_str()).collect();
        assert_eq!(
            keys,
            [
                "messageContent",
                "deliveryMetadata",
                "smsVoiceTraffic",
                "backups",
                "logs"
            ]
        );
        let backups = &s.purges[3];
        assert_eq!(backups.period_days, 7);
        assert_eq!(backups.last_success, Some(Time(t(3 * DAY))));
        assert_eq!(s.purges[0].last_success, None);
        assert_eq!(
            cond(&s, types::PURGES_CURRENT),
            ("True", reason::RECONCILED)
        );
        assert_eq!(cond(&s, types::READY).0, "True");
    }

    #[test]
    fn a_purge_without_success_for_longer_than_its_period_is_overdue() {
        let mut o = rolled(2);
        // Backups (7 days): created at 0, never succeeded; logs (90 days) succeeded at day 1.
        o.purges = vec![
            cron(Category::Backups, 0, None),
            cron(Category::Logs, 0, Some(DAY)),
        ];
        let s = at(fixtures::ACTIVE, &o, 7 * DAY);
        assert_eq!(
            cond(&s, types::PURGES_CURRENT).0,
            "True",
            "exactly the period"
        );
        let s = at(fixtures::ACTIVE, &o, 8 * DAY);
        assert_eq!(
            cond(&s, types::PURGES_CURRENT),
            ("False", reason::PURGE_OVERDUE)
        );
        let c = crate::conditions::find(&s.conditions, types::PURGES_CURRENT).unwrap();
        assert!(
            c.message.contains("backups (period 7 days"),
            "{}",
            c.message
        );
        assert!(!c.message.contains("logs"), "{}", c.message);
        // Data may be kept too long and waiting does not fix it: a person must look.
        assert_eq!(cond(&s, types::READY), ("False", reason::PURGE_OVERDUE));
        assert_eq!(cond(&s, types::STALLED), ("True", reason::PURGE_OVERDUE));
        let st = crate::conditions::find(&s.conditions, types::STALLED).unwrap();
        assert!(st.message.contains("backups"), "{}", st.message);
        // A success clears it.
        o.purges[0] = cron(Category::Backups, 0, Some(8 * DAY));
        let s = at(fixtures::ACTIVE, &o, 8 * DAY + 60);
        assert_eq!(cond(&s, types::PURGES_CURRENT).0, "True");
        assert_eq!(cond(&s, types::READY).0, "True");
        assert_eq!(cond(&s, types::STALLED).0, "False");
    }

    #[test]
    fn a_recreated_cron_job_keeps_the_recorded_success() {
        let mut tenant = fixtures::tenant(fixtures::ACTIVE);
        let config = OperatorConfig::load(None).unwrap();
        let decision = decide(&tenant, &config, Periods::default(), true, Timestamp::now());
        let mut o = rolled(2);
        o.purges = vec![cron(Category::Logs, 0, Some(DAY))];
        let first = compute(&tenant, &decision, &o, t(2 * DAY));
        tenant.status = Some(first);
        o.purges = vec![cron(Category::Logs, 3 * DAY, None)];
        let s = compute(&tenant, &decision, &o, t(4 * DAY));
        assert_eq!(s.purges[4].last_success, Some(Time(t(DAY))));
    }

    #[test]
    fn a_terminated_tenant_keeps_its_last_purge_record_and_drops_the_condition() {
        let yaml = fixtures::ACTIVE.replace(
            "state: Active",
            "state: Terminated\n    terminatedAt: \"2026-02-01T00:00:00Z\"",
        );
        let mut tenant = fixtures::tenant(&yaml);
        tenant.status = Some(at(fixtures::ACTIVE, &rolled(2), DAY));
        let config = OperatorConfig::load(None).unwrap();
        let decision = decide(&tenant, &config, Periods::default(), true, Timestamp::now());
        let s = compute(&tenant, &decision, &rolled(0), t(400 * DAY));
        assert_eq!(s.purges.len(), 5);
        assert!(crate::conditions::find(&s.conditions, types::PURGES_CURRENT).is_none());
    }

    #[test]
    fn a_longer_retention_period_is_refused_with_both_values() {
        let tenant = fixtures::tenant(fixtures::ACTIVE);
        let config = OperatorConfig::load(None).unwrap();
        let asked = Periods {
            sms_voice_traffic_days: 365,
            ..Periods::default()
        };
        let decision = decide(&tenant, &config, asked, true, Timestamp::now());
        let s = compute(&tenant, &decision, &rolled(2), t(1000));
        let c = crate::conditions::find(&s.conditions, types::RETENTION_APPLIED).unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", reason::RETENTION_LONGER_THAN_PLATFORM)
        );
        assert!(
            c.message
                .contains("smsVoiceTrafficDays 365 is longer than the platform's 183 days"),
            "{}",
            c.message
        );
        assert_eq!(
            cond(&s, types::STALLED),
            ("True", reason::RETENTION_LONGER_THAN_PLATFORM)
        );
        assert_eq!(
            s.purges[2].period_days, 183,
            "the platform's period applies"
        );
    }

    #[test]
    fn recomputing_an_unchanged_world_gives_the_same_status() {
        let mut tenant = fixtures::tenant(fixtures::ACTIVE);
        let config = OperatorConfig::load(None).unwrap();
        let decision = decide(&tenant, &config, Periods::default(), true, Timestamp::now());
        let first = compute(&tenant, &decision, &rolled(2), t(1000));
        tenant.status = Some(first.clone());
        assert_eq!(compute(&tenant, &decision, &rolled(2), t(5000)), first);
    }

    fn compliant() -> Desired {
        Desired::yes(
            types::RESIDENCY_COMPLIANT,
            reason::RECONCILED,
            "senders may run only in eu-central-1, eu-west-1",
        )
    }

    #[test]
    fn a_paused_tenant_still_says_which_pods_were_evicted() {
        let mut tn = paused_yaml(fixtures::ACTIVE);
        tn.metadata.generation = Some(1);
        let config = OperatorConfig::load(None).unwrap();
        let d = decide(&tn, &config, Periods::default(), true, Timestamp::now());
        tn.status = Some(compute(&tn, &d, &rolled(2), t(100)));
        let evicted = vec![Violation {
            pod: "sender-1".into(),
            node: "node-us".into(),
            region: Some("us-east-1".into()),
        }];
        let s = paused(&tn, residency(&d, &evicted), t(200)).unwrap();
        assert_eq!(
            cond(&s, types::RESIDENCY_COMPLIANT),
            ("False", reason::POD_EVICTED)
        );
        assert_eq!(cond(&s, types::PAUSED), ("True", reason::PAUSED));
        tn.status = Some(s);
        // Once the pod is gone, compliant again, still paused.
        let s = paused(&tn, residency(&d, &[]), t(300)).unwrap();
        assert_eq!(
            cond(&s, types::RESIDENCY_COMPLIANT),
            ("True", reason::RECONCILED)
        );
        tn.status = Some(s);
        assert_eq!(paused(&tn, residency(&d, &[]), t(400)), None);
    }

    fn paused_yaml(yaml: &str) -> Tenant {
        let mut t = fixtures::tenant(yaml);
        t.metadata
            .annotations
            .get_or_insert_default()
            .insert(crate::controller::PAUSED_ANNOTATION.into(), "true".into());
        t
    }

    #[test]
    fn a_tenant_paused_before_its_first_reconcile_reads_as_not_built() {
        let mut tn = paused_yaml(fixtures::ACTIVE);
        tn.metadata.generation = Some(1);
        let s = paused(&tn, compliant(), t(100)).expect("a first paused status");
        assert_eq!(s.observed_generation, Some(1));
        assert_eq!(cond(&s, types::PAUSED), ("True", reason::PAUSED));
        // Not Current for kstatus: nothing was built.
        assert_eq!(cond(&s, types::RECONCILING), ("True", reason::PAUSED));
        assert_eq!(cond(&s, types::READY), ("False", reason::PAUSED));
        assert_eq!(s.phase, None);
        tn.status = Some(s);
        assert_eq!(paused(&tn, compliant(), t(200)), None, "written once");
    }

    #[test]
    fn a_spec_change_while_paused_is_observed_and_said_not_applied() {
        let mut tn = paused_yaml(fixtures::ACTIVE);
        tn.metadata.generation = Some(1);
        let config = OperatorConfig::load(None).unwrap();
        let d = decide(&tn, &config, Periods::default(), true, Timestamp::now());
        let built = compute(&tn, &d, &rolled(2), t(100));
        assert_eq!(cond(&built, types::READY).0, "True");
        tn.status = Some(built);
        let s = paused(&tn, compliant(), t(200)).unwrap();
        assert_eq!(cond(&s, types::READY).0, "True", "kept as last observed");
        assert_eq!(cond(&s, types::RECONCILING).0, "False");
        tn.status = Some(s);
        assert_eq!(paused(&tn, compliant(), t(250)), None);
        // The spec changes: observedGeneration follows, the message says it waits.
        tn.metadata.generation = Some(2);
        let s = paused(&tn, compliant(), t(300)).unwrap();
        assert_eq!(s.observed_generation, Some(2));
        let p = crate::conditions::find(&s.conditions, types::PAUSED).unwrap();
        assert!(p.message.contains("generation 2"), "{}", p.message);
        assert!(
            s.conditions
                .iter()
                .all(|c| c.observed_generation == Some(2))
        );
    }
}
