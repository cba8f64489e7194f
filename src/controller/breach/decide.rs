//! The pure part of a BreachNotice: who is affected, the deadlines, who is due a notice
//! (the first one or a follow-up), its idempotency key and body, and the status from
//! the per-tenant records. No I/O: the controller (`super`) does the sending.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;
use kube::core::SelectorExt;

use crate::api::v1alpha1::conditions::{self as types, reason};
use crate::api::v1alpha1::{
    AffectedTenants, BreachNotice, BreachNoticeStatus, BreachTenantNotice, Tenant,
};
use crate::conditions::{Desired, merge};

/// Art. 33(2) as the DPAs word it: the controller is told within 48 hours of awareness.
pub const CUSTOMER_DEADLINE: SignedDuration = SignedDuration::from_hours(48);
/// Art. 33(1): the supervisory authority within 72 hours, for the platform's own data.
pub const AUTHORITY_DEADLINE: SignedDuration = SignedDuration::from_hours(72);
/// Failed attempts in a row after which a tenant is named as failing: with the backoff
/// (5 s, 10 s, …) that is within a minute of the first notice, hours before any deadline.
pub const FAILING_AFTER: u32 = 3;
/// Tenants named in a condition message; the rest are counted.
const MAX_NAMED: usize = 10;

/// The tenants a breach affects, as found in `tenants`.
#[derive(Debug, Default)]
pub struct Affected<'a> {
    /// The affected Tenants that exist.
    pub tenants: Vec<&'a Tenant>,
    /// Names listed in `affectedTenants.names` with no such Tenant.
    pub missing: Vec<String>,
}

/// Who `spec` names among `tenants`, or why the selector cannot be used.
pub fn affected<'a>(spec: &AffectedTenants, tenants: &'a [Tenant]) -> Result<Affected<'a>, String> {
    if let Some(names) = &spec.names {
        let mut found = Affected::default();
        for name in names {
            match tenants
                .iter()
                .find(|t| t.metadata.name.as_ref() == Some(name))
            {
                Some(t) => found.tenants.push(t),
                None => found.missing.push(name.clone()),
            }
        }
        return Ok(found);
    }
    if let Some(selector) = &spec.selector {
        // Admission refuses an empty selector too: it would mean "all" by omission.
        if selector.match_labels.as_ref().is_none_or(|m| m.is_empty())
            && selector
                .match_expressions
                .as_ref()
                .is_none_or(|e| e.is_empty())
        {
            return Err(
                "affectedTenants.selector is empty (say allTenants: true for every tenant)".into(),
            );
        }
        let selector = kube::core::Selector::try_from(selector.clone())
            .map_err(|e| format!("affectedTenants.selector is not a valid label selector: {e}"))?;
        let tenants = tenants
            .iter()
            .filter(|t| selector.matches(t.labels()))
            .collect();
        return Ok(Affected {
            tenants,
            missing: Vec::new(),
        });
    }
    if spec.all_tenants == Some(true) {
        return Ok(Affected {
            tenants: tenants.iter().collect(),
            missing: Vec::new(),
        });
    }
    // Admission refuses this (exactly one of the three); never "all" by omission.
    Err(
        "affectedTenants names no tenant (exactly one of names, selector or allTenants: true)"
            .into(),
    )
}

/// awareAt + 48 hours.
pub fn deadline(bn: &BreachNotice) -> Timestamp {
    add(bn.spec.aware_at.0, CUSTOMER_DEADLINE)
}

/// awareAt + 72 hours, where the platform's own data is involved.
pub fn authority_deadline(bn: &BreachNotice) -> Option<Timestamp> {
    (bn.spec.platform_data_involved == Some(true))
        .then(|| add(bn.spec.aware_at.0, AUTHORITY_DEADLINE))
}

/// awareAt + `days` (the configured retention).
pub fn retain_until(bn: &BreachNotice, days: i64) -> Timestamp {
    add(
        bn.spec.aware_at.0,
        SignedDuration::from_hours(days.clamp(0, 100 * 366) * 24),
    )
}

/// `at + d`, or the latest representable time (awareAt is admitted only before 2200, so
/// this never saturates in practice).
fn add(at: Timestamp, d: SignedDuration) -> Timestamp {
    at.checked_add(d).unwrap_or(Timestamp::MAX)
}

/// Whole seconds: a Kubernetes Time stores no fraction, and a resent notice must say
/// exactly what the first one said.
fn whole(t: Timestamp) -> Timestamp {
    Timestamp::from_second(t.as_second()).unwrap_or(t)
}

/// The `webhook-id` of the notice of `generation` of the breach (by namespace, name and
/// uid: a breach deleted and created again is another breach) to `tenant`: the same for
/// every retry, a new one for every follow-up and every tenant.
pub fn idempotency_key(bn: &BreachNotice, generation: i64, tenant: &str) -> String {
    crate::digest::sha256_hex(
        format!(
            "breach-notice\n{}/{}\n{}\n{generation}\n{tenant}",
            bn.namespace().unwrap_or_default(),
            bn.name_any(),
            bn.uid().unwrap_or_default(),
        )
        .as_bytes(),
    )
}

/// The record to write before sending the notice of `generation` to a tenant whose
/// record is `existing`, at `now`; `None` when that notice was acknowledged (never sent
/// again). A notice whose outcome was never recorded (`awaitingOutcome`: the operator
/// stopped between sending and recording) is sent again unchanged, same sentAt; a spec
/// change makes a new notice (a follow-up) with its own key and attempts.
pub fn next_attempt(
    existing: Option<&BreachTenantNotice>,
    tenant: &str,
    generation: i64,
    key: &str,
    now: Timestamp,
) -> Option<BreachTenantNotice> {
    let now = whole(now);
    let mut record = match existing {
        Some(r) if r.generation == generation => {
            if r.acknowledged_at.is_some() {
                return None;
            }
            r.clone()
        }
        // A new generation: the history (first sent, first acknowledged) stays.
        other => BreachTenantNotice {
            tenant: tenant.to_owned(),
            generation,
            first_sent_at: other.and_then(|r| r.first_sent_at.clone()),
            first_acknowledged_at: other.and_then(|r| r.first_acknowledged_at.clone()),
            ..BreachTenantNotice::default()
        },
    };
    record.idempotency_key = key.to_owned();
    if !(record.awaiting_outcome && record.sent_at.is_some()) {
        record.sent_at = Some(Time(now));
    }
    if record.first_sent_at.is_none() {
        record.first_sent_at = record.sent_at.clone();
    }
    record.awaiting_outcome = true;
    record.attempts = record.attempts.saturating_add(1);
    record.last_attempt_at = Some(Time(now));
    Some(record)
}

/// The record after the tenant's endpoint acknowledged it at `now`.
pub fn acknowledged(mut record: BreachTenantNotice, now: Timestamp) -> BreachTenantNotice {
    let now = Time(whole(now));
    record.awaiting_outcome = false;
    record.last_failure = None;
    record.acknowledged_at = Some(now.clone());
    if record.first_acknowledged_at.is_none() {
        record.first_acknowledged_at = Some(now);
    }
    record
}

/// The record after an attempt failed with `why` (a status, a transport class, or what
/// is wrong with the signing secret; never a value).
pub fn failed(mut record: BreachTenantNotice, why: String) -> BreachTenantNotice {
    record.awaiting_outcome = false;
    record.last_failure = Some(why);
    record
}

/// When a failed notice may be attempted again, if not now (its own backoff, kept in
/// the record, so neither a restart nor a burst of reconciles resets or hastens it).
pub fn retry_at(record: &BreachTenantNotice, now: Timestamp) -> Option<Timestamp> {
    if record.awaiting_outcome || record.last_failure.is_none() {
        return None;
    }
    crate::controller::subprocessor::notice::backoff_due(
        record.last_attempt_at.as_ref()?.0,
        record.attempts,
        now,
    )
}

/// The JSON body of the notice in `record` to its tenant. A follow-up is a notice to a
/// tenant that acknowledged an earlier one of this breach.
pub fn body(bn: &BreachNotice, record: &BreachTenantNotice) -> Vec<u8> {
    let s = &bn.spec;
    let at = |t: &Option<Time>| t.as_ref().map(|t| t.0.to_string());
    let doc = serde_json::json!({
        "type": "breach.notice",
        "idempotencyKey": record.idempotency_key,
        "tenant": record.tenant,
        "breach": bn.name_any(),
        "generation": record.generation,
        "followUp": record.first_acknowledged_at.is_some(),
        "sentAt": at(&record.sent_at),
        "awareAt": s.aware_at.0.to_string(),
        "deadline": deadline(bn).to_string(),
        "nature": s.nature,
        "dataCategories": s.data_categories,
        "approximateRecords": s.approximate_records,
        "approximateDataSubjects": s.approximate_data_subjects,
        "likelyConsequences": s.likely_consequences,
        "measures": s.measures,
        "contact": s.contact,
        "platformDataInvolved": s.platform_data_involved.unwrap_or(false),
    });
    doc.to_string().into_bytes()
}

/// What the reconcile found, for the status.
pub struct Outcome<'a> {
    /// The BreachNotice as read.
    pub bn: &'a BreachNotice,
    /// The affected tenants' names (existing ones), and which of them have no
    /// notification endpoint.
    pub affected: Vec<String>,
    /// Affected tenants without `spec.notifications`.
    pub no_endpoint: Vec<String>,
    /// Named tenants that do not exist.
    pub missing: Vec<String>,
    /// Why the affected tenants could not be found (an unusable selector).
    pub unresolved: Option<String>,
    /// Every tenant's record after this reconcile's deliveries.
    pub records: Vec<BreachTenantNotice>,
    /// The configured retention, in days.
    pub retention_days: i64,
    /// How long failing endpoints read as Reconciling before they read as Stalled
    /// (`health.stallAfterSeconds`, as for every kind).
    pub stall_after: SignedDuration,
}

/// How many affected tenants (including named ones that do not exist) have not yet
/// acknowledged any notice of the breach: what the 48-hour deadline is about.
pub fn unnotified(o: &Outcome<'_>) -> usize {
    o.missing.len()
        + o.affected
            .iter()
            .filter(|t| record(o, t).is_none_or(|r| r.first_acknowledged_at.is_none()))
            .count()
}

fn record<'a>(o: &'a Outcome<'_>, tenant: &str) -> Option<&'a BreachTenantNotice> {
    o.records.iter().find(|r| r.tenant == tenant)
}

fn named(who: &[String]) -> String {
    let mut list: Vec<String> = who.iter().take(MAX_NAMED).cloned().collect();
    if who.len() > MAX_NAMED {
        list.push(format!(
            "and {} more (see each Tenant's status.breachNotices)",
            who.len() - MAX_NAMED
        ));
    }
    list.join(", ")
}

/// The summary status given `o`, at `now`. The per-tenant records are not part of it:
/// each is in its Tenant's status, written as its delivery happens.
pub fn status(o: &Outcome<'_>, now: Timestamp) -> BreachNoticeStatus {
    let bn = o.bn;
    let generation = bn.metadata.generation.unwrap_or_default();
    let current = bn.status.clone().unwrap_or_default();
    let deadline = deadline(bn);
    let is_current_ack = |t: &String| {
        record(o, t).is_some_and(|r| r.generation == generation && r.acknowledged_at.is_some())
    };
    let acked = o.affected.iter().filter(|t| is_current_ack(t)).count();
    let total = o.affected.len() + o.missing.len();
    let failing: Vec<String> = o
        .affected
        .iter()
        .filter(|t| !is_current_ack(t) && !o.no_endpoint.contains(t))
        .filter_map(|t| {
            let r = record(o, t)?;
            (r.generation == generation && r.attempts >= FAILING_AFTER)
                .then_some(())
                .and(r.last_failure.as_ref())
                .map(|why| format!("{t} ({why}, {} attempts)", r.attempts))
        })
        .collect();
    let pending: Vec<String> = o
        .affected
        .iter()
        .filter(|t| !is_current_ack(t) && !o.no_endpoint.contains(t))
        .filter(|t| !failing.iter().any(|f| f.starts_with(&format!("{t} ("))))
        .cloned()
        .collect();

    // The blocking findings first: each needs a person (a phone call, a fixed manifest).
    let mut blocked: Vec<(&'static str, String)> = Vec::new();
    if let Some(why) = &o.unresolved {
        blocked.push((reason::NO_TENANTS_AFFECTED, why.clone()));
    } else if total == 0 {
        blocked.push((
            reason::NO_TENANTS_AFFECTED,
            "affectedTenants.selector matches no Tenant: nobody can be notified".into(),
        ));
    }
    if !o.missing.is_empty() {
        blocked.push((
            reason::TENANT_NOT_FOUND,
            format!("named tenants that do not exist: {}", named(&o.missing)),
        ));
    }
    if !o.no_endpoint.is_empty() {
        blocked.push((
            reason::NO_NOTIFICATION_ENDPOINT,
            format!(
                "tenants without spec.notifications, to be told another way (call them): {}",
                named(&o.no_endpoint)
            ),
        ));
    }
    let mut parts: Vec<String> = blocked.iter().map(|(_, m)| m.clone()).collect();
    if !failing.is_empty() {
        parts.push(format!(
            "endpoints that keep failing, retried (call them): {}",
            named(&failing)
        ));
    }
    if !pending.is_empty() {
        parts.push(format!("being delivered to: {}", named(&pending)));
    }
    let notified = parts.is_empty();
    let tenants_notified = if notified {
        Desired::yes(
            types::TENANTS_NOTIFIED,
            reason::RECONCILED,
            format!(
                "all {total} affected tenants acknowledged the notice of generation {generation}"
            ),
        )
    } else {
        let why = blocked
            .first()
            .map(|(r, _)| *r)
            .or((!failing.is_empty()).then_some(reason::NOTICE_FAILING))
            .unwrap_or(reason::PROGRESSING);
        Desired::no(
            types::TENANTS_NOTIFIED,
            why,
            format!(
                "{acked}/{total} affected tenants acknowledged the latest notice; {}",
                parts.join("; ")
            ),
        )
    };
    // Failing endpoints are retried by Herald itself: Reconciling for stallAfter, then
    // Stalled (still retrying), and stalled until they recover rather than flapping.
    let failing_too_long = !failing.is_empty()
        && (crate::controller::channel_binding::decide::converging_too_long(
            &current.conditions,
            o.stall_after,
            now,
        ) || crate::conditions::find(&current.conditions, types::STALLED)
            .is_some_and(|c| c.status == "True" && c.reason == reason::NOTICE_FAILING));
    let stalled = blocked.first().map(|(r, m)| (*r, m.clone())).or_else(|| {
        failing_too_long.then(|| {
            (
                reason::NOTICE_FAILING,
                format!(
                    "endpoints failing for more than {:#}, still retrying, but a person should call them: {}",
                    o.stall_after,
                    named(&failing)
                ),
            )
        })
    });
    let reconciling = stalled.is_none() && !notified;
    let ready = match (&stalled, reconciling) {
        (Some((r, m)), _) => Desired::no(types::READY, r, m.clone()),
        (None, true) => Desired::no(
            types::READY,
            if failing.is_empty() {
                reason::PROGRESSING
            } else {
                reason::NOTICE_FAILING
            },
            "delivering the notice to affected tenants",
        ),
        (None, false) => Desired::yes(
            types::READY,
            reason::RECONCILED,
            format!("every affected tenant acknowledged the latest notice ({acked}/{total})"),
        ),
    };
    let desired = vec![
        ready,
        crate::conditions::stalled(stalled.clone()),
        crate::conditions::reconciling(reconciling.then(|| {
            (
                reason::PROGRESSING,
                "delivering the notice to affected tenants".to_owned(),
            )
        })),
        tenants_notified,
    ];
    let state = if notified {
        "Notified"
    } else if now > deadline && unnotified(o) > 0 {
        "Overdue"
    } else {
        "Notifying"
    };
    BreachNoticeStatus {
        observed_generation: bn.metadata.generation,
        conditions: merge(&current.conditions, &desired, bn.metadata.generation, now),
        deadline: Some(Time(deadline)),
        authority_deadline: authority_deadline(bn).map(Time),
        retain_until: Some(Time(retain_until(bn, o.retention_days))),
        state: Some(state.to_owned()),
        acknowledged: Some(format!("{acked}/{total}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    pub(crate) fn breach(affected: serde_json::Value, generation: i64) -> BreachNotice {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "herald.dev/v1alpha1", "kind": "BreachNotice",
            "metadata": {"name": "b1", "namespace": "herald-system", "uid": "u1", "generation": generation},
            "spec": {
                "awareAt": "2026-03-02T08:00:00Z",
                "affectedTenants": affected,
                "nature": "a misconfigured export bucket",
                "contact": {"name": "Data Protection Office", "email": "dpo@platform.example"},
                "platformDataInvolved": true,
            }
        }))
        .unwrap()
    }

    fn tenant(name: &str, labels: serde_json::Value) -> Tenant {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "herald.dev/v1alpha1", "kind": "Tenant",
            "metadata": {"name": name, "labels": labels},
            "spec": {"displayName": name, "contract": {"state": "Active"},
                     "residency": {"regions": ["eu-central-1"]}, "retentionPolicyRef": {"name": "p"}}
        }))
        .unwrap()
    }

    fn names(a: &Affected<'_>) -> Vec<String> {
        a.tenants.iter().map(|t| t.name_any()).collect()
    }

    #[test]
    fn affected_by_names_selector_or_explicitly_all() {
        let ts = vec![
            tenant("a", serde_json::json!({"tier": "gold"})),
            tenant("b", serde_json::json!({"tier": "free"})),
        ];
        let by = |v| affected(&breach(v, 1).spec.affected_tenants, &ts).unwrap();
        let named = by(serde_json::json!({"names": ["a", "gone"]}));
        assert_eq!(
            (names(&named), named.missing),
            (vec!["a".into()], vec!["gone".into()])
        );
        let sel = by(serde_json::json!({"selector": {"matchLabels": {"tier": "gold"}}}));
        assert_eq!(names(&sel), vec!["a"]);
        let expr = by(serde_json::json!({"selector": {"matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["gold", "free"]}]}}));
        assert_eq!(names(&expr), vec!["a", "b"]);
        assert_eq!(
            names(&by(serde_json::json!({"allTenants": true}))),
            vec!["a", "b"]
        );
        // Never "all" by omission.
        let none = breach(serde_json::json!({}), 1);
        assert!(affected(&none.spec.affected_tenants, &ts).is_err());
        let empty = breach(serde_json::json!({"selector": {}}), 1);
        assert!(affected(&empty.spec.affected_tenants, &ts).is_err());
        let bad = breach(
            serde_json::json!({"selector": {"matchExpressions": [{"key": "tier", "operator": "Near"}]}}),
            1,
        );
        assert!(affected(&bad.spec.affected_tenants, &ts).is_err());
    }

    #[test]
    fn deadlines_are_48_and_72_hours_after_awareness() {
        let b = breach(serde_json::json!({"allTenants": true}), 1);
        assert_eq!(deadline(&b), ts("2026-03-04T08:00:00Z"));
        assert_eq!(authority_deadline(&b), Some(ts("2026-03-05T08:00:00Z")));
        assert_eq!(retain_until(&b, 1825), ts("2031-03-01T08:00:00Z"));
        let mut own = b.clone();
        own.spec.platform_data_involved = None;
        assert_eq!(authority_deadline(&own), None);
    }

    #[test]
    fn each_generation_and_tenant_has_its_own_key_and_retries_keep_it() {
        let b1 = breach(serde_json::json!({"allTenants": true}), 1);
        let k = idempotency_key(&b1, 1, "a");
        assert_eq!(k, idempotency_key(&b1, 1, "a"));
        assert_ne!(k, idempotency_key(&b1, 2, "a"), "a follow-up");
        assert_ne!(k, idempotency_key(&b1, 1, "b"));
        let mut again = b1.clone();
        again.metadata.uid = Some("u2".into());
        assert_ne!(k, idempotency_key(&again, 1, "a"), "a re-created breach");
    }

    #[test]
    fn a_notice_is_sent_until_acknowledged_and_a_follow_up_keeps_the_history() {
        let t0 = ts("2026-03-02T09:00:00.5Z");
        let first = next_attempt(None, "a", 1, "k1", t0).unwrap();
        assert!(first.awaiting_outcome);
        assert_eq!(first.sent_at, Some(Time(ts("2026-03-02T09:00:00Z"))));
        assert_eq!(first.first_sent_at, first.sent_at);
        // Interrupted: sent again unchanged.
        let resent = next_attempt(Some(&first), "a", 1, "k1", ts("2026-03-02T09:01:00Z")).unwrap();
        assert_eq!(
            (resent.sent_at.clone(), resent.attempts),
            (first.sent_at.clone(), 2)
        );
        // Failed: the next attempt is a new sending on its backoff.
        let f = failed(resent, "HTTP 503".into());
        assert_eq!(
            retry_at(&f, ts("2026-03-02T09:01:01Z")),
            Some(ts("2026-03-02T09:01:10Z"))
        );
        let t2 = ts("2026-03-02T09:02:00Z");
        let retry = next_attempt(Some(&f), "a", 1, "k1", t2).unwrap();
        assert_eq!(retry.sent_at, Some(Time(t2)));
        let done = acknowledged(retry, t2);
        assert_eq!(done.first_acknowledged_at, Some(Time(t2)));
        assert_eq!(done.last_failure, None);
        assert_eq!(
            next_attempt(Some(&done), "a", 1, "k1", t2),
            None,
            "never sent twice"
        );
        // A spec change: a follow-up, new key, attempts from 1, history kept.
        let t3 = ts("2026-03-02T12:00:00Z");
        let follow = next_attempt(Some(&done), "a", 2, "k2", t3).unwrap();
        assert_eq!(
            (
                follow.generation,
                follow.idempotency_key.as_str(),
                follow.attempts
            ),
            (2, "k2", 1)
        );
        assert_eq!(follow.acknowledged_at, None);
        assert_eq!(follow.first_sent_at, first.first_sent_at);
        assert_eq!(follow.first_acknowledged_at, Some(Time(t2)));
        let b = breach(serde_json::json!({"allTenants": true}), 2);
        let body: serde_json::Value = serde_json::from_slice(&body(&b, &follow)).unwrap();
        assert_eq!(body["followUp"], true);
        assert_eq!(body["deadline"], "2026-03-04T08:00:00Z");
        let initial: serde_json::Value = serde_json::from_slice(&super::body(&b, &first)).unwrap();
        assert_eq!(initial["followUp"], false);
    }

    fn outcome<'a>(b: &'a BreachNotice, records: Vec<BreachTenantNotice>) -> Outcome<'a> {
        Outcome {
            bn: b,
            affected: vec!["a".into(), "b".into()],
            no_endpoint: Vec::new(),
            missing: Vec::new(),
            unresolved: None,
            records,
            retention_days: 1825,
            stall_after: SignedDuration::from_mins(15),
        }
    }

    fn reason_of(st: &BreachNoticeStatus, t: &str) -> (String, String) {
        let c = crate::conditions::find(&st.conditions, t).unwrap();
        (c.status.clone(), c.reason.clone())
    }

    #[test]
    fn status_names_failing_and_unreachable_tenants_and_is_stable() {
        let b = breach(serde_json::json!({"allTenants": true}), 1);
        let now = ts("2026-03-02T10:00:00Z");
        let a = acknowledged(next_attempt(None, "a", 1, "ka", now).unwrap(), now);
        let mut bad = failed(
            next_attempt(None, "b", 1, "kb", now).unwrap(),
            "connect".into(),
        );
        let o = outcome(&b, vec![a.clone(), bad.clone()]);
        let st = status(&o, now);
        assert_eq!(
            reason_of(&st, types::TENANTS_NOTIFIED).1,
            reason::PROGRESSING
        );
        assert!(crate::conditions::is_true(
            &st.conditions,
            types::RECONCILING
        ));
        assert_eq!(st.acknowledged.as_deref(), Some("1/2"));
        assert_eq!(st.state.as_deref(), Some("Notifying"));
        // Three failures in a row: named, with the failure class.
        bad.attempts = FAILING_AFTER;
        let o = outcome(&b, vec![a.clone(), bad.clone()]);
        let st = status(&o, now);
        let c = crate::conditions::find(&st.conditions, types::TENANTS_NOTIFIED).unwrap();
        assert_eq!(c.reason, reason::NOTICE_FAILING);
        assert!(
            c.message.contains("b (connect, 3 attempts)"),
            "{}",
            c.message
        );
        // Past the deadline: overdue.
        let late = status(&o, ts("2026-03-04T08:00:01Z"));
        assert_eq!(late.state.as_deref(), Some("Overdue"));
        // Failing for longer than stallAfter: Stalled (still retried), and it stays so.
        let mut since = b.clone();
        since.status = Some(st.clone());
        let o_since = Outcome {
            bn: &since,
            ..outcome(&b, vec![a.clone(), bad.clone()])
        };
        let stuck = status(&o_since, ts("2026-03-02T10:16:00Z"));
        assert_eq!(
            reason_of(&stuck, types::STALLED),
            ("True".into(), reason::NOTICE_FAILING.into())
        );
        assert_eq!(reason_of(&stuck, types::RECONCILING).0, "False");
        since.status = Some(stuck.clone());
        let o_again = Outcome {
            bn: &since,
            ..outcome(&b, vec![a.clone(), bad.clone()])
        };
        assert_eq!(status(&o_again, ts("2026-03-02T10:17:00Z")), stuck);
        // No endpoint: named at once, Stalled.
        let mut o = outcome(&b, vec![a.clone()]);
        o.no_endpoint = vec!["b".into()];
        let st = status(&o, now);
        assert_eq!(
            reason_of(&st, types::STALLED),
            ("True".into(), reason::NO_NOTIFICATION_ENDPOINT.into())
        );
        let c = crate::conditions::find(&st.conditions, types::TENANTS_NOTIFIED).unwrap();
        assert!(c.message.contains("(call them): b"), "{}", c.message);
        assert_eq!(unnotified(&o), 1);
        // A recompute on its own output is identical (no status write loop).
        let mut again = b.clone();
        again.status = Some(st.clone());
        let o2 = Outcome { bn: &again, ..o };
        assert_eq!(status(&o2, ts("2026-03-02T11:00:00Z")), st);
    }

    #[test]
    fn notified_only_when_every_tenant_acknowledged_the_latest_generation() {
        let now = ts("2026-03-02T10:00:00Z");
        let ack = |t: &str, g| acknowledged(next_attempt(None, t, g, "k", now).unwrap(), now);
        let b1 = breach(serde_json::json!({"allTenants": true}), 1);
        let st = status(&outcome(&b1, vec![ack("a", 1), ack("b", 1)]), now);
        assert_eq!(st.state.as_deref(), Some("Notified"));
        assert_eq!(
            reason_of(&st, types::READY),
            ("True".into(), reason::RECONCILED.into())
        );
        // Generation 2: the old acknowledgements do not count for the follow-up.
        let b2 = breach(serde_json::json!({"allTenants": true}), 2);
        let o = outcome(&b2, vec![ack("a", 2), ack("b", 1)]);
        let st = status(&o, now);
        assert_eq!(st.acknowledged.as_deref(), Some("1/2"));
        assert_eq!(st.state.as_deref(), Some("Notifying"));
        assert_eq!(unnotified(&o), 0, "both were told within the deadline");
        // Nobody affected: stalled, not "notified".
        let mut empty = outcome(&b1, Vec::new());
        empty.affected.clear();
        let st = status(&empty, now);
        assert_eq!(
            reason_of(&st, types::STALLED).1,
            reason::NO_TENANTS_AFFECTED
        );
    }
}
