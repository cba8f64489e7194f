//! The erasure pipeline as a state machine: which step a tenant is in follows from its
//! `status.erasure` alone (plus the clock and two facts of the spec and the cluster),
//! so a killed operator resumes at the step its last status write recorded, and a test
//! can stop at each step (`status.erasure.step` names it).
//!
//! Pure: no I/O. Each step has one executor (`super::exec`), and a failure inside it is
//! a [`StepError`] naming the step, in the metrics, the conditions and the logs.

use k8s_openapi::jiff::Timestamp;

use crate::api::v1alpha1::ErasureStatus;
use crate::controller::Error;

/// One step of the erasure pipeline, in the order a tenant goes through them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Step {
    /// `ReturnThenDelete`: the export Job runs until it has an outcome or its window ends.
    Export,
    /// Senders stopped; waiting for `eraseFrom` (or the Tenant's deletion).
    AwaitErasure,
    /// Records `erasingSince`: from here on the stack is never applied again.
    StartErasure,
    /// Chooses the purge targets from a live list of the bindings and records them.
    SelectTargets,
    /// Runs the purge Job until every recorded target is confirmed.
    Purge,
    /// Records what erasure deletes and what it leaves (found-not-erased).
    Inventory,
    /// Deletes what the inventory's scope allows and verifies nothing of it remains.
    DeleteAndVerify,
    /// Writes the signed deletion receipt.
    WriteReceipt,
    /// Delivers the receipt to the customer's endpoint (retried; the tenant is erased).
    DeliverReceipt,
    /// Erased, verified, receipt written and delivered.
    Done,
}

impl Step {
    /// Every step, in order (for the metrics and the docs).
    pub const ALL: &'static [Step] = &[
        Step::Export,
        Step::AwaitErasure,
        Step::StartErasure,
        Step::SelectTargets,
        Step::Purge,
        Step::Inventory,
        Step::DeleteAndVerify,
        Step::WriteReceipt,
        Step::DeliverReceipt,
        Step::Done,
    ];

    /// The step's stable name: `status.erasure.step`, the `step` label of
    /// `herald_erasure_step_errors_total`, the `step` field of the logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Export => "export",
            Step::AwaitErasure => "awaitErasure",
            Step::StartErasure => "startErasure",
            Step::SelectTargets => "selectTargets",
            Step::Purge => "purge",
            Step::Inventory => "inventory",
            Step::DeleteAndVerify => "deleteAndVerify",
            Step::WriteReceipt => "writeReceipt",
            Step::DeliverReceipt => "deliverReceipt",
            Step::Done => "done",
        }
    }

    /// Whether the tenant's stack (with no senders) is still applied in this step: only
    /// before erasure starts.
    pub fn keeps_stack(self) -> bool {
        matches!(self, Step::Export | Step::AwaitErasure)
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the step depends on besides `status.erasure`.
#[derive(Clone, Copy, Debug)]
pub struct Facts {
    pub now: Timestamp,
    /// `terminatedAt + deleteWithinDays − margin`: when erasure starts at the latest.
    pub erase_from: Timestamp,
    /// The Tenant is being deleted: erasure starts at once.
    pub deleting: bool,
    /// `onTermination.action: ReturnThenDelete`: the export runs first.
    pub return_first: bool,
    /// The namespace `tenant-<name>` exists but Herald did not create it: no Job runs in
    /// it, so there is no purge step.
    pub foreign: bool,
}

/// The step a tenant with erasure status `es` is in. Every shape a crash between two
/// status writes can leave maps to the step that redoes or continues the interrupted
/// one (each executor is idempotent).
pub fn step(es: &ErasureStatus, facts: &Facts) -> Step {
    if es.erasing_since.is_none() {
        let exported = es.export.as_ref().is_some_and(|e| e.outcome.is_some());
        return if facts.return_first && !exported {
            Step::Export
        } else if facts.now < facts.erase_from && !facts.deleting {
            Step::AwaitErasure
        } else {
            Step::StartErasure
        };
    }
    if es.verified_at.is_none() {
        // The inventory is recorded once: what is deleted and what is left in place.
        let inventoried = !es.inventory.is_empty() || !es.not_erased.is_empty();
        if inventoried {
            return Step::DeleteAndVerify;
        }
        if facts.foreign {
            return Step::Inventory;
        }
        if es.external_purges.is_empty() {
            return Step::SelectTargets;
        }
        return if es.external_purges.iter().all(|p| p.confirmed_at.is_some()) {
            Step::Inventory
        } else {
            Step::Purge
        };
    }
    if es.receipt.is_none() {
        return Step::WriteReceipt;
    }
    if es.receipt_delivered_at.is_none() {
        Step::DeliverReceipt
    } else {
        Step::Done
    }
}

/// A failure inside one step's executor: which step, and why.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("erasure step export failed")]
    Export(#[source] Error),
    #[error("erasure step awaitErasure failed")]
    AwaitErasure(#[source] Error),
    #[error("erasure step startErasure failed")]
    StartErasure(#[source] Error),
    #[error("erasure step selectTargets failed")]
    SelectTargets(#[source] Error),
    #[error("erasure step purge failed")]
    Purge(#[source] Error),
    #[error("erasure step inventory failed")]
    Inventory(#[source] Error),
    #[error("erasure step deleteAndVerify failed")]
    DeleteAndVerify(#[source] Error),
    #[error("erasure step writeReceipt failed")]
    WriteReceipt(#[source] Error),
    #[error("erasure step deliverReceipt failed")]
    DeliverReceipt(#[source] Error),
    #[error("erasure step done failed")]
    Done(#[source] Error),
}

impl StepError {
    /// `source` as a failure of `step`.
    pub fn new(step: Step, source: Error) -> Self {
        match step {
            Step::Export => StepError::Export(source),
            Step::AwaitErasure => StepError::AwaitErasure(source),
            Step::StartErasure => StepError::StartErasure(source),
            Step::SelectTargets => StepError::SelectTargets(source),
            Step::Purge => StepError::Purge(source),
            Step::Inventory => StepError::Inventory(source),
            Step::DeleteAndVerify => StepError::DeleteAndVerify(source),
            Step::WriteReceipt => StepError::WriteReceipt(source),
            Step::DeliverReceipt => StepError::DeliverReceipt(source),
            Step::Done => StepError::Done(source),
        }
    }

    /// The step that failed.
    pub fn step(&self) -> Step {
        match self {
            StepError::Export(_) => Step::Export,
            StepError::AwaitErasure(_) => Step::AwaitErasure,
            StepError::StartErasure(_) => Step::StartErasure,
            StepError::SelectTargets(_) => Step::SelectTargets,
            StepError::Purge(_) => Step::Purge,
            StepError::Inventory(_) => Step::Inventory,
            StepError::DeleteAndVerify(_) => Step::DeleteAndVerify,
            StepError::WriteReceipt(_) => Step::WriteReceipt,
            StepError::DeliverReceipt(_) => Step::DeliverReceipt,
            StepError::Done(_) => Step::Done,
        }
    }

    /// The underlying failure.
    pub fn source_error(&self) -> &Error {
        match self {
            StepError::Export(e)
            | StepError::AwaitErasure(e)
            | StepError::StartErasure(e)
            | StepError::SelectTargets(e)
            | StepError::Purge(e)
            | StepError::Inventory(e)
            | StepError::DeleteAndVerify(e)
            | StepError::WriteReceipt(e)
            | StepError::DeliverReceipt(e)
            | StepError::Done(e) => e,
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;
    use crate::api::v1alpha1::{DeletedKind, ExportStatus, NotErasedObject, PurgeRecord};

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    fn facts() -> Facts {
        Facts {
            now: at(100),
            erase_from: at(0),
            deleting: false,
            return_first: false,
            foreign: false,
        }
    }

    fn purge(target: &str, confirmed: bool) -> PurgeRecord {
        PurgeRecord {
            target: target.into(),
            job: "herald-erase".into(),
            confirmed_at: confirmed.then(|| Time(at(50))),
        }
    }

    fn erasing() -> ErasureStatus {
        ErasureStatus {
            started_at: Some(Time(at(0))),
            erase_from: Some(Time(at(0))),
            erasing_since: Some(Time(at(10))),
            ..Default::default()
        }
    }

    fn inventoried() -> ErasureStatus {
        ErasureStatus {
            external_purges: vec![purge("platform", true), purge("sms", true)],
            inventory: vec![DeletedKind {
                api_version: "v1".into(),
                kind: "Namespace".into(),
                count: 1,
                uids: vec!["u".into()],
            }],
            ..erasing()
        }
    }

    #[test]
    fn before_erasure_starts_the_export_then_the_wait_then_the_switch() {
        let none = ErasureStatus::default();
        // No export asked for: wait for eraseFrom, then switch.
        let early = Facts {
            now: at(-10),
            ..facts()
        };
        assert_eq!(step(&none, &early), Step::AwaitErasure);
        assert_eq!(step(&none, &facts()), Step::StartErasure);
        // A deleted Tenant starts at once.
        let deleting = Facts {
            deleting: true,
            ..early
        };
        assert_eq!(step(&none, &deleting), Step::StartErasure);
        // ReturnThenDelete: the export first, until it has an outcome, then as above.
        let export = Facts {
            return_first: true,
            ..early
        };
        assert_eq!(step(&none, &export), Step::Export);
        let running = ErasureStatus {
            export: Some(ExportStatus {
                job: "herald-export".into(),
                outcome: None,
                finished_at: None,
            }),
            ..Default::default()
        };
        assert_eq!(step(&running, &export), Step::Export);
        let exported = ErasureStatus {
            export: Some(ExportStatus {
                job: "herald-export".into(),
                outcome: Some("Succeeded".into()),
                finished_at: Some(Time(at(-20))),
            }),
            ..Default::default()
        };
        assert_eq!(step(&exported, &export), Step::AwaitErasure);
        assert_eq!(
            step(
                &exported,
                &Facts {
                    return_first: true,
                    ..facts()
                }
            ),
            Step::StartErasure
        );
    }

    #[test]
    fn erasing_selects_targets_purges_then_takes_the_inventory() {
        assert_eq!(step(&erasing(), &facts()), Step::SelectTargets);
        let selected = ErasureStatus {
            external_purges: vec![purge("platform", false), purge("sms", false)],
            ..erasing()
        };
        assert_eq!(step(&selected, &facts()), Step::Purge);
        // A crash after one target's confirmation was written, before the other's.
        let half = ErasureStatus {
            external_purges: vec![purge("platform", true), purge("sms", false)],
            ..erasing()
        };
        assert_eq!(step(&half, &facts()), Step::Purge);
        // A crash after the confirmations were written, before the inventory was.
        let confirmed = ErasureStatus {
            external_purges: vec![purge("platform", true), purge("sms", true)],
            ..erasing()
        };
        assert_eq!(step(&confirmed, &facts()), Step::Inventory);
        assert_eq!(step(&inventoried(), &facts()), Step::DeleteAndVerify);
        // The clock no longer matters once erasure started.
        let early = Facts {
            now: at(-10),
            ..facts()
        };
        assert_eq!(step(&selected, &early), Step::Purge);
    }

    #[test]
    fn a_foreign_namespace_has_no_purge_and_an_inventory_of_what_is_left_counts() {
        let foreign = Facts {
            foreign: true,
            ..facts()
        };
        assert_eq!(step(&erasing(), &foreign), Step::Inventory);
        // Only objects left in place (nothing to delete): inventoried all the same.
        let left = ErasureStatus {
            not_erased: vec![NotErasedObject {
                api_version: "v1".into(),
                kind: "Namespace".into(),
                namespace: None,
                name: "tenant-a".into(),
                uid: "u".into(),
                reason: "NamespaceNotOwned".into(),
                message: None,
                resolved_at: None,
            }],
            ..erasing()
        };
        assert_eq!(step(&left, &foreign), Step::DeleteAndVerify);
        assert_eq!(step(&left, &facts()), Step::DeleteAndVerify);
    }

    #[test]
    fn after_verification_the_receipt_then_its_delivery() {
        let verified = ErasureStatus {
            verified_at: Some(Time(at(60))),
            ..inventoried()
        };
        assert_eq!(step(&verified, &facts()), Step::WriteReceipt);
        let written = ErasureStatus {
            receipt: Some("deletion-receipt-a".into()),
            receipt_digest: Some("d".into()),
            ..verified.clone()
        };
        assert_eq!(step(&written, &facts()), Step::DeliverReceipt);
        let delivered = ErasureStatus {
            receipt_delivered_at: Some(Time(at(70))),
            ..written
        };
        assert_eq!(step(&delivered, &facts()), Step::Done);
        // A deleted Tenant, a foreign namespace: the same.
        let other = Facts {
            deleting: true,
            foreign: true,
            ..facts()
        };
        assert_eq!(step(&delivered, &other), Step::Done);
        assert_eq!(step(&verified, &other), Step::WriteReceipt);
    }

    #[test]
    fn names_are_stable_unique_and_each_error_names_its_step() {
        let names: std::collections::BTreeSet<_> = Step::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(names.len(), Step::ALL.len());
        for &s in Step::ALL {
            let e = StepError::new(s, Error::MissingName);
            assert_eq!(e.step(), s);
            assert!(e.to_string().contains(s.as_str()), "{e}");
            assert!(matches!(e.source_error(), Error::MissingName));
        }
        assert!(Step::AwaitErasure.keeps_stack());
        // The switch is persisted before the stack stops being applied.
        assert!(!Step::StartErasure.keeps_stack());
        assert!(!Step::Purge.keeps_stack());
    }
}
