//! Writing status and events, shared by every controller: the status is server-side
//! applied to `/status` only when it differs from what is stored, and each condition
//! that changed becomes one event.

use std::fmt::Debug;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::warn;

use super::{Context, Error, FIELD_MANAGER};
use crate::api::v1alpha1::conditions as types;
use crate::conditions::transitions;

/// Reasons of progress that finishes by itself, or of a state a person chose (a
/// suspended or terminated contract): a condition turning False with one of these is no
/// news. A new tenant would otherwise start with a burst of Warnings, and every event
/// is a write.
const QUIET_REASONS: &[&str] = &[
    types::reason::PENDING,
    types::reason::PROGRESSING,
    types::reason::ROTATING,
    types::reason::ERASURE_SCHEDULED,
    types::reason::ERASURE_IN_PROGRESS,
    types::reason::CONTRACT_SUSPENDED,
    types::reason::CONTRACT_TERMINATED,
    types::reason::TENANT_TERMINATED,
];

/// Whether a condition that just changed is worth an event, and of which type. `Ready`
/// always is (Normal when True); `Stalled` and `DeletionOverdue` are bad news when True;
/// any other condition when it turns False, unless for a [`QUIET_REASONS`] reason.
/// `Reconciling` and `Paused` never are (kstatus bookkeeping; a person set the pause).
pub fn newsworthy(c: &Condition) -> Option<EventType> {
    let is_true = c.status == "True";
    let quiet = QUIET_REASONS.contains(&c.reason.as_str());
    match c.type_.as_str() {
        types::RECONCILING | types::PAUSED => None,
        types::STALLED | types::DELETION_OVERDUE => is_true.then_some(EventType::Warning),
        types::READY if is_true => Some(EventType::Normal),
        _ if is_true || quiet => None,
        _ => Some(EventType::Warning),
    }
}

/// Applies `after` as `obj`'s status unless it equals `before`, then publishes an event
/// per condition transition (the summary `Ready` either way, the others when they turn
/// False; `Reconciling` flapping during a rollout, and progress with a
/// [`QUIET_REASONS`] reason, are not news).
pub async fn publish<K, S>(
    ctx: &Context,
    controller: &str,
    api: &Api<K>,
    obj: &K,
    (before, before_conditions): (&S, &[Condition]),
    (after, after_conditions): (&S, &[Condition]),
) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned,
    S: Serialize + PartialEq,
{
    if before == after {
        return Ok(());
    }
    let name = obj.name_any();
    let kind = K::kind(&());
    let uid = obj.meta().uid.clone().unwrap_or_default();
    let rv = obj.meta().resource_version.clone().unwrap_or_default();
    let digest = digest(after);
    if ctx.written.already(&uid, &rv, digest) {
        return Ok(());
    }
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": kind,
        "status": after,
    });
    api.patch_status(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(Error::kube(format!("patch status of {kind} {name}")))?;
    ctx.written.record(uid, rv, digest);
    ctx.metrics.wrote(controller, &format!("{kind}/status"));
    for c in transitions(before_conditions, after_conditions) {
        let Some(type_) = newsworthy(c) else {
            continue;
        };
        let note = format!("{} is {}: {}", c.type_, c.status, c.message);
        event(
            ctx,
            controller,
            obj,
            type_,
            &c.reason,
            &format!("Set{}", c.type_),
            note,
        )
        .await;
    }
    Ok(())
}

/// The status last written per object (by uid): the resourceVersion the object had when
/// it was written, and a digest of what was written. Two reconciles of one object in
/// quick succession (a CronJob and its Job finishing together) may both start from the
/// cached object as it was before the first one's patch reached the cache; the second
/// would write the same status again. When the object is still at the version the last
/// write started from and the status is the one written, the write is already done.
#[derive(Default)]
pub struct Written(std::sync::Mutex<std::collections::HashMap<String, (String, u64)>>);

impl Written {
    fn already(&self, uid: &str, rv: &str, digest: u64) -> bool {
        self.0
            .lock()
            .ok()
            .and_then(|m| m.get(uid).cloned())
            .is_some_and(|(r, d)| r == rv && d == digest)
    }

    fn record(&self, uid: String, rv: String, digest: u64) {
        if let Ok(mut m) = self.0.lock() {
            m.insert(uid, (rv, digest));
        }
    }

    /// Forgets a deleted object.
    pub fn forget(&self, uid: &str) {
        if let Ok(mut m) = self.0.lock() {
            m.remove(uid);
        }
    }
}

fn digest<S: Serialize>(status: &S) -> u64 {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut h = DefaultHasher::new();
    serde_json::to_string(status)
        .unwrap_or_default()
        .hash(&mut h);
    h.finish()
}

/// Publishes an event on `obj`; failures are logged, never fatal. `action` tells events
/// apart: events of one object with the same type, reason and action fold into a series
/// that keeps only the first note (see [`super::events`]).
pub async fn event<K>(
    ctx: &Context,
    controller: &str,
    obj: &K,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) where
    K: Resource<DynamicType = ()>,
{
    let ev = Event {
        type_,
        reason: reason.to_owned(),
        note: Some(note),
        action: action.to_owned(),
        secondary: None,
    };
    if let Err(e) = ctx.events.publish(&ev, &obj.object_ref(&())).await {
        warn!(error = %e, "cannot publish event");
    } else {
        ctx.metrics.wrote(controller, "Event");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::v1alpha1::conditions::reason;

    fn c(type_: &str, status: bool, reason: &str) -> Condition {
        Condition {
            type_: type_.into(),
            status: if status { "True" } else { "False" }.into(),
            reason: reason.into(),
            message: String::new(),
            last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ),
            observed_generation: None,
        }
    }

    #[test]
    fn a_status_written_from_a_version_is_not_written_again_from_it() {
        let w = Written::default();
        w.record("u1".into(), "10".into(), 7);
        assert!(w.already("u1", "10", 7), "same version, same status: done");
        assert!(
            !w.already("u1", "11", 7),
            "the cache caught up: compare as usual"
        );
        assert!(!w.already("u1", "10", 8), "another status: write it");
        assert!(!w.already("u2", "10", 7));
        w.forget("u1");
        assert!(!w.already("u1", "10", 7));
    }

    #[test]
    fn only_news_makes_an_event() {
        let cases = [
            (
                c(types::READY, true, reason::RECONCILED),
                Some(EventType::Normal),
            ),
            (
                c(types::READY, false, reason::DPA_MISSING),
                Some(EventType::Warning),
            ),
            (c(types::READY, false, reason::PROGRESSING), None),
            (
                c(types::SENDERS_AVAILABLE, false, reason::PROGRESSING),
                None,
            ),
            (
                c(types::SENDERS_AVAILABLE, false, reason::CONTRACT_SUSPENDED),
                None,
            ),
            (
                c(
                    types::RESIDENCY_COMPLIANT,
                    false,
                    reason::REGION_NOT_ALLOWED,
                ),
                Some(EventType::Warning),
            ),
            (
                c(types::RESIDENCY_COMPLIANT, true, reason::RECONCILED),
                None,
            ),
            (
                c(types::CREDENTIAL_CURRENT, false, reason::PROVIDER_FAILED),
                Some(EventType::Warning),
            ),
            (c(types::CREDENTIAL_CURRENT, false, reason::ROTATING), None),
            (
                c(types::STALLED, true, reason::DPA_MISSING),
                Some(EventType::Warning),
            ),
            (c(types::STALLED, false, reason::RECONCILED), None),
            (
                c(types::DELETION_OVERDUE, false, reason::WITHIN_DEADLINE),
                None,
            ),
            (
                c(types::DELETION_OVERDUE, true, reason::ERASURE_OVERDUE),
                Some(EventType::Warning),
            ),
            (c(types::RECONCILING, true, reason::PROGRESSING), None),
            (c(types::PAUSED, true, reason::PAUSED), None),
        ];
        for (cond, want) in cases {
            assert_eq!(
                newsworthy(&cond),
                want,
                "{} {} {}",
                cond.type_,
                cond.status,
                cond.reason
            );
        }
    }
}
