//! The pure part of announcing a Subprocessor: who must be told, the notice's
//! idempotency key and body, and the Subprocessor's status from what was delivered.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::effective::{self, Verdict, channel_str, notice_period_days};
use crate::api::v1alpha1::conditions::{self as types, reason};
use crate::api::v1alpha1::{
    ContractState, Subprocessor, SubprocessorCategory, SubprocessorNotice, SubprocessorStatus,
    Tenant,
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
    /// The notice records of the tenants that must be told (by tenant name), after
    /// this reconcile's deliveries.
    pub notices: Vec<(String, SubprocessorNotice)>,
    /// How many affected tenants must be told (new or changed terms since they started,
    /// with an endpoint to tell).
    pub must_tell: usize,
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
    let records: Vec<(&String, &SubprocessorNotice)> = o
        .notices
        .iter()
        .filter(|(t, n)| n.material_hash == o.hash && o.verdicts.iter().any(|(v, _)| v == t))
        .map(|(t, n)| (t, n))
        .collect();
    let undelivered: Vec<&(&String, &SubprocessorNotice)> = records
        .iter()
        .filter(|(_, n)| n.delivered_at.is_none())
        .collect();
    let delivered = records.len() - undelivered.len();
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
        // A bounded message: at a fleet's scale the list would outgrow the object.
        let mut who: Vec<String> = undelivered
            .iter()
            .take(MAX_NAMED)
            .map(|(t, n)| {
                format!(
                    "{t} ({})",
                    n.last_failure.as_deref().unwrap_or("not sent yet")
                )
            })
            .collect();
        if undelivered.len() > MAX_NAMED {
            who.push(format!(
                "and {} more (see each Tenant's status.subprocessorNotices)",
                undelivered.len() - MAX_NAMED
            ));
        }
        // EgressRefused only when that is every failure: one endpoint that is down
        // besides is still a failed notice.
        let refused = undelivered.iter().all(|(_, n)| {
            n.last_failure
                .as_deref()
                .is_some_and(|f| effective::notice_failure_reason(f) == reason::EGRESS_REFUSED)
        });
        Desired::no(
            types::NOTICES_DELIVERED,
            if refused {
                reason::EGRESS_REFUSED
            } else {
                reason::NOTICE_FAILED
            },
            format!(
                "notices not delivered yet to {} tenants, retrying: {}",
                undelivered.len(),
                who.join(", ")
            ),
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
        crate::conditions::stalled(
            stalled.map(|why| (reason::SAFEGUARD_INSUFFICIENT, why.clone())),
        ),
        crate::conditions::reconciling(reconciling.then(|| {
            (
                reason::PROGRESSING,
                "delivering notices to affected tenants".to_owned(),
            )
        })),
        effective_cond,
        delivered_cond,
    ];
    let _ = name;
    SubprocessorStatus {
        observed_generation: o.sp.metadata.generation,
        conditions: merge(&current.conditions, &desired, o.sp.metadata.generation, now),
        effective: Some(format!("{effective}/{affected}")),
        material_hash: Some(o.hash.clone()),
        material_changed_at: Some(Time(o.changed_at)),
        notices_delivered: Some(format!("{delivered}/{}", o.must_tell)),
    }
}

/// What of a tenant's notice records decides effectiveness — per Subprocessor: the
/// hash, when delivered, until when it may object — without attempts and failures, so
/// that a trigger keyed on it fires on a delivery or an edit, not on every failed try.
pub fn outcomes(tenant: &Tenant) -> Vec<(String, String, Option<i64>, Option<i64>)> {
    tenant
        .status
        .iter()
        .flat_map(|s| &s.subprocessor_notices)
        .map(|r| {
            (
                r.subprocessor.clone(),
                r.material_hash.clone(),
                r.delivered_at.as_ref().map(|t| t.0.as_second()),
                r.objection_window_ends.as_ref().map(|t| t.0.as_second()),
            )
        })
        .collect()
}

/// Undelivered tenants named in the NoticesDelivered message; the rest are counted.
const MAX_NAMED: usize = 10;

/// The record to write before sending the notice of `hash` to a tenant whose current
/// record is `existing`, at `now`, and whether a notice must be sent at all. A notice
/// whose outcome was never recorded (`awaitingOutcome`: the operator stopped between
/// sending and recording) is sent again unchanged — same sentAt, same window — so the
/// customer's deduplication by webhook-id holds and no new window is ever promised;
/// after a recorded failure the next attempt is a new sending, with its own sentAt.
pub fn next_attempt(
    existing: Option<&SubprocessorNotice>,
    subprocessor: &str,
    hash: &str,
    key: &str,
    period: k8s_openapi::jiff::SignedDuration,
    now: Timestamp,
) -> Option<SubprocessorNotice> {
    let same = existing.filter(|n| n.material_hash == hash);
    if same.is_some_and(|n| n.delivered_at.is_some()) {
        return None;
    }
    let mut record = same.cloned().unwrap_or_else(|| SubprocessorNotice {
        subprocessor: subprocessor.to_owned(),
        material_hash: hash.to_owned(),
        ..SubprocessorNotice::default()
    });
    record.idempotency_key = key.to_owned();
    let resend = record.awaiting_outcome && record.sent_at.is_some();
    if !resend {
        // Whole seconds: a Kubernetes Time stores no fraction, and a resent notice must
        // say exactly what the first one said.
        let now = Timestamp::from_second(now.as_second()).unwrap_or(now);
        record.sent_at = Some(Time(now));
        record.objection_window_ends = Some(Time(now.checked_add(period).unwrap_or(now)));
    }
    record.awaiting_outcome = true;
    record.attempts = record.attempts.saturating_add(1);
    record.last_attempt_at = Some(Time(Timestamp::from_second(now.as_second()).unwrap_or(now)));
    Some(record)
}

/// The first retry of a failed notice waits this long; each further one twice as long.
const RETRY_FIRST: k8s_openapi::jiff::SignedDuration =
    k8s_openapi::jiff::SignedDuration::from_secs(5);
/// The longest wait between two attempts of one notice.
const RETRY_LAST: k8s_openapi::jiff::SignedDuration =
    k8s_openapi::jiff::SignedDuration::from_secs(300);

/// When the notice recorded in `record` may be attempted again, if not now. A recorded
/// failure waits on the record's own backoff: a Subprocessor is reconciled whenever any
/// tenant changes, and retrying every failing notice on each of those reconciles was a
/// storm of requests and record writes. A notice whose outcome was never recorded (the
/// operator stopped mid-delivery) is due at once.
pub fn retry_at(record: &SubprocessorNotice, now: Timestamp) -> Option<Timestamp> {
    if record.awaiting_outcome || record.last_failure.is_none() {
        return None;
    }
    backoff_due(record.last_attempt_at.as_ref()?.0, record.attempts, now)
}

/// When a delivery last attempted at `last`, after `attempts` failed attempts, may be
/// attempted again, if not now: 5 s after the first failure, doubling to 5 min. Shared
/// by every signed customer notice (also the BreachNotice controller's).
pub fn backoff_due(last: Timestamp, attempts: u32, now: Timestamp) -> Option<Timestamp> {
    let doublings = attempts.saturating_sub(1).min(16);
    let wait = RETRY_FIRST
        .checked_mul(1 << doublings)
        .unwrap_or(RETRY_LAST)
        .min(RETRY_LAST);
    let due = last.checked_add(wait).ok()?;
    (due > now).then_some(due)
}

/// What one reconcile does about one tenant's notice of the current terms (`hash`),
/// given its record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Nothing to send (delivered, or another shard's tenant): the record counts as it is.
    Keep,
    /// A failed notice, due again at this time: the record stands, the requeue comes back.
    RetryAt(Timestamp),
    /// Due, but this reconcile made its attempts already: the next requeue sends it.
    Deferred,
    /// Send it now (first sending, a resend after a crash, or a retry that is due).
    Send,
}

/// The [`Plan`] for a tenant whose record is `record`, at `now`: `ours` is false for
/// another shard's tenant; `attempted` attempts of at most `cap` were made in this
/// reconcile already. A cached record can only be behind, so `RetryAt` from it holds
/// for the live one too; `Send` must be decided again on the live record.
pub fn plan(
    record: Option<&SubprocessorNotice>,
    hash: &str,
    now: Timestamp,
    ours: bool,
    attempted: usize,
    cap: usize,
) -> Plan {
    let current = record.filter(|r| r.material_hash == hash);
    if !ours || current.is_some_and(|r| r.delivered_at.is_some()) {
        return Plan::Keep;
    }
    if let Some(due) = current.and_then(|r| retry_at(r, now)) {
        return Plan::RetryAt(due);
    }
    if attempted >= cap {
        return Plan::Deferred;
    }
    Plan::Send
}

/// The server-side-apply field manager of one Subprocessor's notice records: one per
/// Subprocessor, so that applying its record neither removes nor takes over another's.
/// The API server allows 128 characters: a longer name is cut and made unique with a
/// digest of the whole name.
pub fn field_manager(subprocessor: &str) -> String {
    field_manager_of("herald-notice-", subprocessor)
}

/// `prefix` + `name` as a field manager of at most 128 characters (see
/// [`field_manager`]); the BreachNotice controller's records use it too.
pub fn field_manager_of(prefix: &str, name: &str) -> String {
    let whole = format!("{prefix}{name}");
    if whole.len() <= 128 {
        return whole;
    }
    let digest = crate::digest::sha256_hex(name.as_bytes());
    let head: String = name.chars().take(64).collect();
    format!("{prefix}{head}-{}", &digest[..16])
}

/// The verdict for one tenant with its record of this reconcile taken into account.
pub fn verdict_with(
    sp: &Subprocessor,
    hash: &str,
    changed_at: Timestamp,
    record: Option<&SubprocessorNotice>,
    tenant: &Tenant,
    catalog: &crate::regions::RegionCatalog,
    now: Timestamp,
) -> Verdict {
    let mut view = sp.clone();
    let status = view.status.get_or_insert_default();
    status.material_hash = Some(hash.to_owned());
    status.material_changed_at = Some(Time(changed_at));
    let name = sp.metadata.name.as_deref().unwrap_or_default();
    let mut tenant = tenant.clone();
    if let Some(record) = record {
        let notices = &mut tenant.status.get_or_insert_default().subprocessor_notices;
        notices.retain(|n| n.subprocessor != name);
        notices.push(record.clone());
    }
    effective::verdict(Some(&view), name, &tenant, None, catalog, now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::subprocessor::effective::tests::{SMS, sp, tenant};

    fn failed(attempts: u32, last: &str) -> SubprocessorNotice {
        SubprocessorNotice {
            subprocessor: "carrier".into(),
            material_hash: "h".into(),
            attempts,
            last_attempt_at: Some(Time(last.parse().unwrap())),
            last_failure: Some("HTTP 500".into()),
            ..SubprocessorNotice::default()
        }
    }

    #[test]
    fn each_tenant_s_notice_is_kept_retried_later_deferred_or_sent() {
        let now: Timestamp = "2026-03-01T00:00:10Z".parse().unwrap();
        let delivered = SubprocessorNotice {
            delivered_at: Some(Time(now)),
            ..failed(1, "2026-03-01T00:00:00Z")
        };
        let plan =
            |r: Option<&SubprocessorNotice>, ours, attempted| plan(r, "h", now, ours, attempted, 8);
        assert_eq!(plan(Some(&delivered), true, 0), Plan::Keep);
        assert_eq!(plan(None, false, 0), Plan::Keep, "another shard's tenant");
        // Third attempt failed at :05: waits 20 s.
        assert_eq!(
            plan(Some(&failed(3, "2026-03-01T00:00:05Z")), true, 0),
            Plan::RetryAt("2026-03-01T00:00:25Z".parse().unwrap())
        );
        assert_eq!(
            plan(Some(&failed(1, "2026-03-01T00:00:00Z")), true, 0),
            Plan::Send
        );
        assert_eq!(plan(None, true, 7), Plan::Send);
        assert_eq!(plan(None, true, 8), Plan::Deferred);
        // Delivered, but of older terms: the new ones are sent.
        let older = SubprocessorNotice {
            material_hash: "old".into(),
            ..delivered
        };
        assert_eq!(plan(Some(&older), true, 0), Plan::Send);
    }

    #[test]
    fn a_field_manager_fits_the_api_servers_limit_and_stays_unique() {
        assert_eq!(field_manager("carrier"), "herald-notice-carrier");
        let long = "a".repeat(253);
        let other = format!("{}b", "a".repeat(252));
        let (m, n) = (field_manager(&long), field_manager(&other));
        assert!(m.len() <= 128 && n.len() <= 128, "{} {}", m.len(), n.len());
        assert_ne!(m, n, "names sharing their first 64 characters stay apart");
        assert_eq!(m, field_manager(&long), "stable");
        assert_eq!(field_manager(&"x".repeat(114)).len(), 128, "fits: not cut");
    }

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
        let record = SubprocessorNotice {
            subprocessor: "carrier".into(),
            material_hash: hash.clone(),
            idempotency_key: "k".into(),
            attempts: 1,
            last_failure: Some("HTTP 500".into()),
            ..SubprocessorNotice::default()
        };
        let catalog = crate::config::OperatorConfig::load(None).unwrap().regions;
        let changed_at = "2026-03-01T00:00:00Z".parse().unwrap();
        let v = verdict_with(&s, &hash, changed_at, Some(&record), &t, &catalog, now);
        let notices = vec![("acme".to_owned(), record)];
        assert_eq!(v.reason, reason::NOTICE_FAILED);
        let o = Outcome {
            sp: &s,
            hash: hash.clone(),
            changed_at,
            notices,
            must_tell: 1,
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
        assert_eq!(st.notices_delivered.as_deref(), Some("0/1"));
        let mut again = s.clone();
        again.status = Some(st.clone());
        let o2 = Outcome { sp: &again, ..o };
        assert_eq!(status(&o2, "2026-03-03T00:00:00Z".parse().unwrap()), st);
    }

    #[test]
    fn a_notice_the_outbound_guard_refused_shows_egress_refused() {
        let s = sp(SMS, "2026-03-01T00:00:00Z");
        let t = tenant("2026-01-01T00:00:00Z", &[], true);
        let now: Timestamp = "2026-03-02T00:00:00Z".parse().unwrap();
        let hash = effective::material_hash(&s.spec);
        // What the notify path records for a refused endpoint.
        let refused =
            crate::notify::NotifyError::Refused(crate::outbound::Refused { class: "private" })
                .category();
        let record = |failure: &str| SubprocessorNotice {
            subprocessor: "carrier".into(),
            material_hash: hash.clone(),
            idempotency_key: "k".into(),
            attempts: 1,
            last_failure: Some(failure.into()),
            ..SubprocessorNotice::default()
        };
        let catalog = crate::config::OperatorConfig::load(None).unwrap().regions;
        let changed_at = "2026-03-01T00:00:00Z".parse().unwrap();
        let v = verdict_with(
            &s,
            &hash,
            changed_at,
            Some(&record(&refused)),
            &t,
            &catalog,
            now,
        );
        assert_eq!(v.reason, reason::EGRESS_REFUSED);
        assert!(!v.needs_a_person(), "retried like any failed notice");
        let delivered = |notices: Vec<(String, SubprocessorNotice)>| {
            let o = Outcome {
                sp: &s,
                hash: hash.clone(),
                changed_at,
                notices,
                must_tell: 2,
                verdicts: vec![("acme".into(), v.clone()), ("globex".into(), v.clone())],
                safeguard: Ok(()),
                objections: 0,
            };
            let st = status(&o, now);
            crate::conditions::find(&st.conditions, types::NOTICES_DELIVERED)
                .unwrap()
                .reason
                .clone()
        };
        assert_eq!(
            delivered(vec![("acme".into(), record(&refused))]),
            reason::EGRESS_REFUSED
        );
        assert_eq!(
            delivered(vec![
                ("acme".into(), record(&refused)),
                ("globex".into(), record("HTTP 500")),
            ]),
            reason::NOTICE_FAILED,
            "one endpoint down besides: still a failed notice"
        );
    }

    const PERIOD: k8s_openapi::jiff::SignedDuration =
        k8s_openapi::jiff::SignedDuration::from_hours(30 * 24);

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn a_first_notice_is_recorded_with_its_sent_at_and_window_before_it_is_sent() {
        let now = ts("2026-03-02T00:00:00.75Z");
        let r = next_attempt(None, "carrier", "h1", "k", PERIOD, now).unwrap();
        let now = ts("2026-03-02T00:00:00Z"); // what a Kubernetes Time can hold
        assert!(r.awaiting_outcome);
        assert_eq!(r.attempts, 1);
        assert_eq!(r.sent_at, Some(Time(now)));
        assert_eq!(
            r.objection_window_ends,
            Some(Time(ts("2026-04-01T00:00:00Z")))
        );
        assert_eq!(
            (r.subprocessor.as_str(), r.material_hash.as_str()),
            ("carrier", "h1")
        );
    }

    #[test]
    fn a_notice_whose_outcome_was_never_recorded_is_resent_with_the_same_window() {
        let first = next_attempt(
            None,
            "carrier",
            "h1",
            "k",
            PERIOD,
            ts("2026-03-02T00:00:00Z"),
        );
        // The operator died after sending: the record still awaits its outcome.
        let later = ts("2026-03-05T00:00:00Z");
        let again = next_attempt(first.as_ref(), "carrier", "h1", "k", PERIOD, later).unwrap();
        let first = first.unwrap();
        assert_eq!(again.sent_at, first.sent_at);
        assert_eq!(again.objection_window_ends, first.objection_window_ends);
        assert_eq!(again.attempts, 2);
    }

    #[test]
    fn after_a_recorded_failure_the_next_attempt_is_a_new_sending() {
        let mut failed = next_attempt(
            None,
            "carrier",
            "h1",
            "k",
            PERIOD,
            ts("2026-03-02T00:00:00Z"),
        )
        .unwrap();
        failed.awaiting_outcome = false;
        failed.last_failure = Some("HTTP 503".into());
        let later = ts("2026-03-05T00:00:00Z");
        let next = next_attempt(Some(&failed), "carrier", "h1", "k", PERIOD, later).unwrap();
        assert_eq!(next.sent_at, Some(Time(later)));
        assert_eq!(
            next.objection_window_ends,
            Some(Time(ts("2026-04-04T00:00:00Z")))
        );
        assert_eq!(
            next.last_failure.as_deref(),
            Some("HTTP 503"),
            "kept until the outcome"
        );
    }

    #[test]
    fn a_delivered_notice_is_never_sent_again_but_changed_terms_are() {
        let mut delivered = next_attempt(
            None,
            "carrier",
            "h1",
            "k",
            PERIOD,
            ts("2026-03-02T00:00:00Z"),
        )
        .unwrap();
        delivered.awaiting_outcome = false;
        delivered.delivered_at = delivered.sent_at.clone();
        let later = ts("2026-03-05T00:00:00Z");
        assert_eq!(
            next_attempt(Some(&delivered), "carrier", "h1", "k", PERIOD, later),
            None
        );
        let changed = next_attempt(Some(&delivered), "carrier", "h2", "k2", PERIOD, later).unwrap();
        assert_eq!(changed.sent_at, Some(Time(later)));
        assert_eq!(changed.delivered_at, None);
        assert_eq!(changed.attempts, 1);
    }

    #[test]
    fn a_failed_notice_waits_on_its_own_doubling_backoff() {
        let at = |s: &str| ts(s);
        let mut failed = next_attempt(
            None,
            "carrier",
            "h1",
            "k",
            PERIOD,
            at("2026-03-02T00:00:00Z"),
        )
        .unwrap();
        failed.awaiting_outcome = false;
        failed.last_failure = Some("connect".into());
        // First failure: 5 s.
        assert_eq!(
            retry_at(&failed, at("2026-03-02T00:00:01Z")),
            Some(at("2026-03-02T00:00:05Z"))
        );
        assert_eq!(retry_at(&failed, at("2026-03-02T00:00:05Z")), None);
        // Fourth: 40 s; the tenth and later: 5 min.
        failed.attempts = 4;
        assert_eq!(
            retry_at(&failed, at("2026-03-02T00:00:01Z")),
            Some(at("2026-03-02T00:00:40Z"))
        );
        failed.attempts = 40;
        assert_eq!(
            retry_at(&failed, at("2026-03-02T00:00:01Z")),
            Some(at("2026-03-02T00:05:00Z"))
        );
        // Interrupted (never recorded) or never failed: due at once.
        failed.awaiting_outcome = true;
        assert_eq!(retry_at(&failed, at("2026-03-02T00:00:01Z")), None);
    }
}
