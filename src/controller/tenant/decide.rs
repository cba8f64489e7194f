//! The pure part of a Tenant reconcile: from the spec, the region catalog and the
//! resolved retention policy, decide where and whether the senders may run.

use crate::api::v1alpha1::{ContractState, Tenant, TenantPhase};
use crate::config::OperatorConfig;
use crate::regions::Refusal;
use crate::retention::{self, Longer, Periods};
use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// Why no sender runs, when none does. Ordered by precedence: the first that applies
/// is the one reported as the reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hold {
    /// The contract is terminated: senders stop at once.
    Terminated,
    /// The contract is suspended: stack kept, no sender.
    Suspended,
    /// No signed DPA: no processing (C1).
    NoDpa,
    /// A requested region is refused (C2, C3).
    Residency,
}

/// What the reconcile will make the cluster look like.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The spec's regions the catalog allows for this tenant.
    pub allowed_regions: Vec<String>,
    /// The spec's regions the catalog refuses, with why.
    pub refusals: Vec<Refusal>,
    /// Whether a signed DPA is on record.
    pub dpa_signed: bool,
    /// Why senders are held at zero, if they are.
    pub hold: Option<Hold>,
    /// Sender replicas to run.
    pub replicas: i32,
    /// Retention periods handed to the stack, bounded by the platform's.
    pub periods: Periods,
    /// Periods the RetentionPolicy asked for that are longer than the platform's: refused,
    /// the platform's apply.
    pub retention_longer: Vec<Longer>,
    /// Whether the referenced RetentionPolicy was found (else the defaults apply).
    pub retention_found: bool,
}

/// Decides the tenant's stack. `policy_found` and `periods` come from resolving the
/// tenant's RetentionPolicy reference ([`Periods::resolve`]); the periods are bounded
/// here by the platform's (`config.retention`).
pub fn decide(
    tenant: &Tenant,
    config: &OperatorConfig,
    periods: Periods,
    retention_found: bool,
    now: Timestamp,
) -> Decision {
    let spec = &tenant.spec;
    let allow_adequacy = spec.residency.allow_adequacy.unwrap_or(false);
    let (allowed_regions, refusals) = match config
        .regions
        .check(&spec.residency.regions, allow_adequacy)
    {
        Ok(()) => (spec.residency.regions.clone(), Vec::new()),
        Err(refusals) => {
            let allowed = spec
                .residency
                .regions
                .iter()
                .filter(|r| {
                    config
                        .regions
                        .check(std::slice::from_ref(r), allow_adequacy)
                        .is_ok()
                })
                .cloned()
                .collect();
            (allowed, refusals)
        }
    };
    // A DPA dated in the future is not signed yet: no sender runs on a promise.
    let dpa_signed = spec
        .contract
        .dpa
        .as_ref()
        .is_some_and(|d| d.signed_at.0 <= now);
    let hold = match spec.contract.state {
        ContractState::Terminated => Some(Hold::Terminated),
        ContractState::Suspended => Some(Hold::Suspended),
        ContractState::Active if !dpa_signed => Some(Hold::NoDpa),
        ContractState::Active if !refusals.is_empty() => Some(Hold::Residency),
        ContractState::Active => None,
    };
    let wanted = spec
        .senders
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(config.senders.replicas);
    let (periods, retention_longer) = retention::bound(periods, &config.retention);
    Decision {
        allowed_regions,
        refusals,
        dpa_signed,
        replicas: if hold.is_some() { 0 } else { wanted },
        hold,
        periods,
        retention_longer,
        retention_found,
    }
}

/// How far ahead of the operator's clock `terminatedAt` may lie and still be acted on:
/// the clock skew between whoever wrote the manifest and the operator.
pub const TERMINATION_SKEW: SignedDuration = SignedDuration::from_mins(5);

/// Where a tenant's termination stands for Herald.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Termination {
    /// The contract is not terminated.
    NotTerminated,
    /// Terminated, and Herald acts on it: accepted before (status
    /// terminationAcceptedAt), or terminatedAt is not in the future now.
    Accepted,
    /// Terminated with terminatedAt (this) more than [`TERMINATION_SKEW`] ahead of
    /// `now`, never accepted: admission cannot know "now", so the reconcile refuses it.
    /// Nothing happens on it (senders keep their state, no erasure is scheduled from
    /// it) and the date may still be corrected.
    InFuture(Timestamp),
}

/// Where `tenant`'s termination stands at `now`. Pure.
pub fn termination(tenant: &Tenant, now: Timestamp) -> Termination {
    let contract = &tenant.spec.contract;
    if contract.state != ContractState::Terminated {
        return Termination::NotTerminated;
    }
    let accepted = tenant
        .status
        .as_ref()
        .is_some_and(|s| s.termination_accepted_at.is_some());
    let ahead = now.checked_add(TERMINATION_SKEW).unwrap_or(Timestamp::MAX);
    match &contract.terminated_at {
        Some(at) if !accepted && at.0 > ahead => Termination::InFuture(at.0),
        _ => Termination::Accepted,
    }
}

/// `tenant` as Herald acts on it while its termination is [`Termination::InFuture`]:
/// not terminated. Its contract state is the one Herald last ran it in (its phase was
/// Active or Pending: Active; else Suspended, so a tenant created terminated with a
/// future date starts no sender), and it has no terminatedAt, so no erasure is
/// scheduled from the date. Deleting it still erases it (from the deletion).
pub fn before_termination(tenant: &Tenant) -> Tenant {
    let mut view = tenant.clone();
    let ran = tenant
        .status
        .as_ref()
        .and_then(|s| s.phase)
        .is_some_and(|p| matches!(p, TenantPhase::Active | TenantPhase::Pending));
    view.spec.contract.state = if ran {
        ContractState::Active
    } else {
        ContractState::Suspended
    };
    view.spec.contract.terminated_at = None;
    view
}

/// Whether the pause annotation holds `tenant` back (given that it is set): only for an
/// active contract whose senders may run (a signed DPA, every region allowed) and a
/// Tenant not being deleted. Whatever stops processing or erases data (termination,
/// deletion, suspension, the DPA gate, a refused region) goes ahead whatever the
/// annotation says: a pause is for holding changes back, never compliance.
pub fn pause_holds(tenant: &Tenant, decision: &Decision) -> bool {
    tenant.metadata.deletion_timestamp.is_none() && decision.hold.is_none()
}

/// What a pause does not hold for `tenant`, for the `Paused=False` message (when
/// [`pause_holds`] is false).
pub fn pause_overridden_by(tenant: &Tenant, decision: &Decision) -> &'static str {
    if tenant.metadata.deletion_timestamp.is_some() {
        return "the erasure of a deleted Tenant";
    }
    match decision.hold {
        Some(Hold::Terminated) => "termination and erasure",
        Some(Hold::Suspended) => "a suspension (senders stop)",
        Some(Hold::NoDpa) => "the DPA gate (no sender runs without a signed DPA)",
        Some(Hold::Residency) => "residency (no sender runs in a region not allowed)",
        None => "compliance",
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::regions::Refusal;
    use k8s_openapi::jiff::SignedDuration;

    pub(crate) fn tenant(yaml: &str) -> Tenant {
        let mut t: Tenant = serde_yaml::from_str(yaml).unwrap();
        t.metadata.uid = Some("uid-1".into());
        t
    }

    pub(crate) const ACTIVE: &str = r#"
apiVersion: herald.dev/v1alpha1
kind: Tenant
metadata: {name: acme}
spec:
  displayName: Acme
  contract:
    state: Active
    dpa: {reference: DPA-1, signedAt: "2026-01-01T00:00:00Z"}
  residency: {regions: [eu-central-1, eu-west-1]}
  retentionPolicyRef: {name: standard}
"#;

    fn config() -> OperatorConfig {
        OperatorConfig::load(None).unwrap()
    }

    fn run(yaml: &str) -> Decision {
        decide(
            &tenant(yaml),
            &config(),
            Periods::default(),
            true,
            Timestamp::now(),
        )
    }

    #[test]
    fn an_active_tenant_with_dpa_in_eea_regions_runs_default_replicas() {
        let d = run(ACTIVE);
        assert_eq!(d.hold, None);
        assert_eq!(d.replicas, 2);
        assert_eq!(d.allowed_regions, vec!["eu-central-1", "eu-west-1"]);
    }

    fn terminated_at(at: &str) -> Tenant {
        tenant(&ACTIVE.replace(
            "    state: Active\n",
            &format!("    state: Terminated\n    terminatedAt: \"{at}\"\n"),
        ))
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn a_termination_more_than_five_minutes_ahead_is_not_acted_on_until_accepted() {
        let now = ts("2026-12-08T12:00:00Z");
        assert_eq!(
            termination(&tenant(ACTIVE), now),
            Termination::NotTerminated
        );
        for (at, want) in [
            ("2026-12-01T00:00:00Z", Termination::Accepted),
            ("2026-12-08T12:00:00Z", Termination::Accepted),
            ("2026-12-08T12:05:00Z", Termination::Accepted),
            (
                "2026-12-08T12:05:01Z",
                Termination::InFuture(ts("2026-12-08T12:05:01Z")),
            ),
            (
                "2199-06-01T00:00:00Z",
                Termination::InFuture(ts("2199-06-01T00:00:00Z")),
            ),
        ] {
            assert_eq!(termination(&terminated_at(at), now), want, "{at}");
        }
        // Once accepted, accepted: the date can no longer change (admission).
        let mut t = terminated_at("2199-06-01T00:00:00Z");
        t.status = Some(crate::api::v1alpha1::TenantStatus {
            termination_accepted_at: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                now,
            )),
            ..Default::default()
        });
        assert_eq!(termination(&t, now), Termination::Accepted);
        // A clock at the end of time does not panic.
        assert_eq!(
            termination(&terminated_at("2199-06-01T00:00:00Z"), Timestamp::MAX),
            Termination::Accepted
        );
    }

    #[test]
    fn a_refused_termination_keeps_the_tenant_as_herald_last_ran_it() {
        let mut t = terminated_at("2199-06-01T00:00:00Z");
        // Never reconciled: nothing starts.
        let view = before_termination(&t);
        assert_eq!(view.spec.contract.state, ContractState::Suspended);
        assert_eq!(view.spec.contract.terminated_at, None);
        let d = decide(&view, &config(), Periods::default(), true, Timestamp::now());
        assert_eq!(d.hold, Some(Hold::Suspended));
        // Running before: senders are not stopped.
        t.status = Some(crate::api::v1alpha1::TenantStatus {
            phase: Some(TenantPhase::Active),
            ..Default::default()
        });
        let view = before_termination(&t);
        assert_eq!(view.spec.contract.state, ContractState::Active);
        let d = decide(&view, &config(), Periods::default(), true, Timestamp::now());
        assert_eq!((d.hold, d.replicas), (None, 2));
        // No erasure is scheduled from the date.
        assert_eq!(
            crate::controller::tenant::erasure::plan::timing(&view, 30, 7),
            Ok(None)
        );
    }

    #[test]
    fn a_pause_holds_only_an_active_tenant_whose_senders_may_run() {
        let active = tenant(ACTIVE);
        assert!(pause_holds(&active, &run(ACTIVE)));
        let terminated = terminated_at("2026-01-31T00:00:00Z");
        let d = decide(
            &terminated,
            &config(),
            Periods::default(),
            true,
            Timestamp::now(),
        );
        assert!(!pause_holds(&terminated, &d));
        assert_eq!(
            pause_overridden_by(&terminated, &d),
            "termination and erasure"
        );
        let no_dpa = ACTIVE.replace(
            "    dpa: {reference: DPA-1, signedAt: \"2026-01-01T00:00:00Z\"}\n",
            "",
        );
        assert!(!pause_holds(&tenant(&no_dpa), &run(&no_dpa)));
        let suspended = ACTIVE.replace("state: Active", "state: Suspended");
        assert!(!pause_holds(&tenant(&suspended), &run(&suspended)));
        let mut deleted = tenant(ACTIVE);
        deleted.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::now()),
        );
        assert!(!pause_holds(&deleted, &run(ACTIVE)));
        assert_eq!(
            pause_overridden_by(&deleted, &run(ACTIVE)),
            "the erasure of a deleted Tenant"
        );
    }

    #[test]
    fn no_dpa_no_senders() {
        let d = run(&ACTIVE.replace(
            "    dpa: {reference: DPA-1, signedAt: \"2026-01-01T00:00:00Z\"}\n",
            "",
        ));
        assert_eq!(d.hold, Some(Hold::NoDpa));
        assert_eq!(d.replicas, 0);
        assert!(!d.dpa_signed);
    }

    proptest::proptest! {
        /// Any signedAt, replica count, clock and period: decide never panics, and a
        /// tenant with no sender allowed runs none.
        #[test]
        fn decide_never_panics(
            signed in Timestamp::MIN.as_second()..=Timestamp::MAX.as_second(),
            now in Timestamp::MIN.as_second()..=Timestamp::MAX.as_second(),
            replicas in proptest::prelude::any::<i32>(),
            message_days in proptest::prelude::any::<i32>(),
        ) {
            let mut t = tenant(ACTIVE);
            if let Some(d) = t.spec.contract.dpa.as_mut() {
                d.signed_at.0 = Timestamp::from_second(signed).unwrap_or(Timestamp::MAX);
            }
            if let Some(s) = t.spec.senders.as_mut() {
                s.replicas = Some(replicas);
            }
            let periods = Periods { message_content_days: message_days, ..Periods::default() };
            let now = Timestamp::from_second(now).unwrap_or(Timestamp::MAX);
            let d = decide(&t, &config(), periods, true, now);
            proptest::prop_assert_eq!(d.dpa_signed, signed <= now.as_second());
            if d.hold.is_some() {
                proptest::prop_assert_eq!(d.replicas, 0);
            }
        }
    }

    #[test]
    fn a_dpa_dated_in_the_future_is_not_signed_until_then() {
        let t = tenant(ACTIVE);
        let signed = "2026-01-01T00:00:00Z".parse::<Timestamp>().unwrap();
        let before = signed.checked_sub(SignedDuration::from_secs(1)).unwrap();
        let d = decide(&t, &config(), Periods::default(), true, before);
        assert_eq!(d.hold, Some(Hold::NoDpa));
        assert_eq!(d.replicas, 0);
        assert!(!d.dpa_signed);
        let d = decide(&t, &config(), Periods::default(), true, signed);
        assert!(d.dpa_signed);
        assert_eq!(d.hold, None);
    }

    #[test]
    fn a_third_country_region_holds_every_sender() {
        let d = run(&ACTIVE.replace("eu-west-1]", "us-east-1]"));
        assert_eq!(d.hold, Some(Hold::Residency));
        assert_eq!(d.replicas, 0);
        assert_eq!(d.allowed_regions, vec!["eu-central-1"]);
        assert!(matches!(d.refusals[0], Refusal::ThirdCountry { .. }));
    }

    #[test]
    fn adequacy_regions_run_only_with_the_opt_in() {
        let uk = ACTIVE.replace("eu-west-1]", "eu-west-2]");
        assert_eq!(run(&uk).hold, Some(Hold::Residency));
        let opted = uk.replace("eu-west-2]}", "eu-west-2], allowAdequacy: true}");
        assert_eq!(run(&opted).hold, None);
    }

    #[test]
    fn suspended_and_terminated_hold_senders_before_anything_else() {
        let suspended = run(&ACTIVE.replace("state: Active", "state: Suspended"));
        assert_eq!(
            (suspended.hold, suspended.replicas),
            (Some(Hold::Suspended), 0)
        );
        let terminated = run(&ACTIVE.replace(
            "state: Active",
            "state: Terminated\n    terminatedAt: \"2026-02-01T00:00:00Z\"",
        ));
        assert_eq!(terminated.hold, Some(Hold::Terminated));
    }

    #[test]
    fn a_period_longer_than_the_platforms_is_bounded_and_reported() {
        let asked = Periods {
            message_content_days: 365,
            logs_days: 30,
            ..Periods::default()
        };
        let d = decide(&tenant(ACTIVE), &config(), asked, true, Timestamp::now());
        assert_eq!(d.periods.message_content_days, 90);
        assert_eq!(d.periods.logs_days, 30);
        assert_eq!(d.retention_longer.len(), 1);
        assert_eq!(
            d.retention_longer[0].category,
            retention::Category::MessageContent
        );
        assert_eq!(d.hold, None, "a refused period does not stop the senders");
    }

    #[test]
    fn the_spec_replicas_override_the_default() {
        let d = run(&ACTIVE.replace(
            "  retentionPolicyRef",
            "  senders: {replicas: 5}\n  retentionPolicyRef",
        ));
        assert_eq!(d.replicas, 5);
    }
}
