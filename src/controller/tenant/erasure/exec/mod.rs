//! One executor per erasure step ([`Step`]): each does its step's work (idempotent:
//! create-if-absent, delete-if-present, a deterministic receipt name) and records its
//! outcome in the in-memory `status.erasure`, which the caller persists.

mod after;
mod before;
mod delete;
mod jobs;
mod purge;
mod receipt;
mod sweep;

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use super::step::Step;
use super::{Delivery, JobHome, plan::Timing};
use crate::api::v1alpha1::{ErasureStatus, RecordRetention, Tenant};
use crate::controller::{Context, Error};
use crate::retention::Periods;

/// What every executor of one pass works with.
pub(super) struct Pass<'a> {
    pub tenant: &'a Tenant,
    pub timing: &'a Timing,
    pub periods: &'a Periods,
    pub records: Option<&'a RecordRetention>,
    pub home: &'a JobHome<'a>,
    pub ctx: &'a Context,
    pub now: Timestamp,
    /// The tenant's name and namespace.
    pub name: String,
    pub ns: String,
    /// The tenant's notification signing Secret, which erasure leaves: the receipt is
    /// signed with it after erasure (see docs/operations.md).
    pub keep: Option<&'a str>,
}

/// How a step ended.
pub(super) enum Next {
    /// Its outcome is recorded; the next step acts in the same pass (it only reads, or
    /// its action needs nothing persisted first).
    Continue,
    /// Persist the status and look again after `requeue`.
    Wait { requeue: Duration, note: String },
    /// Erased (the receipt is written), with where its delivery stands.
    Erased {
        requeue: Duration,
        note: String,
        delivery: Delivery,
    },
}

impl Next {
    fn wait(seconds: u64, note: String) -> Self {
        Next::Wait {
            requeue: Duration::from_secs(seconds),
            note,
        }
    }
}

/// Runs `step`'s executor.
pub(super) async fn run(
    step: Step,
    pass: &Pass<'_>,
    es: &mut ErasureStatus,
) -> Result<Next, Error> {
    match step {
        Step::Export => before::export(pass, es).await,
        Step::AwaitErasure => Ok(before::await_erasure(pass)),
        Step::StartErasure => Ok(before::start_erasure(pass, es)),
        Step::SelectTargets => purge::select_targets(pass, es).await,
        Step::Purge => purge::purge(pass, es).await,
        Step::Inventory => sweep::take_inventory(pass, es).await,
        Step::DeleteAndVerify => delete::delete_and_verify(pass, es).await,
        Step::WriteReceipt => receipt::write(pass, es).await,
        Step::DeliverReceipt => receipt::deliver(pass, es).await,
        Step::Done => after::recheck(pass, es).await,
    }
}
