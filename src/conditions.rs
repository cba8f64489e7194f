//! Status conditions in the `metav1.Condition` shape, merged the way kstatus readers
//! (Argo CD, Flux, `kubectl wait`) expect: `lastTransitionTime` moves only when the
//! status flips, every condition carries the generation it was computed from, and the
//! list is sorted by type so that an unchanged world yields an identical status (and
//! therefore no status patch).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// A condition as a reconcile decides it, before times and generation are attached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desired {
    /// Condition type, e.g. `Ready`.
    pub type_: &'static str,
    /// True or False (Unknown is never decided by Herald: it knows or it says why not).
    pub status: bool,
    /// CamelCase reason constant.
    pub reason: &'static str,
    /// A sentence for a person.
    pub message: String,
}

impl Desired {
    /// A True condition.
    pub fn yes(type_: &'static str, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            type_,
            status: true,
            reason,
            message: message.into(),
        }
    }

    /// A False condition.
    pub fn no(type_: &'static str, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            type_,
            status: false,
            reason,
            message: message.into(),
        }
    }
}

/// `Stalled`, as every kind says it: True with the reason and message of what blocks
/// progress, or False, "nothing blocks progress".
pub fn stalled(why: Option<(&'static str, String)>) -> Desired {
    use crate::api::v1alpha1::conditions::{self as types, reason};
    match why {
        Some((r, m)) => Desired::yes(types::STALLED, r, m),
        None => Desired::no(
            types::STALLED,
            reason::RECONCILED,
            "nothing blocks progress",
        ),
    }
}

/// `Reconciling`, as every kind says it: True with the reason and message of what is
/// in progress, or False, "converged".
pub fn reconciling(why: Option<(&'static str, String)>) -> Desired {
    use crate::api::v1alpha1::conditions::{self as types, reason};
    match why {
        Some((r, m)) => Desired::yes(types::RECONCILING, r, m),
        None => Desired::no(types::RECONCILING, reason::RECONCILED, "converged"),
    }
}

fn status_str(b: bool) -> &'static str {
    if b { "True" } else { "False" }
}

/// Merges `desired` into `current`: conditions of types not in `desired` are dropped,
/// `lastTransitionTime` is kept unless the status flips, and the result is sorted by
/// type. `now` is injected so that the merge is a pure function.
pub fn merge(
    current: &[Condition],
    desired: &[Desired],
    generation: Option<i64>,
    now: Timestamp,
) -> Vec<Condition> {
    let mut out: Vec<Condition> = desired
        .iter()
        .map(|d| {
            let status = status_str(d.status);
            let last_transition_time = current
                .iter()
                .find(|c| c.type_ == d.type_ && c.status == status)
                .map(|c| c.last_transition_time.clone())
                .unwrap_or(Time(now));
            Condition {
                type_: d.type_.to_owned(),
                status: status.to_owned(),
                reason: d.reason.to_owned(),
                message: d.message.clone(),
                observed_generation: generation,
                last_transition_time,
            }
        })
        .collect();
    out.sort_by(|a, b| a.type_.cmp(&b.type_));
    out
}

/// The condition of `type_`, if present.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether the condition of `type_` is True.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find(conditions, type_).is_some_and(|c| c.status == "True")
}

/// The types whose status differs between `before` and `after` (for events on
/// transitions, not on every reconcile).
pub fn transitions<'a>(before: &[Condition], after: &'a [Condition]) -> Vec<&'a Condition> {
    after
        .iter()
        .filter(|a| {
            find(before, &a.type_).is_none_or(|b| b.status != a.status || b.reason != a.reason)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap()
    }

    #[test]
    fn transition_time_is_kept_while_status_holds() {
        let first = merge(
            &[],
            &[Desired::yes("Ready", "Reconciled", "ok")],
            Some(1),
            t(100),
        );
        let again = merge(
            &first,
            &[Desired::yes("Ready", "Reconciled", "still ok")],
            Some(2),
            t(200),
        );
        assert_eq!(again[0].last_transition_time, Time(t(100)));
        assert_eq!(again[0].observed_generation, Some(2));
        assert_eq!(again[0].message, "still ok");
    }

    #[test]
    fn transition_time_moves_when_status_flips() {
        let first = merge(
            &[],
            &[Desired::yes("Ready", "Reconciled", "ok")],
            Some(1),
            t(100),
        );
        let flipped = merge(
            &first,
            &[Desired::no("Ready", "RegionNotAllowed", "no")],
            Some(1),
            t(300),
        );
        assert_eq!(flipped[0].last_transition_time, Time(t(300)));
        assert_eq!(flipped[0].status, "False");
    }

    #[test]
    fn same_decision_gives_identical_conditions() {
        let d = [
            Desired::no("Stalled", "X", "m"),
            Desired::yes("Ready", "Y", "m"),
        ];
        let first = merge(&[], &d, Some(3), t(100));
        assert_eq!(merge(&first, &d, Some(3), t(999)), first);
        assert_eq!(first[0].type_, "Ready", "sorted by type");
    }

    #[test]
    fn transitions_name_only_what_changed() {
        let before = merge(
            &[],
            &[
                Desired::yes("Ready", "R", "m"),
                Desired::yes("DPASigned", "S", "m"),
            ],
            None,
            t(1),
        );
        let after = merge(
            &before,
            &[
                Desired::no("Ready", "R2", "m"),
                Desired::yes("DPASigned", "S", "m2"),
            ],
            None,
            t(2),
        );
        let changed: Vec<_> = transitions(&before, &after)
            .iter()
            .map(|c| c.type_.as_str())
            .collect();
        assert_eq!(changed, vec!["Ready"]);
    }
}
