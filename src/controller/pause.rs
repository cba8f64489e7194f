//! The status of a paused ChannelBinding or Subprocessor (`herald.dev/paused`), as a
//! paused Tenant has it (`tenant::status::paused`): `Paused=True`, `observedGeneration`
//! following the spec, every other condition as last observed; or, for an object never
//! reconciled, `Ready=False`/`Reconciling=True` with reason `Paused`. So Argo CD's health
//! check reads Suspended, and kstatus neither waits forever on an old generation nor
//! calls an object Herald never looked at Current. Pure: conditions in, conditions out.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;

use super::PAUSED_ANNOTATION;
use crate::api::v1alpha1::conditions::{self as types, reason};
use crate::conditions::{Desired, is_true, merge};

/// The conditions to write for an object paused at `generation` (`what` names it for a
/// person: "binding", "Subprocessor"), or `None` when its status already says so.
pub fn conditions(
    current: &[Condition],
    observed_generation: Option<i64>,
    generation: Option<i64>,
    what: &str,
    now: Timestamp,
) -> Option<Vec<Condition>> {
    if is_true(current, types::PAUSED) && observed_generation == generation {
        return None;
    }
    let never_reconciled = current.is_empty();
    let message = if never_reconciled {
        format!(
            "the annotation {PAUSED_ANNOTATION} is set: Herald has not reconciled this {what} yet and does when the annotation is removed"
        )
    } else if observed_generation != generation {
        format!(
            "the annotation {PAUSED_ANNOTATION} is set: Herald leaves this {what} alone; spec changes (generation {}) are applied when it is removed",
            generation.unwrap_or_default()
        )
    } else {
        format!(
            "the annotation {PAUSED_ANNOTATION} is set: Herald leaves this {what} alone until it is removed"
        )
    };
    let mut desired: Vec<Desired> = if never_reconciled {
        vec![
            Desired::no(
                types::READY,
                reason::PAUSED,
                "not reconciled: paused before the first reconcile",
            ),
            Desired::no(
                types::STALLED,
                reason::PAUSED,
                "nothing blocks progress but the pause",
            ),
            Desired::yes(
                types::RECONCILING,
                reason::PAUSED,
                "not reconciled yet: waiting for the pause to be lifted",
            ),
        ]
    } else {
        kept_as_observed(current)
    };
    desired.push(Desired::yes(types::PAUSED, reason::PAUSED, message));
    Some(merge(current, &desired, generation, now))
}

/// Every condition but `Paused` as last observed, as decided conditions: the pause
/// changes nothing Herald did (a paused Tenant keeps its conditions the same way).
pub fn kept_as_observed(current: &[Condition]) -> Vec<Desired> {
    current
        .iter()
        .filter_map(|c| {
            let type_ = types::TYPES
                .iter()
                .find(|t| **t == c.type_ && **t != types::PAUSED)?;
            let reason = reason::ALL
                .iter()
                .find(|r| **r == c.reason)
                .copied()
                .unwrap_or(reason::PENDING);
            Some(Desired {
                type_,
                status: c.status == "True",
                reason,
                message: c.message.clone(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap()
    }

    fn find<'a>(cs: &'a [Condition], type_: &str) -> (&'a str, &'a str) {
        let c = crate::conditions::find(cs, type_).unwrap_or_else(|| panic!("no {type_}"));
        (c.status.as_str(), c.reason.as_str())
    }

    #[test]
    fn never_reconciled_reads_in_progress_not_ready() {
        let cs = conditions(&[], None, Some(1), "binding", t(10)).unwrap();
        assert_eq!(find(&cs, types::PAUSED), ("True", reason::PAUSED));
        assert_eq!(find(&cs, types::READY), ("False", reason::PAUSED));
        assert_eq!(find(&cs, types::RECONCILING), ("True", reason::PAUSED));
        assert_eq!(find(&cs, types::STALLED), ("False", reason::PAUSED));
        assert!(cs.iter().all(|c| c.observed_generation == Some(1)));
    }

    #[test]
    fn a_spec_change_while_paused_keeps_what_was_observed_at_the_new_generation() {
        let before = merge(
            &[],
            &[
                Desired::yes(types::READY, reason::RECONCILED, "in place"),
                Desired::no(
                    types::RECONCILING,
                    reason::RECONCILED,
                    "nothing in progress",
                ),
                Desired::no(types::STALLED, reason::RECONCILED, "nothing blocks"),
            ],
            Some(1),
            t(10),
        );
        let cs = conditions(&before, Some(1), Some(2), "Subprocessor", t(20)).unwrap();
        assert_eq!(find(&cs, types::READY), ("True", reason::RECONCILED));
        assert_eq!(find(&cs, types::RECONCILING), ("False", reason::RECONCILED));
        let paused = crate::conditions::find(&cs, types::PAUSED).unwrap();
        assert!(
            paused.message.contains("generation 2"),
            "{}",
            paused.message
        );
        assert!(cs.iter().all(|c| c.observed_generation == Some(2)));
        // Ready's transition time is kept: it did not flip.
        let ready = crate::conditions::find(&cs, types::READY).unwrap();
        assert_eq!(ready.last_transition_time.0, t(10));
        // Written once per generation.
        assert_eq!(
            conditions(&cs, Some(2), Some(2), "Subprocessor", t(30)),
            None
        );
    }
}
