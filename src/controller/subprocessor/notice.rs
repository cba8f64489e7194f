//! The pure part of announcing a Subprocessor: who must be told, the notice's
//! idempotency key and body, and the Subprocessor's status from what was delivered.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::effective::{self, Verdict, channel_str, notice_period_days};
use crate::api::v1alpha1::conditions::{self as types, reason};
use crate::api::v1alpha1::{
    ContractState, Subprocessor, SubprocessorCategory, SubprocessorStatus, Tenant, TenantNotice,
};
use crate::conditions::{Desired, merge};

/// The idempotency key of the notice of `hash` (the Subprocessor's material hash) to
/// `tenant`: the same for every retry, different for every change or tenant.
pub fn idempotency_key(subprocessor: &str, hash: &str, tenant: &str) -> String {
    crate::digest::sha256_hex(
        format!("subprocessor-notice\n{subprocessor}\n{hash}\n{tenant}").as_bytes(),
    )
}

/// Whether the Subprocessor processes data of every tenant (infrastructure, monitoring,
/// …) or only of tenants with a ChannelBinding through it (channel carriers).
pub fn is_channel_carrier(sp: &Subprocessor) -> bool {
    matches!(
        sp.spec.category,
        SubprocessorCategory::CommunicationChannel | SubprocessorCategory::EmailDelivery
    )
}

/// Whether a tenant can be affected at all: it exists and its contract is not over.
pub fn is_live(tenant: &Tenant) -> bool {
    tenant.metadata.deletion_timestamp.is_none()
        && tenant.spec.contract.state != ContractState::Terminated
}

/// The JSON body of the notice (`sent_at` and `window_ends` are this attempt's).
pub fn body(
    sp: &Subprocessor,
    tenant: &str,
    key: &str,
    hash: &str,
    change: &str,
    sent_at: Timestamp,
    window_ends: Timestamp,
) -> Vec<u8> {
    let name = sp.metadata.name.as_deref().unwrap_or_default();
    let s = &sp.spec;
    let channels: Vec<String> = s.channels.iter().copied().map(channel_str).collect();
    let doc = serde_json::json!({
        "type": "subprocessor.notice",
        "idempotencyKey": key,
        "tenant": tenant,
        "change": change,
        "subprocessor": {
            "name": name,
            "legalName": s.legal_name,
            "category": s.category,
            "purpose": s.purpose,
            "locations": s.locations,
            "safeguard": s.safeguard,
            "transferImpactAssessmentRef": s.transfer_impact_assessment_ref,
            "channels": channels,
        },
        "materialHash": hash,
        "noticePeriodDays": notice_period_days(s),
        "sentAt": sent_at.to_string(),
        "objectionWindowEnds": window_ends.to_string(),
        "howToObject": format!("add {{name: {name}}} to spec.subprocessorObjections of Tenant {tenant} before objectionWindowEnds"),
    });
    doc.to_string().into_bytes()
}

/// What the reconcile found, for the status.
pub struct Outcome<'a> {
    /// The Subprocessor as read.
    pub sp: &'a Subprocessor,
    /// Its current material hash and when it took effect.
    pub hash: String,
    /// When the current terms took effect.
    pub changed_at: Timestamp,
    /// The notice records after this reconcile's deliveries.
    pub notices: Vec<TenantNotice>,
    /// The verdict for each affected tenant, by name.
    pub verdicts: Vec<(String, Verdict)>,
    /// Whether the safeguard fits (Err: why not).
    pub safeguard: Result<(), String>,
    /// Tenants (live) that objected.
    pub objections: usize,
}

/// The Subprocessor's status given `outcome`, at `now`.
pub fn status(o: &Outcome<'_>, now: Timestamp) -> SubprocessorStatus {
    let current = o.sp.status.clone().unwrap_or_default();
    let name = o.sp.metadata.name.as_deref().unwrap_or_default();
    let affected = o.verdicts.len();
    let effective = o.verdicts.iter().filter(|(_, v)| v.effective).count();
    let undelivered: Vec<&TenantNotice> = o
        .notices
        .iter()
        .filter(|n| {
            n.material_hash == o.hash
                && n.delivered_at.is_none()
                && o.verdicts.iter().any(|(t, _)| *t == n.tenant)
        })
        .collect();
    let blocked: Vec<String> = o
        .verdicts
        .iter()
        .filter(|(_, v)| !v.effective)
        .map(|(t, v)| format!("{t}: {}", v.reason))
        .collect();

    let effective_cond = if blocked.is_empty() {
        Desired::yes(
            types::SUBPROCESSOR_EFFECTIVE,
            reason::RECONCILED,
            format!("effective for all {affected} affected tenants"),
        )
    } else {
        let first = o
            .verdicts
            .iter()
            .find(|(_, v)| !v.effective)
            .map(|(_, v)| v.reason)
            .unwrap_or(reason::PENDING);
        Desired::no(
            types::SUBPROCESSOR_EFFECTIVE,
            first,
            format!(
                "effective for {effective}/{affected} affected tenants; not for {}",
                blocked.join(", ")
            ),
        )
    };
    let delivered_cond = if undelivered.is_empty() {
        Desired::yes(
            types::NOTICES_DELIVERED,
            reason::RECONCILED,
            "every affected tenant that must be told has been sent the notice of the current terms",
        )
    } else {
        let who: Vec<String> = undelivered
            .iter()
            .map(|n| {
                format!(
                    "{} ({})",
                    n.tenant,
                    n.last_failure.as_deref().unwrap_or("not sent yet")
                )
            })
            .collect();
        Desired::no(
            types::NOTICES_DELIVERED,
            reason::NOTICE_FAILED,
            format!("notices not delivered yet, retrying: {}", who.join(", ")),
        )
    };
    let stalled = o.safeguard.as_ref().err();
    let reconciling = stalled.is_none() && !undelivered.is_empty();
    let ready = match (stalled, reconciling) {
        (Some(why), _) => Desired::no(types::READY, reason::SAFEGUARD_INSUFFICIENT, why.clone()),
        (None, true) => Desired::no(
            types::READY,
            reason::PROGRESSING,
            "delivering notices to affected tenants",
        ),
        (None, false) => Desired::yes(
            types::READY,
            reason::RECONCILED,
            format!("announced to every affected tenant; effective for {effective}/{affected}"),
        ),
    };
    let desired = vec![
        ready,
        match stalled {
            Some(why) => Desired::yes(types::STALLED, reason::SAFEGUARD_INSUFFICIENT, why.clone()),
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
                "delivering notices to affected tenants",
            )
        } else {
            Desired::no(types::RECONCILING, reason::RECONCILED, "converged")
        },
        effective_cond,
        delivered_cond,
    ];
    let _ = name;
    let mut notices = o.notices.clone();
    notices.sort_by(|a, b| a.tenant.cmp(&b.tenant));
    SubprocessorStatus {
        observed_generation: o.sp.metadata.generation,
        conditions: merge(&current.conditions, &desired, o.sp.metadata.generation, now),
        effective: Some(format!("{effective}/{affected}")),
        material_hash: Some(o.hash.clone()),
        material_changed_at: Some(Time(o.changed_at)),
        notices,
    }
}

/// The verdict for one tenant with the notices of this reconcile taken into account.
pub fn verdict_with(
    sp: &Subprocessor,
    hash: &str,
    changed_at: Timestamp,
    notices: &[TenantNotice],
    tenant: &Tenant,
    catalog: &crate::regions::RegionCatalog,
    now: Timestamp,
) -> Verdict {
    let mut view = sp.clone();
    let status = view.status.get_or_insert_default();
    status.material_hash = Some(hash.to_owned());
    status.material_changed_at = Some(Time(changed_at));
    status.notices = notices.to_vec();
    let name = sp.metadata.name.as_deref().unwrap_or_default();
    effective::verdict(Some(&view), name, tenant, None, catalog, now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::subprocessor::effective::tests::{SMS, sp, tenant};

    #[test]
    fn the_key_is_stable_per_change_and_tenant() {
        let a = idempotency_key("carrier", "h1", "acme");
        assert_eq!(a, idempotency_key("carrier", "h1", "acme"));
        assert_ne!(a, idempotency_key("carrier", "h2", "acme"));
        assert_ne!(a, idempotency_key("carrier", "h1", "other"));
    }

    #[test]
    fn undelivered_notices_make_it_reconciling_and_a_recompute_is_identical() {
        let s = sp(SMS, "2026-03-01T00:00:00Z");
        let t = tenant("2026-01-01T00:00:00Z", &[], true);
        let now: Timestamp = "2026-03-02T00:00:00Z".parse().unwrap();
        let hash = effective::material_hash(&s.spec);
        let notices = vec![TenantNotice {
            tenant: "acme".into(),
            material_hash: hash.clone(),
            idempotency_key: "k".into(),
            delivered_at: None,
            objection_window_ends: None,
            last_failure: Some("HTTP 500".into()),
        }];
        let catalog = crate::config::OperatorConfig::load(None).unwrap().regions;
        let changed_at = "2026-03-01T00:00:00Z".parse().unwrap();
        let v = verdict_with(&s, &hash, changed_at, &notices, &t, &catalog, now);
        assert_eq!(v.reason, reason::NOTICE_FAILED);
        let o = Outcome {
            sp: &s,
            hash: hash.clone(),
            changed_at,
            notices,
            verdicts: vec![("acme".into(), v)],
            safeguard: Ok(()),
            objections: 0,
        };
        let st = status(&o, now);
        assert!(crate::conditions::is_true(
            &st.conditions,
            types::RECONCILING
        ));
        assert_eq!(st.effective.as_deref(), Some("0/1"));
        let mut again = s.clone();
        again.status = Some(st.clone());
        let o2 = Outcome { sp: &again, ..o };
        assert_eq!(status(&o2, "2026-03-03T00:00:00Z".parse().unwrap()), st);
    }
}
