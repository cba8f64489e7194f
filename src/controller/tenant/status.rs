//! The pure part of a Tenant reconcile that turns the decision and what was observed
//! into the status: phase, conditions (kstatus-compatible Ready / Reconciling /
//! Stalled, plus DPASigned, ResidencyCompliant, RetentionApplied, SendersAvailable),
//! and the printer-column fields.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;

use super::build::namespace_name;
use super::decide::{Decision, Hold};
use crate::api::v1alpha1::conditions::{self as types, reason};
use crate::api::v1alpha1::{Tenant, TenantPhase, TenantStatus};
use crate::conditions::{Desired, merge};

/// What the reconcile saw of the sender Deployment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
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

/// Everything observed in this reconcile.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Observed {
    /// The sender Deployment's state (`None`: it does not exist yet).
    pub senders: Option<SendersObserved>,
    /// Pods found outside the allowed regions (each has been evicted).
    pub violations: Vec<Violation>,
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

    let residency = if !decision.refusals.is_empty() {
        let why: Vec<String> = decision.refusals.iter().map(ToString::to_string).collect();
        Desired::no(
            types::RESIDENCY_COMPLIANT,
            reason::REGION_NOT_ALLOWED,
            format!(
                "{}; no sender runs until every region is allowed",
                why.join("; ")
            ),
        )
    } else if !observed.violations.is_empty() {
        let pods: Vec<String> = observed
            .violations
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
    };

    let policy = &tenant.spec.retention_policy_ref.name;
    let retention = if decision.retention_found {
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

    // Stalled: progress needs a person to change something. Reconciling: Herald is
    // still converging and will finish by itself.
    let stalled = match decision.hold {
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

    let desired = vec![
        ready,
        match &stalled {
            Some((r, m)) => Desired::yes(types::STALLED, r, m.clone()),
            None => Desired::no(
                types::STALLED,
                reason::RECONCILED,
                "nothing blocks progress",
            ),
        },
        if reconciling {
            Desired::yes(
                types::RECONCILING,
                reason::PROGRESSING,
                "rolling out the senders or correcting residency",
            )
        } else {
            Desired::no(types::RECONCILING, reason::RECONCILED, "converged")
        },
        dpa,
        residency,
        retention,
        senders_cond,
    ];
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
        deletion_deadline: current.deletion_deadline,
        last_handled_reconcile_at: tenant
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(crate::controller::RECONCILE_REQUESTED_ANNOTATION))
            .cloned(),
    }
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
        let decision = decide(&tenant, &config, Periods::default(), found);
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
        }
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

    #[test]
    fn recomputing_an_unchanged_world_gives_the_same_status() {
        let mut tenant = fixtures::tenant(fixtures::ACTIVE);
        let config = OperatorConfig::load(None).unwrap();
        let decision = decide(&tenant, &config, Periods::default(), true);
        let first = compute(&tenant, &decision, &rolled(2), t(1000));
        tenant.status = Some(first.clone());
        assert_eq!(compute(&tenant, &decision, &rolled(2), t(5000)), first);
    }
}
