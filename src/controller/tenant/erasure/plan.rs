//! The pure part of erasure: when it must start and end, and the deletion receipt
//! (the record, its canonical bytes and its digest).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use crate::api::v1alpha1::{
    ContractState, DeletedKind, ErasureStatus, NotErasedObject, RecordRetention, StepFailure,
    Tenant,
};
use crate::retention::Periods;

use super::held;

const DAY: i64 = 86_400;

/// A time computed from a user-supplied number falls outside what a timestamp can hold
/// (jiff's range is the years -9999 to 9999). Checked instead of `+`, which panics.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{what} is out of range: {base} plus {days} days cannot be represented")]
pub struct OutOfRange {
    /// Which time could not be computed.
    pub what: &'static str,
    /// The time it starts from.
    pub base: Timestamp,
    /// The days added (negative: subtracted).
    pub days: i64,
}

/// `base + days`, or [`OutOfRange`] naming `what`.
pub fn add_days(what: &'static str, base: Timestamp, days: i64) -> Result<Timestamp, OutOfRange> {
    let err = || OutOfRange { what, base, days };
    let secs = days.checked_mul(DAY).ok_or_else(err)?;
    let span = SignedDuration::from_secs(secs);
    base.checked_add(span).map_err(|_| err())
}

/// When a tenant's data must be gone, and when erasure starts at the latest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timing {
    /// When the contract ended (or the Tenant was deleted without termination).
    pub ended_at: Timestamp,
    /// `ended_at + deleteWithinDays`: erasure must be complete before this.
    pub deadline: Timestamp,
    /// The latest start of erasure: `deadline - margin`, never before `ended_at`. A
    /// deleted (not terminated) tenant is erased at once: someone asked for it now.
    pub erase_from: Timestamp,
}

/// The timing of `tenant`'s erasure, `Ok(None)` while it is neither terminated nor deleted,
/// or [`OutOfRange`] when `terminatedAt` plus the periods leaves the representable range
/// (including the export window's 12 hours before the deadline).
pub fn timing(
    tenant: &Tenant,
    delete_within_days: i32,
    margin_days: i64,
) -> Result<Option<Timing>, OutOfRange> {
    let spec = &tenant.spec.contract;
    let terminated = spec.state == ContractState::Terminated;
    let ended_at = match (&spec.terminated_at, &tenant.metadata.deletion_timestamp) {
        (Some(t), _) if terminated => t.0,
        (_, Some(d)) => d.0,
        _ => return Ok(None),
    };
    let deadline = add_days(
        "the erasure deadline",
        ended_at,
        i64::from(delete_within_days),
    )?;
    // The export window ends 12 hours before the deadline: checked here once, so that
    // `export_window_end` cannot fail later.
    deadline
        .checked_sub(SignedDuration::from_secs(12 * 3600))
        .map_err(|_| OutOfRange {
            what: "the end of the export window",
            base: deadline,
            days: 0,
        })?;
    let mut erase_from = if terminated {
        let latest = add_days(
            "the latest erasure start",
            deadline,
            margin_days.checked_neg().unwrap_or(i64::MAX),
        )
        .unwrap_or(ended_at);
        latest.max(ended_at)
    } else {
        ended_at
    };
    // Deleting the Tenant asks for erasure now, whatever the schedule said.
    if let Some(deleted) = &tenant.metadata.deletion_timestamp {
        erase_from = erase_from.min(deleted.0);
    }
    Ok(Some(Timing {
        ended_at,
        deadline,
        erase_from,
    }))
}

/// Until when the export may run before erasure goes ahead without it: the scheduled
/// erasure start, but at least an hour from when termination was first handled (a
/// termination recorded late still gets its export), and never later than 12 hours
/// before the deadline.
pub fn export_window_end(timing: &Timing, started_at: Timestamp) -> Timestamp {
    // Saturating is right for both: an hour past the end of time is still "at least an
    // hour", and `timing` checked that the deadline minus 12 hours exists.
    let at_least = started_at
        .checked_add(SignedDuration::from_secs(3600))
        .unwrap_or(Timestamp::MAX);
    let at_most = timing
        .deadline
        .checked_sub(SignedDuration::from_secs(12 * 3600))
        .unwrap_or(timing.deadline);
    timing.erase_from.max(at_least).min(at_most)
}

/// A category the law makes the platform keep after erasure, as records without
/// end-user data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RetainedCategory {
    /// The category.
    pub category: &'static str,
    /// Kept until.
    pub until: Time,
    /// Why.
    pub basis: &'static str,
}

/// One external step of the erasure (a purge at a provider or in the platform's
/// stores) as the receipt states it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalStep {
    /// A channel (`sms`, …) or `platform`.
    pub target: String,
    /// When Herald confirmed it (absent: not confirmed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirmed_at: Option<Time>,
}

/// The erase Job's arguments for `tenant` and `targets` (as persisted in status):
/// `erase --tenant <t> --target <target>…` (docs/data-plane.md).
pub fn erase_args(tenant: &str, targets: &[String]) -> Vec<String> {
    let mut args = vec!["erase".to_owned(), "--tenant".to_owned(), tenant.to_owned()];
    for target in targets {
        args.extend(["--target".to_owned(), target.clone()]);
    }
    args
}

/// The export Job's arguments: `export --tenant <t> --destination <url>`.
pub fn export_args(tenant: &str, destination: &str) -> Vec<String> {
    ["export", "--tenant", tenant, "--destination", destination]
        .map(str::to_owned)
        .to_vec()
}

/// Whether `job` runs exactly `image` with `args` in its one container: only then is it
/// the Job erasure would have created, and its outcome counts.
pub fn job_runs(job: &k8s_openapi::api::batch::v1::Job, image: &str, args: &[String]) -> bool {
    let containers = job
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .map(|p| p.containers.as_slice())
        .unwrap_or_default();
    match containers {
        [c] => {
            c.image.as_deref() == Some(image)
                && c.command.is_none()
                && c.args.as_deref().unwrap_or_default() == args
        }
        _ => false,
    }
}

/// The erasure steps that can fail and are retried (`StepFailure.step`).
pub mod step {
    /// The purge Job (end-user data at the providers and in the stores): holds the
    /// receipt while it fails.
    pub const PURGE: &str = "purge";
    /// A channel's credentials at its provider: does not hold erasure.
    pub const REVOCATION: &str = "revocation";
    /// The signed receipt to the customer's endpoint: does not hold erasure.
    pub const RECEIPT_DELIVERY: &str = "receiptDelivery";
    /// Every step, for the metrics.
    pub const ALL: &[&str] = &[PURGE, REVOCATION, RECEIPT_DELIVERY];
}

/// `steps` after one more failed attempt of `step` on `target` with `error`, `now`.
pub fn step_failed(
    mut steps: Vec<StepFailure>,
    step: &str,
    target: &str,
    error: &str,
    now: Timestamp,
) -> Vec<StepFailure> {
    let attempts = steps
        .iter()
        .find(|f| f.step == step && f.target == target)
        .map_or(0, |f| f.attempts);
    steps.retain(|f| !(f.step == step && f.target == target));
    steps.push(StepFailure {
        step: step.to_owned(),
        target: target.to_owned(),
        error: error.to_owned(),
        attempts: attempts.saturating_add(1),
        last_try: Time(now),
    });
    sorted(steps)
}

/// `steps` without `step` on `target`: it succeeded.
pub fn step_succeeded(mut steps: Vec<StepFailure>, step: &str, target: &str) -> Vec<StepFailure> {
    steps.retain(|f| !(f.step == step && f.target == target));
    steps
}

/// `steps` with the revocation failures replaced by `revocations`, what the tenant's
/// bindings report now (one per channel: the one with most attempts).
pub fn with_revocations(
    mut steps: Vec<StepFailure>,
    revocations: impl IntoIterator<Item = StepFailure>,
) -> Vec<StepFailure> {
    steps.retain(|f| f.step != step::REVOCATION);
    for r in revocations {
        match steps
            .iter_mut()
            .find(|f| f.step == step::REVOCATION && f.target == r.target)
        {
            Some(f) if f.attempts >= r.attempts => {}
            Some(f) => *f = r,
            None => steps.push(StepFailure {
                step: step::REVOCATION.to_owned(),
                ..r
            }),
        }
    }
    sorted(steps)
}

/// The scope's kinds left unverified: those `earlier` looks could not list (the
/// inventory's, which lists every kind) and those the latest could not, once each, in
/// order.
pub fn merge_unverified(earlier: Vec<String>, latest: Vec<String>) -> Vec<String> {
    let all: std::collections::BTreeSet<String> = earlier.into_iter().chain(latest).collect();
    all.into_iter().collect()
}

fn sorted(mut steps: Vec<StepFailure>) -> Vec<StepFailure> {
    steps.sort_by(|a, b| (&a.step, &a.target).cmp(&(&b.step, &b.target)));
    steps
}

/// An external step that was still failing when the receipt was written, as the
/// receipt states it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FailedStep {
    /// `revocation` or `receiptDelivery`.
    pub step: String,
    /// A channel, or `customer`.
    pub target: String,
    /// The class of the last error.
    pub error: String,
    /// Failed attempts so far (retried after the receipt).
    pub attempts: i64,
    /// When the last attempt failed.
    pub last_try: Time,
}

/// The certificate of deletion. Ids, kinds, counts and times only: no end-user data.
/// Field order is the serialization order, so the bytes (and the digest) are stable.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Receipt {
    /// Always `herald.dev/deletion-receipt/v1`.
    pub schema: &'static str,
    /// The Tenant's name.
    pub tenant: String,
    /// The Tenant's UID.
    pub tenant_uid: String,
    /// The DPA under which the data was processed.
    pub dpa_reference: Option<String>,
    /// When the contract ended.
    pub terminated_at: Time,
    /// The erasure deadline.
    pub deadline: Time,
    /// When erasure began.
    pub erasure_started_at: Time,
    /// When Herald verified that nothing labelled for the tenant remained.
    pub completed_at: Time,
    /// Whether erasure completed by the deadline.
    pub met_deadline: bool,
    /// What was deleted, by kind, with UIDs.
    pub deleted: Vec<DeletedKind>,
    /// What erasure found and did not delete (not Herald's, or outside its scope), for
    /// a person to decide on.
    pub found_not_erased: Vec<NotErasedObject>,
    /// External purges and when each was confirmed.
    pub external_purges: Vec<ExternalStep>,
    /// External steps without end-user data (a provider's revocation of credentials)
    /// that still failed when the receipt was written: erasure did not wait for them,
    /// and they are retried.
    pub failed_external_steps: Vec<FailedStep>,
    /// The export's outcome, when one was asked for.
    pub export: Option<String>,
    /// Where the export was sent (the tenant's export URL), when one was asked for:
    /// without its query string, fragment or userinfo
    /// ([`crate::evidence::url_for_evidence`]): a pre-signed URL must not become a
    /// credential kept for years in a receipt nobody may delete.
    pub export_destination: Option<String>,
    /// Backups holding the tenant's data expire by then (backup retention).
    pub backups_expire_by: Time,
    /// What the law makes the platform keep, and until when.
    pub retained: Vec<RetainedCategory>,
    /// Resource types Herald may not list, so could not verify (empty when complete).
    pub unverified_kinds: Vec<String>,
    /// The operator that erased.
    pub operator_version: &'static str,
}

/// The receipt of a finished erasure, from what status recorded (so a restarted operator
/// builds the same bytes). `None` until erasure is verified; [`OutOfRange`] when a
/// retention period reaches past the representable range.
pub fn receipt(
    tenant: &Tenant,
    timing: &Timing,
    erasure: &ErasureStatus,
    periods: &Periods,
    records: Option<&RecordRetention>,
    unverified_kinds: Vec<String>,
) -> Result<Option<Receipt>, OutOfRange> {
    let Some(completed) = erasure.verified_at.clone() else {
        return Ok(None);
    };
    let after =
        |what: &'static str, days: i32| add_days(what, completed.0, i64::from(days)).map(Time);
    let r = records.cloned().unwrap_or(RecordRetention {
        billing_days: None,
        security_incidents_days: None,
        consent_days: None,
        deletion_receipts_days: None,
    });
    Ok(Some(Receipt {
        schema: crate::evidence::DELETION_SCHEMA,
        tenant: tenant.metadata.name.clone().unwrap_or_default(),
        tenant_uid: tenant.metadata.uid.clone().unwrap_or_default(),
        dpa_reference: tenant
            .spec
            .contract
            .dpa
            .as_ref()
            .map(|d| d.reference.clone()),
        terminated_at: Time(timing.ended_at),
        deadline: Time(timing.deadline),
        erasure_started_at: erasure
            .erasing_since
            .clone()
            .unwrap_or_else(|| completed.clone()),
        met_deadline: completed.0 <= timing.deadline,
        completed_at: completed.clone(),
        deleted: erasure.inventory.clone(),
        found_not_erased: erasure.not_erased.clone(),
        external_purges: erasure
            .external_purges
            .iter()
            .map(|p| ExternalStep {
                target: p.target.clone(),
                confirmed_at: p.confirmed_at.clone(),
            })
            .collect(),
        failed_external_steps: erasure
            .failing_steps
            .iter()
            .map(|f| FailedStep {
                step: f.step.clone(),
                target: f.target.clone(),
                error: f.error.clone(),
                attempts: f.attempts,
                last_try: f.last_try.clone(),
            })
            .collect(),
        export: erasure.export.as_ref().and_then(|e| e.outcome.clone()),
        export_destination: erasure
            .export
            .as_ref()
            .and(tenant.spec.contract.on_termination.as_ref())
            .and_then(|o| o.export.as_ref())
            .map(|e| crate::evidence::url_for_evidence(&e.url)),
        backups_expire_by: after("the backups' expiry", periods.backups_days)?,
        retained: vec![
            RetainedCategory {
                category: "billing",
                until: after("the billing records' end", r.billing_days.unwrap_or(2555))?,
                basis: "accounting law: invoices and payment records, no end-user data",
            },
            RetainedCategory {
                category: "securityIncidents",
                until: after(
                    "the security incidents records' end",
                    r.security_incidents_days.unwrap_or(1095),
                )?,
                basis: "security incident records, no end-user data",
            },
            RetainedCategory {
                category: "consent",
                until: after("the consent records' end", r.consent_days.unwrap_or(1095))?,
                basis: "proof of consent (Art. 7(1) GDPR)",
            },
            RetainedCategory {
                category: "deletionReceipts",
                until: after(
                    "the deletion receipts records' end",
                    r.deletion_receipts_days.unwrap_or(1825),
                )?,
                basis: "proof that this erasure was fulfilled",
            },
        ],
        unverified_kinds,
        operator_version: crate::VERSION,
    }))
}

/// The receipt's canonical bytes and their SHA-256 (hex).
pub fn seal(receipt: &Receipt) -> Result<(String, String), serde_json::Error> {
    let body = serde_json::to_string_pretty(receipt)?;
    let digest = crate::digest::sha256_hex(body.as_bytes());
    Ok((body, digest))
}

/// The deletion receipt's ConfigMap name: deterministic, so a restart finds the receipt
/// it already wrote instead of writing a second.
pub fn receipt_name(tenant: &Tenant) -> String {
    let uid = tenant.metadata.uid.as_deref().unwrap_or("nouid");
    let short: String = uid.chars().filter(|c| *c != '-').take(8).collect();
    let name = tenant.metadata.name.as_deref().unwrap_or("unnamed");
    format!("deletion-receipt-{name}-{short}")
}

/// Whether `now` is past the deadline.
pub fn overdue(timing: &Timing, now: Timestamp) -> bool {
    now > timing.deadline
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::tenant::decide::tests::{ACTIVE, tenant};

    fn terminated(days_ago_at: &str) -> Tenant {
        tenant(&ACTIVE.replace(
            "state: Active",
            &format!("state: Terminated\n    terminatedAt: \"{days_ago_at}\""),
        ))
    }

    #[test]
    fn unverified_kinds_keep_what_the_inventory_could_not_list() {
        let inventory = vec!["services".to_owned(), "secrets in tenant-a".to_owned()];
        // The later sweep looks at fewer kinds: what it did not list stays unverified.
        assert_eq!(
            merge_unverified(inventory.clone(), vec![]),
            ["secrets in tenant-a", "services"]
        );
        assert_eq!(
            merge_unverified(inventory, vec!["services".into(), "pods".into()]),
            ["pods", "secrets in tenant-a", "services"]
        );
        assert!(merge_unverified(vec![], vec![]).is_empty());
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn terminated_tenants_are_erased_from_deadline_minus_margin() {
        let t = timing(&terminated("2026-11-01T00:00:00Z"), 30, 3)
            .unwrap()
            .unwrap();
        assert_eq!(t.deadline, ts("2026-12-01T00:00:00Z"));
        assert_eq!(t.erase_from, ts("2026-11-28T00:00:00Z"));
    }

    #[test]
    fn a_short_period_starts_erasure_at_termination() {
        let t = timing(&terminated("2026-11-01T00:00:00Z"), 2, 3)
            .unwrap()
            .unwrap();
        assert_eq!(t.erase_from, ts("2026-11-01T00:00:00Z"));
    }

    #[test]
    fn active_tenants_have_no_timing_until_deleted() {
        let mut t = tenant(ACTIVE);
        assert_eq!(timing(&t, 30, 3), Ok(None));
        t.metadata.deletion_timestamp = Some(Time(ts("2026-11-05T10:00:00Z")));
        let d = timing(&t, 30, 3).unwrap().unwrap();
        assert_eq!(
            d.erase_from,
            ts("2026-11-05T10:00:00Z"),
            "a deleted tenant is erased at once"
        );
    }

    #[test]
    fn the_receipt_is_deterministic_and_its_digest_verifies() {
        let t = terminated("2026-11-01T00:00:00Z");
        let timing = timing(&t, 30, 3).unwrap().unwrap();
        let erasure = ErasureStatus {
            erasing_since: Some(Time(ts("2026-11-28T00:00:00Z"))),
            verified_at: Some(Time(ts("2026-11-28T00:05:00Z"))),
            inventory: vec![DeletedKind {
                api_version: "v1".into(),
                kind: "Namespace".into(),
                count: 1,
                uids: vec!["u1".into()],
            }],
            ..ErasureStatus::default()
        };
        let r = receipt(&t, &timing, &erasure, &Periods::default(), None, vec![])
            .unwrap()
            .unwrap();
        let (body, digest) = seal(&r).unwrap();
        assert_eq!(seal(&r.clone()).unwrap(), (body.clone(), digest.clone()));
        assert_eq!(crate::digest::sha256_hex(body.as_bytes()), digest);
        assert!(
            body.contains("\"backupsExpireBy\": \"2026-12-05T00:05:00Z\""),
            "{body}"
        );
        assert!(body.contains("\"deadline\": \"2026-12-01T00:00:00Z\""));
        assert_eq!(
            r.retained[0].until,
            Time(ts("2033-11-26T00:05:00Z")),
            "billing: 2555 days"
        );
    }

    #[test]
    fn the_receipt_keeps_the_export_destination_without_its_credentials() {
        let mut t = terminated("2026-11-01T00:00:00Z");
        t.spec.contract.on_termination = Some(
            serde_json::from_value(serde_json::json!({
                "action": "ReturnThenDelete",
                "export": {"url": "https://u:pw@x.example/up?X-Amz-Signature=abc#f"}
            }))
            .unwrap(),
        );
        let timing = timing(&t, 30, 3).unwrap().unwrap();
        let mut erasure = ErasureStatus {
            verified_at: Some(Time(ts("2026-11-28T00:05:00Z"))),
            export: Some(crate::api::v1alpha1::ExportStatus {
                job: "herald-export".into(),
                outcome: Some("Succeeded".into()),
                finished_at: None,
            }),
            ..ErasureStatus::default()
        };
        let r = receipt(&t, &timing, &erasure, &Periods::default(), None, vec![])
            .unwrap()
            .unwrap();
        assert_eq!(
            r.export_destination.as_deref(),
            Some("https://x.example/up")
        );
        let (body, _) = seal(&r).unwrap();
        assert!(
            !body.contains("Signature") && !body.contains("pw"),
            "{body}"
        );
        // No export asked for or run: no destination either.
        erasure.export = None;
        let r = receipt(&t, &timing, &erasure, &Periods::default(), None, vec![])
            .unwrap()
            .unwrap();
        assert_eq!(r.export_destination, None);
    }

    #[test]
    fn the_receipt_states_the_deadline_its_steps_as_objects_and_what_it_left() {
        let t = terminated("2026-11-01T00:00:00Z");
        let timing = timing(&t, 30, 3).unwrap().unwrap();
        let left = NotErasedObject {
            api_version: "v1".into(),
            kind: "Namespace".into(),
            namespace: None,
            name: "tenant-acme".into(),
            uid: "ns-uid".into(),
            reason: "NamespaceNotOwned".into(),
            message: None,
            resolved_at: None,
        };
        let mut erasure = ErasureStatus {
            erasing_since: Some(Time(ts("2026-11-28T00:00:00Z"))),
            verified_at: Some(Time(ts("2026-11-28T00:05:00Z"))),
            external_purges: vec![
                crate::api::v1alpha1::PurgeRecord {
                    target: "platform".into(),
                    job: "herald-erase".into(),
                    confirmed_at: Some(Time(ts("2026-11-28T00:01:00Z"))),
                },
                crate::api::v1alpha1::PurgeRecord {
                    target: "sms".into(),
                    job: "herald-erase".into(),
                    confirmed_at: None,
                },
            ],
            not_erased: vec![left],
            ..ErasureStatus::default()
        };
        let r = receipt(&t, &timing, &erasure, &Periods::default(), None, vec![])
            .unwrap()
            .unwrap();
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["metDeadline"], true);
        assert_eq!(
            v["externalPurges"],
            serde_json::json!([
                {"target": "platform", "confirmedAt": "2026-11-28T00:01:00Z"},
                {"target": "sms"}
            ])
        );
        assert_eq!(v["foundNotErased"][0]["name"], "tenant-acme");
        assert_eq!(v["foundNotErased"][0]["reason"], "NamespaceNotOwned");
        // Verified after the deadline (2026-12-01): said so.
        erasure.verified_at = Some(Time(ts("2026-12-01T00:00:01Z")));
        let r = receipt(&t, &timing, &erasure, &Periods::default(), None, vec![])
            .unwrap()
            .unwrap();
        assert!(!r.met_deadline);
    }

    #[test]
    fn only_a_job_running_erasure_s_image_and_arguments_counts() {
        let args = erase_args("acme", &["platform".into(), "sms".into()]);
        assert_eq!(
            args,
            [
                "erase", "--tenant", "acme", "--target", "platform", "--target", "sms"
            ]
        );
        let job = |image: &str, args: serde_json::Value, command: Option<&str>| {
            let mut c = serde_json::json!({"name": "job", "image": image, "args": args});
            if let Some(cmd) = command {
                c["command"] = serde_json::json!([cmd]);
            }
            serde_json::from_value::<k8s_openapi::api::batch::v1::Job>(serde_json::json!({
                "metadata": {"name": "herald-erase"},
                "spec": {"template": {"spec": {"containers": [c]}}}
            }))
            .unwrap()
        };
        let ours = serde_json::json!(args);
        assert!(job_runs(&job("img:1", ours.clone(), None), "img:1", &args));
        assert!(!job_runs(&job("img:2", ours.clone(), None), "img:1", &args));
        assert!(!job_runs(
            &job(
                "img:1",
                serde_json::json!(["purge", "--all", "--target", "platform"]),
                None
            ),
            "img:1",
            &args
        ));
        assert!(!job_runs(
            &job("img:1", ours, Some("/bin/true")),
            "img:1",
            &args
        ));
    }

    #[test]
    fn failing_steps_count_attempts_and_go_once_they_succeed() {
        let (t1, t2) = (ts("2026-11-28T00:00:00Z"), ts("2026-11-28T00:01:00Z"));
        let steps = step_failed(vec![], step::PURGE, "herald-erase", "JobFailed", t1);
        let steps = step_failed(steps, step::PURGE, "herald-erase", "JobFailed", t2);
        assert_eq!(steps.len(), 1);
        assert_eq!((steps[0].attempts, steps[0].last_try.0), (2, t2));
        let revocation = StepFailure {
            step: step::REVOCATION.into(),
            target: "sms".into(),
            error: "server_error".into(),
            attempts: 3,
            last_try: Time(t1),
        };
        // The bindings' report replaces the revocations, and keeps the other steps.
        let steps = with_revocations(steps, [revocation.clone()]);
        assert_eq!(steps.len(), 2);
        let steps = with_revocations(steps, []);
        assert_eq!(
            steps.len(),
            1,
            "a revocation no binding reports failing goes"
        );
        let steps = step_succeeded(
            with_revocations(steps, [revocation]),
            step::PURGE,
            "herald-erase",
        );
        assert_eq!(
            steps.iter().map(|s| s.step.as_str()).collect::<Vec<_>>(),
            [step::REVOCATION]
        );
    }

    #[test]
    fn objects_erasure_could_not_delete_are_said_until_resolved() {
        use crate::api::v1alpha1::conditions::{ERASED, READY, reason};
        let t = terminated("2026-11-01T00:00:00Z");
        let timing = timing(&t, 30, 3).unwrap().unwrap();
        let now = ts("2026-11-28T00:02:00Z");
        let held = NotErasedObject {
            api_version: "v1".into(),
            kind: "Secret".into(),
            namespace: Some("herald-system".into()),
            name: "planted".into(),
            uid: "u1".into(),
            reason: reason::DELETION_REFUSED.into(),
            message: Some("HTTP 403: denied".into()),
            resolved_at: None,
        };
        let mut e = ErasureStatus {
            not_erased: vec![held],
            unverified_kinds: vec!["services".into()],
            ..ErasureStatus::default()
        };
        let find = |e: &ErasureStatus, type_: &str, done: bool| {
            conditions(e, &timing, done, &Delivery::Delivered, "erased", now)
                .into_iter()
                .find(|c| c.type_ == type_)
                .unwrap()
        };
        let c = find(&e, ERASED, true);
        assert_eq!(
            (c.status, c.reason),
            (true, reason::OBJECTS_HELD),
            "held before unverified"
        );
        assert!(
            c.message
                .contains("Secret herald-system/planted (DeletionRefused)"),
            "{}",
            c.message
        );
        assert!(c.message.contains("a person must delete"), "{}", c.message);
        let r = find(&e, READY, true);
        assert_eq!(
            (r.status, r.reason),
            (true, reason::ERASED),
            "the erasure itself is complete"
        );
        assert_eq!(
            find(&e, ERASED, false).reason,
            reason::ERASURE_SCHEDULED,
            "not before done"
        );
        e.not_erased[0].resolved_at = Some(Time(now));
        assert_eq!(
            find(&e, ERASED, true).reason,
            reason::KINDS_UNVERIFIED,
            "resolved: no longer said"
        );
    }

    #[test]
    fn kinds_the_operator_could_not_list_are_said_in_the_erased_condition() {
        use crate::api::v1alpha1::conditions::{ERASED, reason};
        let t = terminated("2026-11-01T00:00:00Z");
        let timing = timing(&t, 30, 3).unwrap().unwrap();
        let now = ts("2026-11-28T00:02:00Z");
        let erased = |e: &ErasureStatus| {
            conditions(e, &timing, true, &Delivery::Delivered, "erased", now)
                .into_iter()
                .find(|c| c.type_ == ERASED)
                .unwrap()
        };
        let c = erased(&ErasureStatus::default());
        assert_eq!((c.status, c.reason), (true, reason::ERASED));
        let c = erased(&ErasureStatus {
            unverified_kinds: vec!["servicemonitors.monitoring.coreos.com".into()],
            ..ErasureStatus::default()
        });
        assert_eq!((c.status, c.reason), (true, reason::KINDS_UNVERIFIED));
        assert!(
            c.message.contains("servicemonitors.monitoring.coreos.com"),
            "{}",
            c.message
        );
    }

    #[test]
    fn a_failing_purge_is_said_before_a_failing_revocation_and_the_receipt_lists_them() {
        use crate::api::v1alpha1::conditions::reason;
        let t = terminated("2026-11-01T00:00:00Z");
        let timing = timing(&t, 30, 3).unwrap().unwrap();
        let now = ts("2026-11-28T00:02:00Z");
        let mut erasure = ErasureStatus {
            erasing_since: Some(Time(ts("2026-11-28T00:00:00Z"))),
            failing_steps: step_failed(vec![], step::REVOCATION, "sms", "server_error", now),
            ..ErasureStatus::default()
        };
        let find = |e: &ErasureStatus| {
            conditions(e, &timing, false, &Delivery::Delivered, "n", now)
                .into_iter()
                .find(|c| c.type_ == crate::api::v1alpha1::conditions::ERASURE_STEP_FAILING)
                .unwrap()
        };
        let c = find(&erasure);
        assert_eq!((c.status, c.reason), (true, reason::REVOCATION_FAILING));
        assert!(
            c.message
                .contains("revocation of sms failed 1 times (server_error"),
            "{}",
            c.message
        );
        erasure.failing_steps = step_failed(
            erasure.failing_steps,
            step::PURGE,
            "herald-erase",
            "JobFailed",
            now,
        );
        let c = find(&erasure);
        assert_eq!(c.reason, reason::PURGE_FAILING);
        assert!(c.message.contains("the receipt waits"), "{}", c.message);
        assert!(!find(&ErasureStatus::default()).status);

        erasure.failing_steps = step_succeeded(erasure.failing_steps, step::PURGE, "herald-erase");
        erasure.verified_at = Some(Time(now));
        let r = receipt(&t, &timing, &erasure, &Periods::default(), None, vec![])
            .unwrap()
            .unwrap();
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(
            v["failedExternalSteps"],
            serde_json::json!([{"step": "revocation", "target": "sms", "error": "server_error",
                                "attempts": 1, "lastTry": "2026-11-28T00:02:00Z"}])
        );
    }

    #[test]
    fn a_late_termination_still_gets_an_hour_for_its_export() {
        let t = timing(&terminated("2026-11-01T00:00:00Z"), 30, 3)
            .unwrap()
            .unwrap();
        assert_eq!(
            export_window_end(&t, ts("2026-11-10T00:00:00Z")),
            ts("2026-11-28T00:00:00Z")
        );
        assert_eq!(
            export_window_end(&t, ts("2026-11-30T00:00:00Z")),
            ts("2026-11-30T01:00:00Z")
        );
        assert_eq!(
            export_window_end(&t, ts("2026-11-30T23:00:00Z")),
            ts("2026-11-30T12:00:00Z"),
            "never past deadline - 12h"
        );
    }

    #[test]
    fn deleting_a_terminated_tenant_erases_it_at_once() {
        let mut t = terminated("2026-11-01T00:00:00Z");
        t.metadata.deletion_timestamp = Some(Time(ts("2026-11-02T00:00:00Z")));
        assert_eq!(
            timing(&t, 30, 3).unwrap().unwrap().erase_from,
            ts("2026-11-02T00:00:00Z")
        );
    }

    #[test]
    fn no_receipt_before_verification() {
        let t = terminated("2026-11-01T00:00:00Z");
        let timing = timing(&t, 30, 3).unwrap().unwrap();
        assert!(
            receipt(
                &t,
                &timing,
                &ErasureStatus::default(),
                &Periods::default(),
                None,
                vec![]
            )
            .is_ok_and(|r| r.is_none())
        );
    }

    #[test]
    fn an_extreme_terminated_at_is_an_error_not_a_panic() {
        let t = terminated("9999-12-30T00:00:00Z");
        let e = timing(&t, 30, 3).unwrap_err();
        assert_eq!(e.what, "the erasure deadline");
        let mut t = terminated("2026-11-01T00:00:00Z");
        t.spec.contract.terminated_at = Some(Time(
            Timestamp::MIN
                .checked_add(SignedDuration::from_hours(6))
                .unwrap(),
        ));
        assert_eq!(
            timing(&t, 0, 3).unwrap_err().what,
            "the end of the export window"
        );
    }

    #[test]
    fn a_huge_records_period_is_an_error_not_a_panic() {
        let t = terminated("2026-11-01T00:00:00Z");
        let timing = timing(&t, 30, 3).unwrap().unwrap();
        let erasure = ErasureStatus {
            verified_at: Some(Time(ts("2026-11-20T00:00:00Z"))),
            ..ErasureStatus::default()
        };
        let records = RecordRetention {
            billing_days: Some(i32::MAX),
            security_incidents_days: None,
            consent_days: None,
            deletion_receipts_days: None,
        };
        let e = receipt(
            &t,
            &timing,
            &erasure,
            &Periods::default(),
            Some(&records),
            vec![],
        )
        .unwrap_err();
        assert_eq!(e.what, "the billing records' end");
    }

    #[test]
    fn receipt_names_are_stable_and_unique_per_uid() {
        let t = terminated("2026-11-01T00:00:00Z");
        assert_eq!(receipt_name(&t), "deletion-receipt-acme-uid1");
    }

    mod properties {
        //! Any terminatedAt, period and margin: timing and receipts never panic, and a
        //! deadline is never before the contract's end.
        use super::*;
        use proptest::prelude::*;

        fn at(secs: i64) -> Timestamp {
            Timestamp::from_second(secs).unwrap_or(Timestamp::MAX)
        }

        proptest! {
            #[test]
            fn timing_never_panics_and_keeps_its_order(
                ended in Timestamp::MIN.as_second()..=Timestamp::MAX.as_second(),
                days in any::<i32>(),
                margin in any::<i64>(),
                deleted in proptest::option::of(Timestamp::MIN.as_second()..=Timestamp::MAX.as_second()),
            ) {
                let mut t = terminated("2026-11-01T00:00:00Z");
                t.spec.contract.terminated_at = Some(Time(at(ended)));
                t.metadata.deletion_timestamp = deleted.map(|d| Time(at(d)));
                if let Ok(Some(timing)) = timing(&t, days, margin) {
                    if days >= 0 {
                        prop_assert!(timing.deadline >= timing.ended_at);
                    }
                    prop_assert!(timing.erase_from <= timing.ended_at.max(timing.deadline));
                    let _ = export_window_end(&timing, at(ended));
                    let _ = overdue(&timing, at(ended));
                }
            }

            #[test]
            fn receipts_never_panic(
                verified in Timestamp::MIN.as_second()..=Timestamp::MAX.as_second(),
                billing in any::<i32>(),
                incidents in any::<i32>(),
                backups in any::<i32>(),
            ) {
                let t = terminated("2026-11-01T00:00:00Z");
                let Ok(Some(timing)) = timing(&t, 30, 3) else {
                    return Err(TestCaseError::fail("a normal timing"));
                };
                let erasure = ErasureStatus {
                    verified_at: Some(Time(at(verified))),
                    ..ErasureStatus::default()
                };
                let records = RecordRetention {
                    billing_days: Some(billing),
                    security_incidents_days: Some(incidents),
                    consent_days: None,
                    deletion_receipts_days: None,
                };
                let periods = Periods { backups_days: backups, ..Periods::default() };
                if let Ok(Some(r)) = receipt(&t, &timing, &erasure, &periods, Some(&records), vec![]) {
                    prop_assert!(seal(&r).is_ok());
                }
            }
        }
    }
}

/// The certificate of deletion's way to the customer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Acknowledged (or not due yet: erasure is not finished).
    Delivered,
    /// Retried until acknowledged; why it has not been.
    Pending(String),
    /// The tenant has no notification endpoint: the receipt stays in the cluster.
    NoEndpoint,
}

/// `ErasureStepFailing`: the failing step that matters most (a purge, which holds the
/// receipt, before the steps that do not), with every failing one in the message.
fn step_failing(erasure: &ErasureStatus, deadline: &str) -> crate::conditions::Desired {
    use crate::api::v1alpha1::conditions::{self as types, reason};
    use crate::conditions::Desired;
    let failing = &erasure.failing_steps;
    let first = [
        (step::PURGE, reason::PURGE_FAILING),
        (step::REVOCATION, reason::REVOCATION_FAILING),
        (step::RECEIPT_DELIVERY, reason::RECEIPT_DELIVERY_FAILING),
    ]
    .into_iter()
    .find(|(s, _)| failing.iter().any(|f| f.step == *s));
    let Some((first_step, why)) = first else {
        return Desired::no(
            types::ERASURE_STEP_FAILING,
            reason::RECONCILED,
            "no erasure step is failing",
        );
    };
    let each: Vec<String> = failing
        .iter()
        .map(|f| {
            format!(
                "{} of {} failed {} times ({}, last at {})",
                f.step, f.target, f.attempts, f.error, f.last_try.0
            )
        })
        .collect();
    let consequence = if first_step == step::PURGE {
        format!("the receipt waits until the purge succeeds (deadline {deadline})")
    } else {
        "erasure did not wait for it (no end-user data is at stake)".to_owned()
    };
    Desired::yes(
        types::ERASURE_STEP_FAILING,
        why,
        format!("{}; retrying; {consequence}", each.join("; ")),
    )
}

/// Where the pipeline stands, as the phase shows it.
pub fn phase(erasure: &ErasureStatus, done: bool) -> crate::api::v1alpha1::TenantPhase {
    use crate::api::v1alpha1::TenantPhase;
    if done {
        TenantPhase::Erased
    } else if erasure.erasing_since.is_some() {
        TenantPhase::Erasing
    } else if erasure.export.as_ref().is_some_and(|e| e.outcome.is_none()) {
        TenantPhase::Exporting
    } else {
        TenantPhase::Terminating
    }
}

/// The conditions erasure owns (Ready, Reconciling, Stalled, Erased, DeletionOverdue)
/// for a terminated or deleted tenant. Waiting for the scheduled start is Ready: nothing
/// is wrong and nothing needs a person; an overdue erasure is Stalled, for the alert.
pub fn conditions(
    erasure: &ErasureStatus,
    timing: &Timing,
    done: bool,
    delivery: &Delivery,
    note: &str,
    now: Timestamp,
) -> Vec<crate::conditions::Desired> {
    use crate::api::v1alpha1::conditions::{self as types, reason};
    use crate::conditions::Desired;
    let late = !done && overdue(timing, now);
    let working = !done
        && (erasure.erasing_since.is_some()
            || erasure.export.as_ref().is_some_and(|e| e.outcome.is_none()));
    let deadline = Time(timing.deadline).0;
    vec![
        if done {
            Desired::yes(types::READY, reason::ERASED, note)
        } else if late {
            Desired::no(
                types::READY,
                reason::ERASURE_OVERDUE,
                format!("the erasure deadline {deadline} has passed: {note}"),
            )
        } else if working {
            Desired::no(types::READY, reason::ERASURE_IN_PROGRESS, note)
        } else {
            Desired::yes(types::READY, reason::ERASURE_SCHEDULED, note)
        },
        if working && !late {
            Desired::yes(types::RECONCILING, reason::ERASURE_IN_PROGRESS, note)
        } else {
            Desired::no(
                types::RECONCILING,
                reason::RECONCILED,
                "nothing in progress",
            )
        },
        crate::conditions::stalled(late.then(|| {
            (
                reason::ERASURE_OVERDUE,
                format!("erasure missed its deadline {deadline}"),
            )
        })),
        if let Some(held) = held::summary(&erasure.not_erased).filter(|_| done) {
            // Erased by the deadline, receipt written: what the API would not delete is
            // said until a person has deleted it.
            Desired::yes(types::ERASED, reason::OBJECTS_HELD, held)
        } else if done && !erasure.unverified_kinds.is_empty() {
            // Erased as far as the operator could look: what it could not list is said,
            // not silently skipped.
            Desired::yes(
                types::ERASED,
                reason::KINDS_UNVERIFIED,
                format!(
                    "{note}; not verified, the operator may not list these kinds of the erasure scope (grant list on them, or remove them from erasure.scope.kinds): {}",
                    erasure.unverified_kinds.join(", ")
                ),
            )
        } else if done {
            Desired::yes(types::ERASED, reason::ERASED, note)
        } else if erasure.erasing_since.is_some() {
            Desired::no(types::ERASED, reason::ERASURE_IN_PROGRESS, note)
        } else {
            Desired::no(types::ERASED, reason::ERASURE_SCHEDULED, note)
        },
        if late {
            Desired::yes(
                types::DELETION_OVERDUE,
                reason::ERASURE_OVERDUE,
                format!("the deadline {deadline} passed before erasure was verified"),
            )
        } else {
            Desired::no(
                types::DELETION_OVERDUE,
                if done {
                    reason::ERASED
                } else {
                    reason::WITHIN_DEADLINE
                },
                format!("deadline {deadline}"),
            )
        },
        step_failing(erasure, &deadline.to_string()),
        match (done, delivery) {
            (false, _) => Desired::no(
                types::RECEIPT_DELIVERED,
                reason::ERASURE_IN_PROGRESS,
                "no receipt yet",
            ),
            (true, Delivery::Delivered) => Desired::yes(
                types::RECEIPT_DELIVERED,
                reason::DELIVERED,
                "the customer's endpoint acknowledged the signed certificate of deletion",
            ),
            (true, Delivery::Pending(why)) => Desired::no(
                types::RECEIPT_DELIVERED,
                reason::DELIVERY_PENDING,
                format!("retrying until acknowledged: {why}"),
            ),
            (true, Delivery::NoEndpoint) => Desired::no(
                types::RECEIPT_DELIVERED,
                reason::NO_NOTIFICATION_ENDPOINT,
                "no spec.notifications: the receipt is kept in the operator's namespace only",
            ),
        },
    ]
}
