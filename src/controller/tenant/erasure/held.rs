//! Objects in erasure's scope that erasure cannot delete: a DELETE the API refuses (an
//! admission policy, RBAC), or an object still there `erasure.stuckAfterSeconds` after
//! its deletion (a finalizer nobody removes; the tenant namespace, held by one of its
//! objects). None of them holds the erasure past its deadline: each is recorded in
//! `notErased` with its reason and what the API said, taken out of the inventory of
//! what was deleted (the receipt never claims it), and the erasure completes; the
//! `Erased` condition (reason `ObjectsHeld`) and `herald_erasure_objects_held` say a
//! person must delete it, until Herald sees it gone.
//!
//! Pure: no client, table-tested.

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::scope::ObjectId;
use crate::api::v1alpha1::conditions::reason;
use crate::api::v1alpha1::{DeletedKind, NotErasedObject};

/// What to do with one object erasure must delete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Not being deleted yet: delete it.
    Delete,
    /// Being deleted, for less than the stuck bound: wait for it.
    Wait,
    /// Being deleted for longer: recorded, not waited for (the message says why).
    Stuck(String),
}

/// The verdict on an object with `meta`, at `now`.
pub fn judge(meta: &ObjectMeta, now: Timestamp, stuck_after: SignedDuration) -> Verdict {
    let Some(since) = meta.deletion_timestamp.as_ref() else {
        return Verdict::Delete;
    };
    if now.duration_since(since.0) < stuck_after {
        return Verdict::Wait;
    }
    let finalizers = meta.finalizers.clone().unwrap_or_default();
    Verdict::Stuck(if finalizers.is_empty() {
        format!("deletion requested at {} has not completed", since.0)
    } else {
        format!(
            "deletion requested at {} is held by finalizers {}",
            since.0,
            finalizers.join(", ")
        )
    })
}

/// Why a namespace's deletion is held, from the conditions the namespace controller
/// writes while it cannot finish (the finalizers and the content remaining).
pub fn namespace_holders(ns: &Namespace) -> Option<String> {
    let why: Vec<String> = ns
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .filter(|c| {
            c.status == "True"
                && matches!(
                    c.type_.as_str(),
                    "NamespaceFinalizersRemaining"
                        | "NamespaceContentRemaining"
                        | "NamespaceDeletionContentFailure"
                        | "NamespaceDeletionDiscoveryFailure"
                )
        })
        .filter_map(|c| c.message.clone())
        .collect();
    (!why.is_empty()).then(|| why.join("; "))
}

/// Whether a DELETE answered with `code` is refused for good, so that retrying it
/// holds the erasure for nothing: forbidden (an admission policy, RBAC), not allowed on
/// the kind, a conflict, or invalid. Anything else (the API server unavailable, a
/// timeout) is retried.
pub fn refused_for_good(code: u16) -> bool {
    matches!(code, 400 | 403 | 405 | 409 | 422)
}

/// The longest `message` kept (what the API said can be long; status must stay small).
const MESSAGE_LIMIT: usize = 300;

/// `message` cut to [`MESSAGE_LIMIT`] characters.
fn bounded(message: &str) -> String {
    if message.chars().count() <= MESSAGE_LIMIT {
        return message.to_owned();
    }
    let mut cut: String = message.chars().take(MESSAGE_LIMIT).collect();
    cut.push('…');
    cut
}

/// The record of an object erasure could not delete.
pub fn record(id: &ObjectId, why: &'static str, message: &str) -> NotErasedObject {
    NotErasedObject {
        api_version: id.api_version.clone(),
        kind: id.kind.clone(),
        namespace: id.namespace.clone(),
        name: id.name.clone(),
        uid: id.uid.clone(),
        reason: why.into(),
        message: Some(bounded(message)),
        resolved_at: None,
    }
}

/// Whether `o` was left because erasure could not delete it (rather than by design:
/// not Herald's, outside the scope).
pub fn is_held(o: &NotErasedObject) -> bool {
    o.reason == reason::DELETION_REFUSED || o.reason == reason::DELETION_STUCK
}

/// The held objects a person has not removed yet.
pub fn outstanding(not_erased: &[NotErasedObject]) -> impl Iterator<Item = &NotErasedObject> {
    not_erased
        .iter()
        .filter(|o| is_held(o) && o.resolved_at.is_none())
}

/// Whether the object with `uid` is already recorded as held.
pub fn already_held(not_erased: &[NotErasedObject], uid: &str) -> bool {
    !uid.is_empty() && not_erased.iter().any(|o| is_held(o) && o.uid == uid)
}

/// The inventory without the objects erasure could not delete: the receipt's `deleted`
/// claims only what went.
pub fn without_held(
    inventory: Vec<DeletedKind>,
    not_erased: &[NotErasedObject],
) -> Vec<DeletedKind> {
    inventory
        .into_iter()
        .filter_map(|mut k| {
            let before = k.uids.len();
            k.uids.retain(|uid| {
                !not_erased.iter().any(|o| {
                    is_held(o)
                        && o.uid == *uid
                        && o.kind == k.kind
                        && o.api_version == k.api_version
                })
            });
            let removed = before - k.uids.len();
            k.count -= i64::try_from(removed).unwrap_or(0);
            (k.count > 0 || !k.uids.is_empty()).then_some(k)
        })
        .collect()
}

/// Marks the outstanding held objects that `still_there` no longer reports as resolved
/// at `now`; whether any changed.
pub fn resolve(
    not_erased: &mut [NotErasedObject],
    still_there: impl Fn(&NotErasedObject) -> bool,
    now: Timestamp,
) -> bool {
    let mut changed = false;
    for o in not_erased.iter_mut() {
        if is_held(o) && o.resolved_at.is_none() && !still_there(o) {
            o.resolved_at = Some(Time(now));
            changed = true;
        }
    }
    changed
}

/// An object as people name it: `Kind namespace/name`, or `Kind name` when it is
/// cluster-scoped.
pub fn object_ref(kind: &str, namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

/// The one-line account of the held objects, for the condition and the note.
pub fn summary(not_erased: &[NotErasedObject]) -> Option<String> {
    let held: Vec<String> = outstanding(not_erased)
        .map(|o| {
            format!(
                "{} ({})",
                object_ref(&o.kind, o.namespace.as_deref(), &o.name),
                o.reason
            )
        })
        .collect();
    if held.is_empty() {
        return None;
    }
    let shown = held.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
    let more = held.len().saturating_sub(5);
    Some(format!(
        "{} objects in the erasure scope could not be deleted and remain: {shown}{}; a person must delete them (see status.erasure.notErased and docs/operations.md)",
        held.len(),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn meta(v: serde_json::Value) -> ObjectMeta {
        serde_json::from_value(v).unwrap()
    }

    fn id(kind: &str, uid: &str) -> ObjectId {
        ObjectId {
            api_version: "v1".into(),
            kind: kind.into(),
            resource: format!("{}s", kind.to_lowercase()),
            namespace: Some("herald-system".into()),
            name: format!("n-{uid}"),
            uid: uid.into(),
        }
    }

    #[test]
    fn an_object_is_deleted_waited_for_then_recorded_as_stuck() {
        let bound = SignedDuration::from_secs(600);
        let now = at("2026-12-07T12:00:00Z");
        assert_eq!(
            judge(&meta(json!({"name": "a"})), now, bound),
            Verdict::Delete
        );
        let deleting = |since: &str, finalizers: serde_json::Value| {
            meta(json!({"name": "a", "deletionTimestamp": since, "finalizers": finalizers}))
        };
        assert_eq!(
            judge(
                &deleting("2026-12-07T11:50:01Z", json!(["x.example/hold"])),
                now,
                bound
            ),
            Verdict::Wait,
            "599 s is not stuck yet"
        );
        let Verdict::Stuck(why) = judge(
            &deleting("2026-12-07T11:50:00Z", json!(["x.example/hold"])),
            now,
            bound,
        ) else {
            panic!("600 s is stuck");
        };
        assert!(why.contains("x.example/hold"), "{why}");
        let Verdict::Stuck(why) = judge(&deleting("2020-01-01T00:00:00Z", json!([])), now, bound)
        else {
            panic!("stuck without a finalizer too");
        };
        assert!(why.contains("has not completed"), "{why}");
        // A deletion timestamp in the future (a skewed clock) is waited for, not a panic.
        assert_eq!(
            judge(&deleting("2099-01-01T00:00:00Z", json!([])), now, bound),
            Verdict::Wait
        );
    }

    #[test]
    fn refusals_for_good_are_not_retried_outages_are() {
        for code in [400, 403, 405, 409, 422] {
            assert!(refused_for_good(code), "{code}");
        }
        for code in [404, 429, 500, 503, 504] {
            assert!(!refused_for_good(code), "{code}");
        }
    }

    #[test]
    fn held_objects_leave_the_inventory_and_are_resolved_once_gone() {
        let mut not_erased = vec![
            record(
                &id("Secret", "u1"),
                reason::DELETION_REFUSED,
                "denied by policy",
            ),
            NotErasedObject {
                reason: reason::OUTSIDE_ERASURE_SCOPE.into(),
                ..record(&id("ConfigMap", "u9"), reason::DELETION_REFUSED, "")
            },
        ];
        let inventory = vec![
            DeletedKind {
                api_version: "v1".into(),
                kind: "Secret".into(),
                count: 2,
                uids: vec!["u1".into(), "u2".into()],
            },
            DeletedKind {
                api_version: "v1".into(),
                kind: "ConfigMap".into(),
                count: 1,
                uids: vec!["u9".into()],
            },
        ];
        let left = without_held(inventory, &not_erased);
        assert_eq!(left.len(), 2, "{left:?}");
        assert_eq!(
            (left[0].count, left[0].uids.clone()),
            (1, vec!["u2".to_owned()])
        );
        assert_eq!(
            left[1].count, 1,
            "an object left by design was never in the inventory's way"
        );
        assert!(already_held(&not_erased, "u1"));
        assert!(
            !already_held(&not_erased, "u9"),
            "left by design is not held"
        );
        assert!(!already_held(&not_erased, ""));
        let s = summary(&not_erased).unwrap();
        assert!(
            s.starts_with("1 objects") && s.contains("Secret herald-system/n-u1 (DeletionRefused)"),
            "{s}"
        );
        let now = at("2026-12-07T12:00:00Z");
        assert!(!resolve(&mut not_erased, |_| true, now), "still there");
        assert!(resolve(&mut not_erased, |_| false, now));
        assert_eq!(not_erased[0].resolved_at, Some(Time(now)));
        assert_eq!(
            not_erased[1].resolved_at, None,
            "only held objects are resolved"
        );
        assert_eq!(summary(&not_erased), None);
        assert!(!resolve(&mut not_erased, |_| false, now), "once");
    }

    #[test]
    fn a_fully_held_kind_leaves_the_inventory_and_messages_are_bounded() {
        let held = vec![record(
            &id("Secret", "u1"),
            reason::DELETION_STUCK,
            &"x".repeat(5000),
        )];
        assert!(held[0].message.as_ref().unwrap().chars().count() <= MESSAGE_LIMIT + 1);
        let inventory = vec![DeletedKind {
            api_version: "v1".into(),
            kind: "Secret".into(),
            count: 1,
            uids: vec!["u1".into()],
        }];
        assert!(without_held(inventory, &held).is_empty());
    }

    #[test]
    fn a_namespace_says_what_holds_it() {
        let ns: Namespace = serde_json::from_value(json!({
            "metadata": {"name": "tenant-a"},
            "status": {"phase": "Terminating", "conditions": [
                {"type": "NamespaceDeletionDiscoveryFailure", "status": "False", "message": "ok"},
                {"type": "NamespaceFinalizersRemaining", "status": "True",
                 "message": "Some content in the namespace has finalizers remaining: x.example/hold in 1 resource instances"}
            ]}
        }))
        .unwrap();
        assert_eq!(
            namespace_holders(&ns).as_deref(),
            Some(
                "Some content in the namespace has finalizers remaining: x.example/hold in 1 resource instances"
            )
        );
        assert_eq!(namespace_holders(&Namespace::default()), None);
    }
}
