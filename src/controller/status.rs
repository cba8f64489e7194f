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

/// Reasons of progress that finishes by itself: a condition turning False with one of
/// these is no news (a new tenant would otherwise start with a burst of Warnings, and
/// every event is a write).
const QUIET_REASONS: &[&str] = &[
    types::reason::PENDING,
    types::reason::PROGRESSING,
    types::reason::ROTATING,
    types::reason::ERASURE_SCHEDULED,
    types::reason::ERASURE_IN_PROGRESS,
];

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
    ctx.metrics.wrote(controller, &format!("{kind}/status"));
    for c in transitions(before_conditions, after_conditions) {
        if c.type_ == types::RECONCILING
            || (c.type_ != types::READY && c.status == "True")
            || QUIET_REASONS.contains(&c.reason.as_str())
        {
            continue;
        }
        let type_ = if c.status == "True" {
            EventType::Normal
        } else {
            EventType::Warning
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

/// Publishes an event on `obj`; failures are logged, never fatal. `action` tells events
/// apart: the recorder folds events of one object with the same type, reason and action
/// into a series that keeps only the first note.
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
    if let Err(e) = ctx.recorder.publish(&ev, &obj.object_ref(&())).await {
        warn!(error = %e, "cannot publish event");
    } else {
        ctx.metrics.wrote(controller, "Event");
    }
}
