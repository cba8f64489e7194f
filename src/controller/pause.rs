//! The pause annotation (`herald.dev/paused`): whether an object is paused
//! ([`is_paused`], the one reading every controller uses), and the status of a paused
//! ChannelBinding or Subprocessor, as a paused Tenant has it (`tenant::status::paused`): `Paused=True`, `observedGeneration`
//! following the spec, every other condition as last observed; or, for an object never
//! reconciled, `Ready=False`/`Reconciling=True` with reason `Paused`. So Argo CD's health
//! check reads Suspended, and kstatus neither waits forever on an old generation nor
//! calls an object Herald never looked at Current. Pure: conditions in, conditions out.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;

use super::PAUSED_ANNOTATION;
use crate::api::v1alpha1::conditions::{self as types, reason};
use crate::conditions::{Desired, is_true, merge};

/// Whether `annotations` pause their object: the annotation is exactly `true`.
///
/// Admission admits only `true` and `false` (the ValidatingAdmissionPolicy
/// herald-paused-annotation). An object stored before that policy may carry another
/// value ("False", "yes", ""): it is not paused. A pause holds back what Herald would
/// otherwise do, which includes compliance work, so only the one unambiguous value
/// holds anything; and what a pause may never hold (termination, erasure, residency
/// eviction, the DPA gate, the status and deadline series of a breach or a request) each
/// controller does whatever this says.
pub fn is_paused(annotations: &BTreeMap<String, String>) -> bool {
    annotations
        .get(PAUSED_ANNOTATION)
        .is_some_and(|v| v == "true")
}

/// `conditions` (computed as for an object that is not paused) with `Paused=True`
/// added: for a kind whose status a pause does not hold (a BreachNotice, a
/// DataSubjectRequest: their deadlines must stay visible so alerts can fire), `what`
/// naming what the pause holds back. The transition time is kept from `current`.
pub fn with_paused(
    mut conditions: Vec<Condition>,
    current: &[Condition],
    holds: &str,
    generation: Option<i64>,
    now: Timestamp,
) -> Vec<Condition> {
    conditions.retain(|c| c.type_ != types::PAUSED);
    let paused = merge(
        current,
        &[Desired::yes(
            types::PAUSED,
            reason::PAUSED,
            format!(
                "the annotation {PAUSED_ANNOTATION} is set: {holds} until it is removed; status and deadlines are kept as usual"
            ),
        )],
        generation,
        now,
    );
    conditions.extend(paused);
    conditions.sort_by(|a, b| a.type_.cmp(&b.type_));
    conditions
}

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

    fn annotated(value: Option<&str>) -> BTreeMap<String, String> {
        value
            .map(|v| BTreeMap::from([(PAUSED_ANNOTATION.to_owned(), v.to_owned())]))
            .unwrap_or_default()
    }

    #[test]
    fn only_exactly_true_pauses() {
        assert!(is_paused(&annotated(Some("true"))));
        for value in [
            None,
            Some("false"),
            Some("False"),
            Some("FALSE"),
            Some("TRUE"),
            Some("True"),
            Some("yes"),
            Some(""),
            Some(" true"),
            Some("1"),
        ] {
            assert!(!is_paused(&annotated(value)), "{value:?}");
        }
    }

    #[test]
    fn a_paused_status_keeps_the_computed_conditions_and_adds_paused() {
        let computed = merge(
            &[],
            &[
                Desired::no(types::READY, reason::RECONCILED, "overdue"),
                Desired::no(types::STALLED, reason::RECONCILED, "nothing blocks"),
            ],
            Some(3),
            t(10),
        );
        let cs = with_paused(computed.clone(), &[], "no notice is sent", Some(3), t(10));
        assert_eq!(cs.len(), 3);
        assert_eq!(find(&cs, types::READY), ("False", reason::RECONCILED));
        assert_eq!(find(&cs, types::PAUSED), ("True", reason::PAUSED));
        let paused = crate::conditions::find(&cs, types::PAUSED).unwrap();
        assert!(
            paused.message.contains("no notice is sent"),
            "{}",
            paused.message
        );
        // Its transition time is kept on the next pass.
        let again = with_paused(computed, &cs, "no notice is sent", Some(3), t(99));
        assert_eq!(
            crate::conditions::find(&again, types::PAUSED)
                .unwrap()
                .last_transition_time
                .0,
            t(10)
        );
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
