//! The steps before erasure itself: `export` (ReturnThenDelete), `awaitErasure` (senders
//! stopped until `eraseFrom`, or the Tenant's deletion) and `startErasure` (the switch,
//! persisted before the stack stops being applied).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::super::plan;
use super::{Next, Pass, jobs};
use crate::api::v1alpha1::{ErasureStatus, ExportStatus};
use crate::controller::Error;

/// The `export` step: the export Job runs until it has an outcome, or its window
/// (until `eraseFrom`) ends; then the next step follows in the same pass.
pub(super) async fn export(pass: &Pass<'_>, es: &mut ErasureStatus) -> Result<Next, Error> {
    let now = pass.now;
    let started = es.started_at.as_ref().map_or(now, |t| t.0);
    let window_ended = now >= plan::export_window_end(pass.timing, started);
    let outcome = if window_ended {
        Some("WindowEnded".to_owned())
    } else if pass.home.foreign.is_some() {
        // No Job runs in a namespace Herald did not create.
        Some(crate::api::v1alpha1::conditions::reason::NAMESPACE_NOT_OWNED.to_owned())
    } else {
        jobs::run_export(pass.tenant, pass.home, pass.ctx).await?
    };
    let job = es
        .export
        .as_ref()
        .map(|e| e.job.clone())
        .unwrap_or_else(|| "herald-export".into());
    let finished = outcome.is_some();
    es.export = Some(ExportStatus {
        job,
        finished_at: outcome.as_ref().map(|_| Time(now)),
        outcome,
    });
    Ok(if finished {
        Next::Continue
    } else {
        Next::wait(5, "exporting the customer's data".into())
    })
}

/// The `awaitErasure` step: nothing to do until `eraseFrom`.
pub(super) fn await_erasure(pass: &Pass<'_>) -> Next {
    let erase_from = pass.timing.erase_from;
    let wait = (erase_from.as_second() - pass.now.as_second()).clamp(1, 3600) as u64;
    Next::wait(
        wait,
        format!("senders stopped; erasure starts by {}", Time(erase_from).0),
    )
}

/// The `startErasure` step: the switch is persisted before acting, so from here on the
/// stack is never applied again.
pub(super) fn start_erasure(pass: &Pass<'_>, es: &mut ErasureStatus) -> Next {
    es.erasing_since = Some(Time(pass.now));
    Next::wait(1, "erasure started".into())
}
