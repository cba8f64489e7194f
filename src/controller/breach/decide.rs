//! The pure part of a BreachNotice: who is affected, the deadlines, who is due a notice
//! (the first one or a follow-up), its idempotency key and body, and the status from
//! the per-tenant records. No I/O: the controller (`super`) does the sending.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;
use kube::core::SelectorExt;

use crate::api::v1alpha1::conditions::{self as types, reason};
use crate::api::v1alpha1::{
    AffectedTenants, AuthorityDeadlineMet, BreachNotice, BreachNoticeStatus, BreachReceipts,
    BreachTenantNotice, DeadlinesMet, PLATFORM_LABEL_PREFIX, Tenant, TenantsDeadlineMet,
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
/// Late tenants named in `status.deadlinesMet.tenants.lateTenants` (the CRD's bound).
const MAX_LATE_NAMED: usize = 20;
/// How far authorityNotifiedAt may lie ahead of this clock (another machine's clock, a
/// person's watch) before it reads as a date in the future, which does not count.
pub const CLOCK_SKEW: SignedDuration = SignedDuration::from_mins(5);

/// The tenants a breach affects, as found in `tenants`.
#[derive(Debug, Default)]
pub struct Affected<'a> {
    /// The affected Tenants that exist.
    pub tenants: Vec<&'a Tenant>,
    /// Names listed in `affectedTenants.names` with no such Tenant.
    pub missing: Vec<String>,
}

/// Why the affected tenants cannot be found: a reason and a message.
pub type Unresolved = (&'static str, String);

/// Who `spec` names among `tenants`, or why the selector cannot be used.
pub fn affected<'a>(
    spec: &AffectedTenants,
    tenants: &'a [Tenant],
) -> Result<Affected<'a>, Unresolved> {
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
            return Err((
                reason::NO_TENANTS_AFFECTED,
                "affectedTenants.selector is empty (say allTenants: true for every tenant)".into(),
            ));
        }
        // Admission refuses these too; one admitted before that rule existed must still
        // not decide who is told by a label a tenant's own manifest writes.
        if let Some(key) = foreign_selector_key(selector) {
            return Err((
                reason::SELECTOR_NOT_PLATFORM_OWNED,
                format!(
                    "affectedTenants.selector selects the label {key:?}, which is not under {PLATFORM_LABEL_PREFIX} (labels a tenant's own manifest may write): nobody is notified by it; name the tenants, or select a label under {PLATFORM_LABEL_PREFIX}, in a supplement"
                ),
            ));
        }
        let selector =
            kube::core::Selector::try_from(selector.to_label_selector()).map_err(|e| {
                (
                    reason::NO_TENANTS_AFFECTED,
                    format!("affectedTenants.selector is not a valid label selector: {e}"),
                )
            })?;
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
    Err((
        reason::NO_TENANTS_AFFECTED,
        "affectedTenants names no tenant (exactly one of names, selector or allTenants: true)"
            .into(),
    ))
}

/// The first key `selector` selects on outside the platform's prefix, if any.
pub fn foreign_selector_key(selector: &crate::api::v1alpha1::TenantSelector) -> Option<String> {
    let labels = selector.match_labels.iter().flat_map(|m| m.keys());
    let exprs = selector
        .match_expressions
        .iter()
        .flat_map(|es| es.iter().map(|e| &e.key));
    labels
        .chain(exprs)
        .find(|k| !k.starts_with(PLATFORM_LABEL_PREFIX))
        .cloned()
}

/// authorityNotifiedAt, when it is set and not in the future (beyond [`CLOCK_SKEW`]):
/// only then does it end the authority's deadline series.
pub fn authority_notified_at(bn: &BreachNotice, now: Timestamp) -> Option<Timestamp> {
    let at = bn.spec.authority_notified_at.as_ref()?.0;
    (at <= add(now, CLOCK_SKEW)).then_some(at)
}

/// Whether authorityNotifiedAt lies in the future (beyond [`CLOCK_SKEW`]).
pub fn authority_notified_in_future(bn: &BreachNotice, now: Timestamp) -> bool {
    bn.spec.authority_notified_at.is_some() && authority_notified_at(bn, now).is_none()
}

/// The time to record as `status.firstNoticeAt` before a notice is sent, when none is
/// recorded yet: the earliest notice already sent (one sent before this field existed),
/// or now.
pub fn first_notice_at(records: &[BreachTenantNotice], now: Timestamp) -> Timestamp {
    records
        .iter()
        .filter_map(|r| r.first_sent_at.as_ref().map(|t| t.0))
        .min()
        .unwrap_or_else(|| whole(now))
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
        "supplementOf": s.supplement_of,
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
    pub unresolved: Option<Unresolved>,
    /// Every tenant's record after this reconcile's deliveries.
    pub records: Vec<BreachTenantNotice>,
    /// The configured retention, in days.
    pub retention_days: i64,
    /// How long failing endpoints read as Reconciling before they read as Stalled
    /// (`health.stallAfterSeconds`, as for every kind).
    pub stall_after: SignedDuration,
    /// spec.supplementOf names no BreachNotice.
    pub supplement_of_missing: bool,
    /// The BreachNotices whose spec.supplementOf names this one (sorted).
    pub supplements: Vec<String>,
    /// The breach receipts as the controller found or wrote them (None: unchanged).
    pub receipts: Option<BreachReceipts>,
    /// Why the breach receipts cannot be written (a receipt at Herald's name that is not
    /// Herald's, the signing key): a reason and a message.
    pub evidence_blocked: Option<(&'static str, String)>,
}

/// The deadlines' outcomes: those already recorded in `current` stay as they are
/// (never rewritten); one not yet recorded is recorded once its outcome is known.
pub fn deadlines_met(
    current: Option<&DeadlinesMet>,
    o: &Outcome<'_>,
    now: Timestamp,
) -> Option<DeadlinesMet> {
    let mut met = current.cloned().unwrap_or_default();
    let bn = o.bn;
    let recorded_at = Time(whole(now));
    if met.tenants.is_none() && o.unresolved.is_none() {
        let deadline = deadline(bn);
        let in_time: Vec<&String> = o
            .affected
            .iter()
            .filter(|t| {
                record(o, t)
                    .and_then(|r| r.first_acknowledged_at.as_ref())
                    .is_some_and(|at| at.0 <= deadline)
            })
            .collect();
        let mut late: Vec<String> = o
            .missing
            .iter()
            .chain(o.affected.iter().filter(|t| !in_time.contains(t)))
            .cloned()
            .collect();
        late.sort();
        // Known once the deadline passed, or once every affected tenant was told before.
        if now > deadline || late.is_empty() && !o.affected.is_empty() {
            met.tenants = Some(TenantsDeadlineMet {
                met: late.is_empty(),
                recorded_at: recorded_at.clone(),
                in_time: i64::try_from(in_time.len()).unwrap_or(i64::MAX),
                late: i64::try_from(late.len()).unwrap_or(i64::MAX),
                late_tenants: late.into_iter().take(MAX_LATE_NAMED).collect(),
            });
        }
    }
    if met.authority.is_none()
        && let Some(deadline) = authority_deadline(bn)
    {
        match authority_notified_at(bn, now) {
            Some(at) => {
                met.authority = Some(AuthorityDeadlineMet {
                    met: at <= deadline,
                    recorded_at,
                    notified_at: Some(Time(at)),
                })
            }
            None if now > deadline => {
                met.authority = Some(AuthorityDeadlineMet {
                    met: false,
                    recorded_at,
                    notified_at: None,
                })
            }
            None => {}
        }
    }
    (met != DeadlinesMet::default()).then_some(met)
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
    if let Some((r, why)) = &o.unresolved {
        blocked.push((r, why.clone()));
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
    let tenants_blocked = blocked.len();
    // Findings that need a person but do not keep the tenants from being told: after
    // the tenants' own (TenantsNotified does not name them).
    if authority_notified_in_future(bn, now) {
        blocked.push((
            reason::AUTHORITY_NOTIFIED_AT_IN_FUTURE,
            format!(
                "spec.authorityNotifiedAt lies in the future (more than {:#} ahead of the operator's clock): it does not count as the supervisory authority told, and its 72-hour deadline stays tracked; set the time the authority was notified",
                CLOCK_SKEW
            ),
        ));
    }
    if o.supplement_of_missing {
        blocked.push((
            reason::SUPPLEMENT_OF_NOT_FOUND,
            format!(
                "spec.supplementOf names {:?}, which is no BreachNotice of this namespace; its notices are sent all the same, naming it",
                bn.spec.supplement_of.as_deref().unwrap_or_default()
            ),
        ));
    }
    if let Some((r, why)) = &o.evidence_blocked {
        blocked.push((r, why.clone()));
    }
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
        let why = blocked[..tenants_blocked]
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
        first_notice_at: current.first_notice_at.clone(),
        deadlines_met: deadlines_met(current.deadlines_met.as_ref(), o, now),
        supplements: o.supplements.clone(),
        receipts: o.receipts.clone().or(current.receipts.clone()),
    }
}

#[cfg(test)]
pub(crate) mod tests {
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
    fn affected_by_names_platform_label_selector_or_explicitly_all() {
        let tier = "platform.herald.dev/tier";
        let ts = vec![
            tenant("a", serde_json::json!({tier: "gold", "tier": "free"})),
            tenant("b", serde_json::json!({tier: "free", "tier": "gold"})),
        ];
        let by = |v| affected(&breach(v, 1).spec.affected_tenants, &ts).unwrap();
        let named = by(serde_json::json!({"names": ["a", "gone"]}));
        assert_eq!(
            (names(&named), named.missing),
            (vec!["a".into()], vec!["gone".into()])
        );
        let sel = by(serde_json::json!({"selector": {"matchLabels": {tier: "gold"}}}));
        assert_eq!(names(&sel), vec!["a"]);
        let expr = by(serde_json::json!({"selector": {"matchExpressions": [
            {"key": tier, "operator": "In", "values": ["gold", "free"]}]}}));
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
            serde_json::json!({"selector": {"matchExpressions": [{"key": tier, "operator": "Near"}]}}),
            1,
        );
        assert_eq!(
            affected(&bad.spec.affected_tenants, &ts).unwrap_err().0,
            reason::NO_TENANTS_AFFECTED
        );
        // A label the tenants' own manifests write decides nothing, whichever form.
        for foreign in [
            serde_json::json!({"matchLabels": {"tier": "gold"}}),
            serde_json::json!({"matchLabels": {tier: "gold", "tier": "gold"}}),
            serde_json::json!({"matchExpressions": [{"key": "herald.dev/tier", "operator": "Exists"}]}),
            serde_json::json!({"matchExpressions": [{"key": "platform.herald.dev.evil/x", "operator": "Exists"}]}),
        ] {
            let b = breach(serde_json::json!({"selector": foreign}), 1);
            let (r, m) = affected(&b.spec.affected_tenants, &ts).unwrap_err();
            assert_eq!(r, reason::SELECTOR_NOT_PLATFORM_OWNED, "{foreign}");
            assert!(m.contains("platform.herald.dev/"), "{m}");
        }
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
            supplement_of_missing: false,
            supplements: Vec::new(),
            receipts: None,
            evidence_blocked: None,
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

    #[test]
    fn authority_notified_in_the_future_does_not_count_and_is_said() {
        let now = ts("2026-03-02T10:00:00Z");
        let mut b = breach(serde_json::json!({"allTenants": true}), 1);
        assert_eq!(authority_notified_at(&b, now), None);
        assert!(!authority_notified_in_future(&b, now));
        // Within the clock skew: it counts.
        b.spec.authority_notified_at = Some(Time(ts("2026-03-02T10:04:00Z")));
        assert_eq!(
            authority_notified_at(&b, now),
            Some(ts("2026-03-02T10:04:00Z"))
        );
        b.spec.authority_notified_at = Some(Time(ts("2026-03-02T10:06:00Z")));
        assert_eq!(authority_notified_at(&b, now), None);
        assert!(authority_notified_in_future(&b, now));
        let ack = |t: &str| acknowledged(next_attempt(None, t, 1, "k", now).unwrap(), now);
        let st = status(&outcome(&b, vec![ack("a"), ack("b")]), now);
        assert_eq!(
            reason_of(&st, types::STALLED),
            (
                "True".into(),
                reason::AUTHORITY_NOTIFIED_AT_IN_FUTURE.into()
            )
        );
        // The tenants were told all the same, and their condition says so.
        assert_eq!(st.state.as_deref(), Some("Notified"));
        assert_eq!(reason_of(&st, types::TENANTS_NOTIFIED).0, "True");
        assert_eq!(
            st.deadlines_met.as_ref().and_then(|m| m.authority.as_ref()),
            None,
            "not recorded while it lies in the future"
        );
    }

    #[test]
    fn deadline_outcomes_are_recorded_once_and_never_rewritten() {
        let b = breach(serde_json::json!({"allTenants": true}), 1);
        let early = ts("2026-03-02T10:00:00Z");
        let ack = |t: &str, at| acknowledged(next_attempt(None, t, 1, "k", at).unwrap(), at);
        // Only a told before the deadline: nothing is known yet.
        let o = outcome(&b, vec![ack("a", early)]);
        assert_eq!(deadlines_met(None, &o, early), None);
        // The deadline passed: b is late; the authority was never told: missed.
        let after = ts("2026-03-05T08:00:01Z");
        let o = outcome(&b, vec![ack("a", early)]);
        let met = deadlines_met(None, &o, after).unwrap();
        let tenants = met.tenants.clone().unwrap();
        assert_eq!((tenants.met, tenants.in_time, tenants.late), (false, 1, 1));
        assert_eq!(tenants.late_tenants, vec!["b"]);
        assert_eq!(tenants.recorded_at, Time(after));
        let authority = met.authority.clone().unwrap();
        assert_eq!((authority.met, authority.notified_at), (false, None));
        // Later: b acknowledges and authorityNotifiedAt is back-dated into the deadline.
        // Neither changes what was recorded.
        let mut backdated = b.clone();
        backdated.spec.authority_notified_at = Some(Time(ts("2026-03-02T09:00:00Z")));
        let later = ts("2026-03-06T00:00:00Z");
        let o = outcome(&backdated, vec![ack("a", early), ack("b", later)]);
        assert_eq!(deadlines_met(Some(&met), &o, later), Some(met.clone()));
        // Everyone told before the deadline: met, recorded at once; the authority too.
        let o = outcome(&backdated, vec![ack("a", early), ack("b", early)]);
        let met = deadlines_met(None, &o, early).unwrap();
        assert!(met.tenants.as_ref().unwrap().met);
        assert_eq!(met.tenants.as_ref().unwrap().in_time, 2);
        let authority = met.authority.unwrap();
        assert!(authority.met);
        assert_eq!(
            authority.notified_at,
            Some(Time(ts("2026-03-02T09:00:00Z")))
        );
        // A named tenant that does not exist is late; an unusable selector records nothing.
        let mut o = outcome(&b, vec![ack("a", early), ack("b", early)]);
        o.missing = vec!["gone".into()];
        let t = deadlines_met(None, &o, after).unwrap().tenants.unwrap();
        assert_eq!((t.met, t.late_tenants), (false, vec!["gone".to_owned()]));
        let mut o = outcome(&b, Vec::new());
        o.unresolved = Some((reason::SELECTOR_NOT_PLATFORM_OWNED, "x".into()));
        assert!(deadlines_met(None, &o, after).unwrap().tenants.is_none());
        // Through status: a recorded outcome is carried unchanged.
        let mut since = b.clone();
        since.status = Some(BreachNoticeStatus {
            deadlines_met: deadlines_met(None, &outcome(&b, vec![ack("a", early)]), after),
            ..Default::default()
        });
        let st = status(
            &outcome(&since, vec![ack("a", early), ack("b", later)]),
            later,
        );
        assert_eq!(
            st.deadlines_met,
            since.status.as_ref().unwrap().deadlines_met
        );
    }

    #[test]
    fn the_first_notice_time_and_supplements_are_kept_in_status() {
        let now = ts("2026-03-02T10:00:00.7Z");
        assert_eq!(first_notice_at(&[], now), ts("2026-03-02T10:00:00Z"));
        let earlier = next_attempt(None, "a", 1, "k", ts("2026-03-02T09:00:00Z")).unwrap();
        assert_eq!(
            first_notice_at(&[earlier], now),
            ts("2026-03-02T09:00:00Z"),
            "a notice sent before the field existed"
        );
        let mut b = breach(serde_json::json!({"allTenants": true}), 1);
        b.status = Some(BreachNoticeStatus {
            first_notice_at: Some(Time(ts("2026-03-02T09:00:00Z"))),
            ..Default::default()
        });
        let mut o = outcome(&b, Vec::new());
        o.supplements = vec!["b1-more".into()];
        let st = status(&o, now);
        assert_eq!(st.first_notice_at, Some(Time(ts("2026-03-02T09:00:00Z"))));
        assert_eq!(st.supplements, vec!["b1-more"]);
        // A supplement names the first in its notices, and is Stalled when it is missing.
        let mut sup = breach(serde_json::json!({"names": ["a"]}), 1);
        sup.spec.supplement_of = Some("b1-first".into());
        let record = next_attempt(None, "a", 1, "k", now).unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&body(&sup, &record)).unwrap();
        assert_eq!(doc["supplementOf"], "b1-first");
        let mut o = outcome(&sup, Vec::new());
        o.supplement_of_missing = true;
        let st = status(&o, now);
        assert_eq!(
            reason_of(&st, types::STALLED),
            ("True".into(), reason::SUPPLEMENT_OF_NOT_FOUND.into())
        );
        // A receipt conflict is said, after what keeps tenants from being told.
        let mut o = outcome(&b, Vec::new());
        o.evidence_blocked = Some((reason::RECEIPT_CONFLICT, "planted".into()));
        let st = status(&o, now);
        assert_eq!(reason_of(&st, types::STALLED).1, reason::RECEIPT_CONFLICT);
        assert_eq!(
            reason_of(&st, types::TENANTS_NOTIFIED).1,
            reason::PROGRESSING
        );
    }
}
