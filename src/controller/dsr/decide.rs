//! The pure part of a DataSubjectRequest: its deadline, the Job's name and arguments, what a finished Job answered (by its exit
//! code, see the image contract in the README), the fulfilment receipt, and the status.
//! No I/O: the controller (`super`) does the reading and writing.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::tz::TimeZone;
use std::collections::BTreeMap;

use k8s_openapi::jiff::{SignedDuration, Span, Timestamp};
use serde::Serialize;
use serde_json::{Value, json};

use super::REQUEST_LABEL;
#[cfg(doc)]
use crate::api::v1alpha1::ONE_MONTH;
use crate::api::v1alpha1::conditions::{self as types, reason};
use crate::api::v1alpha1::{DataSubjectRequest, DataSubjectRequestStatus, Extension, Right};
use crate::conditions::{Desired, merge};

/// Where the Job finds the data subject's identifier: the copy of the subject Secret
/// mounted as a directory, its key `subject` as a file.
pub const SUBJECT_DIR: &str = crate::controller::tenant::data_plane::SUBJECT_DIR;
/// The key of the subject Secret that holds the identifier.
pub const SUBJECT_KEY: &str = "subject";
/// Exit code of a request's Job: the platform holds nothing about the data subject.
pub const EXIT_NOTHING_HELD: i32 = 3;
/// Exit code of a request's Job: the identifier matches no data subject unambiguously
/// (Art. 11(2), 12(2): the controller may ask for more information).
pub const EXIT_NOT_IDENTIFIED: i32 = 4;

/// The answer to a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The right was given effect (exit code 0).
    Fulfilled,
    /// Nothing is held about the subject (exit code 3, or the tenant is erased or gone).
    NothingHeld,
    /// The identifier identifies no one (exit code 4).
    SubjectNotIdentified,
    /// The request was deleted before it was answered: its Job and subject copy were
    /// removed, and this is what its receipt records.
    Withdrawn,
}

impl Answer {
    /// The `status.outcome` and receipt spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Answer::Fulfilled => "Fulfilled",
            Answer::NothingHeld => "NothingHeld",
            Answer::SubjectNotIdentified => "SubjectNotIdentified",
            Answer::Withdrawn => crate::evidence::WITHDRAWN,
        }
    }
}

/// Where a request's Job stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobOutcome {
    /// Not finished.
    Running,
    /// Finished with an answer, at the time the Job finished.
    Answered(Answer, Timestamp),
    /// Failed without an answer (another exit code, out of retries): run again.
    Failed(String),
}

/// `t` + `months` calendar months in UTC, clamped to the end of a shorter month at the
/// same time of day (a month after 31 January is the end of February): the one month
/// function of requests, used by the deadline and by the first month an extension must
/// fall in, and what the CRD's CEL rule and [`ONE_MONTH`] describe. The latest
/// representable time if out of range (admission keeps receivedAt before 2200, so never
/// in practice).
pub fn add_months(t: Timestamp, months: i64) -> Timestamp {
    t.to_zoned(TimeZone::UTC)
        .checked_add(Span::new().months(months))
        .map(|z| z.timestamp())
        .unwrap_or(Timestamp::MAX)
}

/// The end of the first month after receipt: the deadline without an extension, and the
/// last moment an extension can be told of and made.
pub fn first_month_end(dsr: &DataSubjectRequest) -> Timestamp {
    add_months(dsr.spec.received_at.0, 1)
}

/// The extension that counts: the spec's, once Herald accepted it
/// ([`judge_extension`]).
pub fn counted_extension<'a>(
    dsr: &'a DataSubjectRequest,
    st: &DataSubjectRequestStatus,
) -> Option<&'a Extension> {
    dsr.spec
        .extension
        .as_ref()
        .filter(|_| st.extension_accepted == Some(true))
}

/// receivedAt + 1 month, + the accepted extension's months ([`add_months`]).
pub fn deadline(dsr: &DataSubjectRequest, st: &DataSubjectRequestStatus) -> Timestamp {
    let months = 1 + counted_extension(dsr, st).map_or(0, |e| i64::from(e.months.clamp(0, 2)));
    add_months(dsr.spec.received_at.0, months)
}

/// How far in the future receivedAt may be: clocks differ by a little.
pub const CLOCK_SKEW: SignedDuration = SignedDuration::from_mins(5);

/// Whether receivedAt was in the future when the request was made (its creation time,
/// which the API server sets; `now` for an object not yet stored): a request cannot
/// have been received after it was recorded, and receivedAt is immutable, so such a
/// request never counts (no deadline, Stalled `ReceivedAtInFuture`).
pub fn received_in_future(dsr: &DataSubjectRequest, now: Timestamp) -> bool {
    let made = dsr
        .metadata
        .creation_timestamp
        .as_ref()
        .map_or(now, |t| t.0);
    made.checked_add(CLOCK_SKEW)
        .is_ok_and(|limit| dsr.spec.received_at.0 > limit)
}

/// When Herald first saw the extension: the request's creation when it carried the
/// extension from the start (generation 1: its spec never changed, and both are set by
/// the API server, so an operator down at the first month's end does not refuse it),
/// otherwise `now`, the pass that first finds it.
pub fn extension_seen_at(dsr: &DataSubjectRequest, now: Timestamp) -> Timestamp {
    match (&dsr.metadata.creation_timestamp, dsr.metadata.generation) {
        (Some(created), Some(1)) => created.0.min(now),
        _ => now,
    }
}

/// Whether an extension Herald sees at `seen_at` counts: the data subject was told
/// within the first month ([`first_month_end`], the same month the deadline counts) and
/// the extension appeared within it too. An extension added later with a back-dated
/// subjectInformedAt would otherwise turn an overdue request into one that met its
/// deadline.
pub fn judge_extension(dsr: &DataSubjectRequest, seen_at: Timestamp) -> bool {
    let Some(e) = dsr.spec.extension.as_ref() else {
        return false;
    };
    let (from, end) = (dsr.spec.received_at.0, first_month_end(dsr));
    let told = e
        .subject_informed_at
        .as_ref()
        .is_some_and(|t| t.0 >= from && t.0 <= end);
    told && seen_at <= end
}

/// Records the judgement of the extension in `st`, once: a judgement already recorded is
/// never revisited (the extension itself cannot change, admission refuses that).
pub fn record_extension(
    dsr: &DataSubjectRequest,
    st: &mut DataSubjectRequestStatus,
    now: Timestamp,
) {
    let Some(e) = dsr.spec.extension.as_ref() else {
        return;
    };
    if st.extension_accepted.is_some() {
        return;
    }
    // A deadline Herald already recorded with the extension counted (a request from
    // before extensions were judged): that was Herald's judgement, and it stands. A new
    // extension never matches: until judged, the recorded deadline is receivedAt + 1
    // month, and an extension adds at least one.
    let with_it = add_months(dsr.spec.received_at.0, 1 + i64::from(e.months.clamp(0, 2)));
    if e.months > 0 && st.deadline.as_ref().is_some_and(|d| d.0 == with_it) {
        st.extension_accepted = Some(true);
        return;
    }
    let seen = whole(extension_seen_at(dsr, now));
    st.extension_accepted = Some(judge_extension(dsr, seen));
    st.extension_seen_at = Some(Time(seen));
}

/// Why `secret` (its labels) is not the request's subject Secret, if it is not: labelled
/// for the request's tenant (`SubjectSecretNotForTenant` otherwise, as every Secret
/// Herald reads for a tenant) and for the request itself (`NotASubjectSecret`): a
/// tenant's other Secrets (its notification signing Secret, kept after erasure for the
/// deletion receipt) are never read or deleted through a request naming them. Pure.
pub fn subject_secret_problem(
    namespace: &str,
    secret: &str,
    labels: Option<&BTreeMap<String, String>>,
    tenant: &str,
    request: &str,
) -> Option<(&'static str, String)> {
    if let Err(why) = crate::controller::ownership::check(namespace, secret, labels, tenant) {
        return Some((reason::SUBJECT_SECRET_NOT_FOR_TENANT, why));
    }
    let label = labels.and_then(|l| l.get(REQUEST_LABEL));
    if label.is_some_and(|r| r == request) {
        return None;
    }
    Some((
        reason::NOT_A_SUBJECT_SECRET,
        format!(
            "the Secret {namespace}/{secret} is not this request's subject Secret: it lacks the \
             label {REQUEST_LABEL}={request}, so Herald leaves it alone (its value is not read, it \
             is not deleted); if it holds this request's identifier under the key {SUBJECT_KEY}: \
             kubectl label secret -n {namespace} {secret} {REQUEST_LABEL}={request}"
        ),
    ))
}

/// Why a Secret labelled as the request's subject Secret is not one after all: it has no
/// key `subject`. Pure; names the key, never a value.
pub fn subject_key_problem(
    namespace: &str,
    secret: &str,
    data: Option<&BTreeMap<String, k8s_openapi::ByteString>>,
) -> Option<(&'static str, String)> {
    if data.is_some_and(|d| d.contains_key(SUBJECT_KEY)) {
        return None;
    }
    Some((
        reason::NOT_A_SUBJECT_SECRET,
        format!(
            "the Secret {namespace}/{secret} is not a subject Secret: it has no key \
             {SUBJECT_KEY}; Herald leaves it alone (nothing runs, it is not deleted)"
        ),
    ))
}

/// Why a stored deletion receipt (its ConfigMap data) does not show that `tenant` was
/// erased, if it does not: it must verify with Herald's own key and carry its recorded
/// digest (`recorded`: the Tenant's `status.erasure.receiptDigest` while the Tenant
/// exists, else the digest annotation Herald wrote with it), and be a deletion receipt
/// of that tenant. Only then is a request for a tenant that no longer exists answered
/// `NothingHeld`: a typo, or a request applied before its Tenant, is not. Pure.
pub fn deletion_receipt_problem(
    data: &BTreeMap<String, String>,
    recorded: Option<&str>,
    key: &crate::evidence::SigningKey,
    tenant: &str,
) -> Option<String> {
    if let Err(why) = crate::controller::receipt::judge_existing(data, key, recorded) {
        return Some(why);
    }
    let body: Value = data
        .get(crate::evidence::BODY_KEY)
        .and_then(|b| serde_json::from_str(b).ok())
        .unwrap_or_default();
    if body["schema"] != crate::evidence::DELETION_SCHEMA {
        return Some("it is not a deletion receipt".into());
    }
    if body["tenant"] != tenant {
        return Some(format!("it is not the deletion receipt of Tenant {tenant}"));
    }
    None
}

/// The request's Job (and the copy of its subject Secret) in the tenant namespace:
/// deterministic, so a restart finds the Job it created; by uid, so a request deleted
/// and made again is another Job.
pub fn job_name(dsr: &DataSubjectRequest) -> String {
    let uid = dsr.metadata.uid.as_deref().unwrap_or("nouid");
    let short: String = uid.chars().filter(|c| *c != '-').take(12).collect();
    format!("herald-dsr-{short}")
}

/// The fulfilment receipt's ConfigMap name (deterministic, like the Job's).
pub fn receipt_name(dsr: &DataSubjectRequest) -> String {
    let uid = dsr.metadata.uid.as_deref().unwrap_or("nouid");
    let short: String = uid.chars().filter(|c| *c != '-').take(8).collect();
    let name = dsr.metadata.name.as_deref().unwrap_or("unnamed");
    // A ConfigMap name may be 253 characters; the request's name is at most 253 too.
    let name: String = name.chars().take(200).collect();
    format!("dsr-receipt-{name}-{short}")
}

/// The Job's arguments: `dsr --tenant <t> --right <r> --subject-file <path>`, and for
/// access and portability `--destination <the tenant's export URL>` (docs/data-plane.md).
pub fn job_args(tenant: &str, right: Right, destination: Option<&str>) -> Vec<String> {
    let mut args = vec![
        "dsr".to_owned(),
        "--tenant".to_owned(),
        tenant.to_owned(),
        "--right".to_owned(),
        right.arg().to_owned(),
        "--subject-file".to_owned(),
        format!("{SUBJECT_DIR}/{SUBJECT_KEY}"),
    ];
    if let Some(d) = destination.filter(|_| right.delivers_data()) {
        args.extend(["--destination".to_owned(), d.to_owned()]);
    }
    args
}

/// The Job's pod failure policy: exit codes 3 and 4 are answers, not failures, so the
/// Job fails at once with them (no retry) and its Failed condition names the code.
pub fn pod_failure_policy() -> Value {
    json!({"rules": [{
        "action": "FailJob",
        "onExitCodes": {"operator": "In", "values": [EXIT_NOTHING_HELD, EXIT_NOT_IDENTIFIED]}
    }]})
}

/// What a request's Job answered, from its conditions. A Job failed by the pod failure
/// policy carries the exit code in its condition's message, as the Job controller
/// writes it ("Container job for pod ns/p failed with exit code 3 matching FailJob rule
/// at index 0").
pub fn job_outcome(job: &Job) -> JobOutcome {
    let conditions = job
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    let when = |c: &k8s_openapi::api::batch::v1::JobCondition| {
        c.last_transition_time
            .as_ref()
            .map_or_else(Timestamp::now, |t| t.0)
    };
    if let Some(c) = conditions
        .iter()
        .find(|c| c.type_ == "Complete" && c.status == "True")
    {
        return JobOutcome::Answered(Answer::Fulfilled, whole(when(c)));
    }
    let Some(c) = conditions
        .iter()
        .find(|c| c.type_ == "Failed" && c.status == "True")
    else {
        return JobOutcome::Running;
    };
    let reason = c.reason.as_deref().unwrap_or_default();
    if reason == "PodFailurePolicy" {
        match exit_code(c.message.as_deref().unwrap_or_default()) {
            Some(EXIT_NOTHING_HELD) => {
                return JobOutcome::Answered(Answer::NothingHeld, whole(when(c)));
            }
            Some(EXIT_NOT_IDENTIFIED) => {
                return JobOutcome::Answered(Answer::SubjectNotIdentified, whole(when(c)));
            }
            _ => {}
        }
    }
    JobOutcome::Failed(if reason.is_empty() {
        "JobFailed".into()
    } else {
        reason.to_owned()
    })
}

/// The number after "exit code " in a Job condition's message.
fn exit_code(message: &str) -> Option<i32> {
    let rest = message.split("exit code ").nth(1)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Whole seconds: a Kubernetes Time stores no fraction, and the receipt rebuilt after a
/// restart must carry the same times.
fn whole(t: Timestamp) -> Timestamp {
    Timestamp::from_second(t.as_second()).unwrap_or(t)
}

/// The proof that a request was answered. Ids, the right, times and the outcome only:
/// never the data subject's identifier. Field order is the serialization order.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Receipt {
    /// Always `herald.dev/fulfilment-receipt/v1`.
    pub schema: &'static str,
    /// The DataSubjectRequest's name and UID.
    pub request: String,
    pub request_uid: String,
    /// The Tenant (the controller) it was answered for, and its UID when it exists.
    pub tenant: String,
    pub tenant_uid: Option<String>,
    /// The right exercised.
    pub right: Right,
    /// When the request was received, and its deadline (with the extension).
    pub received_at: Time,
    pub deadline: Time,
    /// The extension's months and when the data subject was told of it, when it
    /// counts; whether it was accepted (false: it appeared after the first month and
    /// moved nothing), when there is one.
    pub extension_months: Option<i32>,
    pub subject_informed_at: Option<Time>,
    pub extension_accepted: Option<bool>,
    /// When the answer was established, and whether by the deadline.
    pub answered_at: Time,
    pub met_deadline: bool,
    /// `Fulfilled`, `NothingHeld`, `SubjectNotIdentified` or `Withdrawn`.
    pub outcome: &'static str,
    /// The Job that answered (absent when the tenant was erased or gone); for a
    /// withdrawn request, the Job that was removed.
    pub job: Option<String>,
    /// Where an access or portability answer was delivered (the tenant's export
    /// endpoint), when the Job delivered one: without its query string, fragment or
    /// userinfo ([`crate::evidence::url_for_evidence`]), so that a pre-signed URL does
    /// not become a credential nobody may delete.
    pub delivered_to: Option<String>,
    /// The erased tenant's deletion receipt, when the answer is what remains of it.
    pub deletion_receipt: Option<String>,
    /// The operator that answered.
    pub operator_version: &'static str,
}

/// The facts a receipt is built from, as status recorded them.
pub struct Answered<'a> {
    pub answer: Answer,
    pub answered_at: Timestamp,
    pub tenant_uid: Option<String>,
    pub job: Option<&'a str>,
    pub delivered_to: Option<&'a str>,
    pub deletion_receipt: Option<&'a str>,
    /// Whether the extension counts (`status.extensionAccepted`).
    pub extension_accepted: Option<bool>,
}

/// The fulfilment receipt of `dsr`.
pub fn receipt(dsr: &DataSubjectRequest, a: &Answered<'_>) -> Receipt {
    let judged = DataSubjectRequestStatus {
        extension_accepted: a.extension_accepted,
        ..Default::default()
    };
    let deadline = deadline(dsr, &judged);
    let counted = counted_extension(dsr, &judged);
    Receipt {
        schema: crate::evidence::FULFILMENT_SCHEMA,
        request: dsr.metadata.name.clone().unwrap_or_default(),
        request_uid: dsr.metadata.uid.clone().unwrap_or_default(),
        tenant: dsr.spec.tenant_ref.name.clone(),
        tenant_uid: a.tenant_uid.clone(),
        right: dsr.spec.right,
        received_at: dsr.spec.received_at.clone(),
        deadline: Time(deadline),
        extension_months: counted.map(|e| e.months),
        subject_informed_at: counted.and_then(|e| e.subject_informed_at.clone()),
        extension_accepted: dsr.spec.extension.as_ref().and(a.extension_accepted),
        answered_at: Time(a.answered_at),
        met_deadline: a.answered_at <= deadline,
        outcome: a.answer.as_str(),
        job: a.job.map(str::to_owned),
        delivered_to: a
            .delivered_to
            .filter(|_| a.answer == Answer::Fulfilled && dsr.spec.right.delivers_data())
            .map(crate::evidence::url_for_evidence),
        deletion_receipt: a.deletion_receipt.map(str::to_owned),
        operator_version: crate::VERSION,
    }
}

/// The receipt's canonical bytes and their SHA-256 (hex).
pub fn seal(receipt: &Receipt) -> Result<(String, String), serde_json::Error> {
    let body = serde_json::to_string_pretty(receipt)?;
    let digest = crate::digest::sha256_hex(body.as_bytes());
    Ok((body, digest))
}

/// The status summary: the deadline, the state and the conditions, from what the
/// reconcile found. `blocked` is what needs a person (Stalled); `failing` a Job that
/// failed and is run again; `waiting` progress that finishes by itself.
pub fn status(
    dsr: &DataSubjectRequest,
    mut st: DataSubjectRequestStatus,
    blocked: Option<(&'static str, String)>,
    failing: Option<String>,
    now: Timestamp,
) -> DataSubjectRequestStatus {
    let deadline = deadline(dsr, &st);
    // A receivedAt in the future counts no deadline (and no Overdue).
    let counts = !received_in_future(dsr, now);
    let answered = st.receipt.is_some();
    let done = answered
        && st.subject_secret_deleted_at.is_some()
        && (st.receipt_delivered_at.is_some() || blocked.is_some());
    let state = if answered {
        "Answered"
    } else if counts && now > deadline {
        "Overdue"
    } else if st.job.is_some() && blocked.is_none() {
        "Running"
    } else {
        "Pending"
    };
    let outcome = st.outcome.clone().unwrap_or_default();
    let ready = match (&blocked, &failing) {
        (Some((reason, message)), _) => Desired::no(types::READY, reason, message.clone()),
        (None, Some(why)) => Desired::no(
            types::READY,
            reason::DSR_JOB_FAILED,
            format!("the request's Job failed without an answer ({why}); it is run again"),
        ),
        (None, None) if done => Desired::yes(
            types::READY,
            reason::ANSWERED,
            format!(
                "answered ({outcome}); fulfilment receipt {}",
                st.receipt.as_deref().unwrap_or_default()
            ),
        ),
        (None, None) if answered => Desired::no(
            types::READY,
            reason::RECEIPT_DELIVERY_PENDING,
            format!("answered ({outcome}); the receipt is being delivered to the tenant"),
        ),
        (None, None) => Desired::no(
            types::READY,
            reason::PROGRESSING,
            format!("being answered by {}", Time(deadline).0),
        ),
    };
    let extension = extension_condition(dsr, &st);
    let reconciling = (!done && blocked.is_none()).then(|| {
        (
            reason::PROGRESSING,
            "the request is being answered".to_owned(),
        )
    });
    let mut desired = vec![
        ready,
        crate::conditions::reconciling(reconciling),
        crate::conditions::stalled(blocked),
    ];
    desired.extend(extension);
    st.conditions = merge(&st.conditions, &desired, dsr.metadata.generation, now);
    st.observed_generation = dsr.metadata.generation;
    st.deadline = counts.then_some(Time(deadline));
    st.state = Some(state.to_owned());
    st
}

/// `ExtensionAccepted`, once the extension was judged ([`record_extension`]); none
/// without an extension.
fn extension_condition(dsr: &DataSubjectRequest, st: &DataSubjectRequestStatus) -> Option<Desired> {
    let e = dsr.spec.extension.as_ref()?;
    // Unset for an extension counted before extensions were judged.
    let seen = st.extension_seen_at.as_ref().map_or_else(
        || "before extensions were judged".to_owned(),
        |t| t.0.to_string(),
    );
    let end = first_month_end(dsr);
    Some(match st.extension_accepted? {
        true => Desired::yes(
            types::EXTENSION_ACCEPTED,
            reason::EXTENSION_WITHIN_FIRST_MONTH,
            format!(
                "the extension by {} month(s) was made within the first month (seen {seen}, the first month ended {end}): the deadline moves with it",
                e.months
            ),
        ),
        false => Desired::no(
            types::EXTENSION_ACCEPTED,
            reason::EXTENSION_TOO_LATE,
            format!(
                "the extension counts for nothing: Herald first saw it at {seen}, or the data subject was told of it, after the first month ended at {end} (one month is {}); the deadline stays receivedAt + 1 month",
                crate::api::v1alpha1::ONE_MONTH
            ),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::v1alpha1::{DataSubjectRequestSpec, Extension, ObjectRef};
    use k8s_openapi::api::batch::v1::{JobCondition, JobStatus};

    fn dsr(received: &str, extension: Option<i32>) -> DataSubjectRequest {
        let mut d = DataSubjectRequest::new(
            "acme-access",
            DataSubjectRequestSpec {
                tenant_ref: ObjectRef {
                    name: "acme".into(),
                },
                right: Right::Access,
                received_at: Time(received.parse().unwrap()),
                subject_secret_ref: ObjectRef {
                    name: "subject".into(),
                },
                extension: extension.map(|months| Extension {
                    months,
                    reason: Some("complex".into()),
                    subject_informed_at: Some(Time("2026-03-10T00:00:00Z".parse().unwrap())),
                }),
            },
        );
        d.metadata.uid = Some("0123abcd-4567-89ef-0123-456789abcdef".into());
        d.metadata.generation = Some(1);
        d
    }

    fn failed_job(reason: &str, message: &str) -> Job {
        Job {
            status: Some(JobStatus {
                conditions: Some(vec![JobCondition {
                    type_: "Failed".into(),
                    status: "True".into(),
                    reason: Some(reason.into()),
                    message: Some(message.into()),
                    last_transition_time: Some(Time("2026-03-05T10:00:00.5Z".parse().unwrap())),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn accepted() -> DataSubjectRequestStatus {
        DataSubjectRequestStatus {
            extension_accepted: Some(true),
            ..Default::default()
        }
    }

    #[test]
    fn the_deadline_is_one_calendar_month_after_receipt_plus_the_accepted_extension() {
        let none = DataSubjectRequestStatus::default();
        assert_eq!(
            deadline(&dsr("2026-03-02T09:30:00Z", None), &none),
            at("2026-04-02T09:30:00Z")
        );
        assert_eq!(
            deadline(&dsr("2026-03-02T09:30:00Z", Some(2)), &accepted()),
            at("2026-06-02T09:30:00Z")
        );
        // An extension not (yet) accepted moves nothing.
        assert_eq!(
            deadline(&dsr("2026-03-02T09:30:00Z", Some(2)), &none),
            at("2026-04-02T09:30:00Z")
        );
        let refused = DataSubjectRequestStatus {
            extension_accepted: Some(false),
            ..Default::default()
        };
        assert_eq!(
            deadline(&dsr("2026-03-02T09:30:00Z", Some(2)), &refused),
            at("2026-04-02T09:30:00Z")
        );
        // The end of a shorter month, not a day into the next.
        assert_eq!(
            deadline(&dsr("2026-01-31T12:00:00Z", None), &none),
            at("2026-02-28T12:00:00Z")
        );
    }

    #[test]
    fn one_month_is_a_calendar_month_clamped_to_a_shorter_month() {
        for (from, months, to) in [
            ("2026-01-31T12:00:00Z", 1, "2026-02-28T12:00:00Z"),
            ("2028-01-31T12:00:00Z", 1, "2028-02-29T12:00:00Z"),
            ("2026-03-31T23:59:59Z", 1, "2026-04-30T23:59:59Z"),
            ("2026-12-31T00:00:00Z", 1, "2027-01-31T00:00:00Z"),
            ("2026-02-28T08:00:00Z", 1, "2026-03-28T08:00:00Z"),
            ("2026-01-31T12:00:00Z", 3, "2026-04-30T12:00:00Z"),
            ("2026-03-02T09:30:00Z", 0, "2026-03-02T09:30:00Z"),
        ] {
            assert_eq!(add_months(at(from), months), at(to), "{from} + {months}");
        }
        assert_eq!(
            first_month_end(&dsr("2026-01-31T12:00:00Z", None)),
            at("2026-02-28T12:00:00Z")
        );
    }

    fn told(received: &str, informed: &str) -> DataSubjectRequest {
        let mut d = dsr(received, Some(2));
        if let Some(e) = d.spec.extension.as_mut() {
            e.subject_informed_at = Some(Time(at(informed)));
        }
        d
    }

    #[test]
    fn an_extension_counts_only_when_told_and_seen_within_the_first_month() {
        let received = "2026-01-31T12:00:00Z";
        for (informed, seen, counts) in [
            // Told and seen on the month's last moment (clamped to 28 February).
            ("2026-02-28T12:00:00Z", "2026-02-28T12:00:00Z", true),
            ("2026-02-10T00:00:00Z", "2026-02-10T00:00:00Z", true),
            // Told after the clamped end: the case the old CEL check admitted.
            ("2026-02-28T23:00:00Z", "2026-02-28T23:00:00Z", false),
            ("2026-02-28T12:00:01Z", "2026-02-20T00:00:00Z", false),
            // Told in time by its own account, but first seen after the month ended:
            // back-dated.
            ("2026-02-10T00:00:00Z", "2026-03-15T00:00:00Z", false),
            ("2026-02-10T00:00:00Z", "2026-02-28T12:00:01Z", false),
            // Told before the request was received.
            ("2026-01-30T00:00:00Z", "2026-02-01T00:00:00Z", false),
        ] {
            assert_eq!(
                judge_extension(&told(received, informed), at(seen)),
                counts,
                "told {informed}, seen {seen}"
            );
        }
        assert!(!judge_extension(&dsr(received, None), at(received)));
    }

    #[test]
    fn the_extension_is_judged_once_when_first_seen() {
        // Added later (generation 2): judged at the pass that finds it.
        let mut d = told("2026-03-02T09:30:00Z", "2026-03-10T00:00:00Z");
        d.metadata.generation = Some(2);
        d.metadata.creation_timestamp = Some(Time(at("2026-03-02T09:31:00Z")));
        let mut st = DataSubjectRequestStatus::default();
        record_extension(&d, &mut st, at("2026-04-20T00:00:00.7Z"));
        assert_eq!(st.extension_accepted, Some(false));
        assert_eq!(st.extension_seen_at, Some(Time(at("2026-04-20T00:00:00Z"))));
        // Never judged again, whenever the next pass runs.
        record_extension(&d, &mut st, at("2026-03-11T00:00:00Z"));
        assert_eq!(st.extension_accepted, Some(false));
        assert_eq!(deadline(&d, &st), at("2026-04-02T09:30:00Z"));
        // Carried from creation (generation 1): seen when the request was made, even
        // if the operator first looks after the month ended.
        let mut d = told("2026-03-02T09:30:00Z", "2026-03-10T00:00:00Z");
        d.metadata.creation_timestamp = Some(Time(at("2026-03-10T08:00:00Z")));
        let mut st = DataSubjectRequestStatus::default();
        record_extension(&d, &mut st, at("2026-04-20T00:00:00Z"));
        assert_eq!(st.extension_accepted, Some(true));
        assert_eq!(st.extension_seen_at, Some(Time(at("2026-03-10T08:00:00Z"))));
        assert_eq!(deadline(&d, &st), at("2026-06-02T09:30:00Z"));
        // A request from before extensions were judged, whose recorded deadline already
        // counts it: kept.
        let mut d = told("2026-03-02T09:30:00Z", "2026-03-10T00:00:00Z");
        d.metadata.generation = Some(2);
        let mut st = DataSubjectRequestStatus {
            deadline: Some(Time(at("2026-06-02T09:30:00Z"))),
            ..Default::default()
        };
        record_extension(&d, &mut st, at("2026-04-20T00:00:00Z"));
        assert_eq!(st.extension_accepted, Some(true));
        // One whose recorded deadline is the first month's (not counted yet): judged.
        let mut st = DataSubjectRequestStatus {
            deadline: Some(Time(at("2026-04-02T09:30:00Z"))),
            ..Default::default()
        };
        record_extension(&d, &mut st, at("2026-04-20T00:00:00Z"));
        assert_eq!(st.extension_accepted, Some(false));
        // No extension: nothing recorded.
        let mut st = DataSubjectRequestStatus::default();
        record_extension(
            &dsr("2026-03-02T09:30:00Z", None),
            &mut st,
            at("2026-03-03T00:00:00Z"),
        );
        assert_eq!(st, DataSubjectRequestStatus::default());
    }

    #[test]
    fn received_at_may_be_at_most_five_minutes_after_the_request_was_made() {
        let made = "2026-03-02T09:30:00Z";
        for (received, future) in [
            ("2026-03-02T09:30:00Z", false),
            ("2026-02-01T00:00:00Z", false),
            ("2026-03-02T09:35:00Z", false),
            ("2026-03-02T09:35:01Z", true),
            ("2199-01-01T00:00:00Z", true),
        ] {
            let mut d = dsr(received, None);
            d.metadata.creation_timestamp = Some(Time(at(made)));
            // Judged against its creation, not the clock of the pass.
            assert_eq!(
                received_in_future(&d, at("2027-01-01T00:00:00Z")),
                future,
                "{received}"
            );
        }
        // Not stored yet: against now.
        assert!(received_in_future(
            &dsr("2026-03-02T09:36:00Z", None),
            at(made)
        ));
    }

    #[test]
    fn only_the_requests_own_subject_secret_is_one() {
        let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect()
        };
        let t = crate::controller::TENANT_LABEL;
        let check = |l: &BTreeMap<String, String>| {
            subject_secret_problem("herald-system", "s", Some(l), "acme", "acme-access")
                .map(|p| p.0)
        };
        assert_eq!(
            check(&labels(&[(t, "acme"), (REQUEST_LABEL, "acme-access")])),
            None
        );
        // The tenant's signing Secret, labelled for it alone: not a subject Secret.
        assert_eq!(
            check(&labels(&[(t, "acme")])),
            Some(reason::NOT_A_SUBJECT_SECRET)
        );
        // Another request's.
        assert_eq!(
            check(&labels(&[(t, "acme"), (REQUEST_LABEL, "acme-other")])),
            Some(reason::NOT_A_SUBJECT_SECRET)
        );
        // Another tenant's, whatever its request label.
        assert_eq!(
            check(&labels(&[(t, "globex"), (REQUEST_LABEL, "acme-access")])),
            Some(reason::SUBJECT_SECRET_NOT_FOR_TENANT)
        );
        assert_eq!(
            subject_secret_problem("herald-system", "s", None, "acme", "acme-access").map(|p| p.0),
            Some(reason::SUBJECT_SECRET_NOT_FOR_TENANT)
        );
        let (_, msg) = subject_secret_problem(
            "herald-system",
            "s",
            Some(&labels(&[(t, "acme")])),
            "acme",
            "acme-access",
        )
        .unwrap();
        assert!(
            msg.contains("herald.dev/data-subject-request=acme-access"),
            "{msg}"
        );
        // The key.
        let data =
            |k: &str| BTreeMap::from([(k.to_owned(), k8s_openapi::ByteString(b"v".to_vec()))]);
        assert_eq!(
            subject_key_problem("herald-system", "s", Some(&data(SUBJECT_KEY))),
            None
        );
        let (r, msg) = subject_key_problem("herald-system", "s", Some(&data("hmacKey"))).unwrap();
        assert_eq!(r, reason::NOT_A_SUBJECT_SECRET);
        assert!(msg.contains("no key subject"), "{msg}");
        assert!(subject_key_problem("herald-system", "s", None).is_some());
    }

    #[test]
    fn only_a_deletion_receipt_herald_signed_for_the_tenant_counts() {
        use crate::evidence::{self, SigningKey};
        let key = SigningKey::from_pkcs8(&SigningKey::generate_pkcs8().unwrap()).unwrap();
        let forger = SigningKey::from_pkcs8(&SigningKey::generate_pkcs8().unwrap()).unwrap();
        let stored = |k: &SigningKey, body: &str| {
            BTreeMap::from([
                (evidence::BODY_KEY.to_owned(), body.to_owned()),
                (
                    evidence::DIGEST_KEY.to_owned(),
                    crate::digest::sha256_hex(body.as_bytes()),
                ),
                (
                    evidence::SIGNATURE_KEY.to_owned(),
                    k.sign_b64(body.as_bytes()),
                ),
                (evidence::KEY_ID_KEY.to_owned(), k.key_id().to_owned()),
                (evidence::PUBLIC_KEY_KEY.to_owned(), k.public_key_b64()),
            ])
        };
        let body = |schema: &str, tenant: &str| {
            serde_json::json!({"schema": schema, "tenant": tenant}).to_string()
        };
        let ok = stored(&key, &body(evidence::DELETION_SCHEMA, "acme"));
        let digest = ok[evidence::DIGEST_KEY].clone();
        assert_eq!(deletion_receipt_problem(&ok, None, &key, "acme"), None);
        assert_eq!(
            deletion_receipt_problem(&ok, Some(&digest), &key, "acme"),
            None
        );
        // Another digest than the recorded one.
        assert!(deletion_receipt_problem(&ok, Some("00"), &key, "acme").is_some());
        // Another tenant's, a fulfilment receipt, a forged one.
        assert!(deletion_receipt_problem(&ok, None, &key, "acme-2").is_some());
        let fulfilment = stored(&key, &body(evidence::FULFILMENT_SCHEMA, "acme"));
        assert!(deletion_receipt_problem(&fulfilment, None, &key, "acme").is_some());
        let forged = stored(&forger, &body(evidence::DELETION_SCHEMA, "acme"));
        assert!(deletion_receipt_problem(&forged, None, &key, "acme").is_some());
        assert!(deletion_receipt_problem(&BTreeMap::new(), None, &key, "acme").is_some());
    }

    #[test]
    fn the_job_runs_dsr_with_the_subject_file_and_a_destination_only_for_data() {
        assert_eq!(
            job_args("acme", Right::Access, Some("https://x.example/up")),
            [
                "dsr",
                "--tenant",
                "acme",
                "--right",
                "access",
                "--subject-file",
                "/var/run/herald/subject/subject",
                "--destination",
                "https://x.example/up"
            ]
        );
        assert_eq!(
            job_args("acme", Right::Erasure, Some("https://x.example/up")).len(),
            7
        );
        assert_eq!(
            job_name(&dsr("2026-03-02T09:30:00Z", None)),
            "herald-dsr-0123abcd4567"
        );
    }

    #[test]
    fn exit_codes_map_to_answers_and_other_failures_are_run_again() {
        let msg = |code: i32| {
            format!(
                "Container job for pod t/p failed with exit code {code} matching FailJob rule at index 0"
            )
        };
        let at: Timestamp = "2026-03-05T10:00:00Z".parse().unwrap();
        assert_eq!(
            job_outcome(&failed_job("PodFailurePolicy", &msg(3))),
            JobOutcome::Answered(Answer::NothingHeld, at)
        );
        assert_eq!(
            job_outcome(&failed_job("PodFailurePolicy", &msg(4))),
            JobOutcome::Answered(Answer::SubjectNotIdentified, at)
        );
        assert_eq!(
            job_outcome(&failed_job(
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit"
            )),
            JobOutcome::Failed("BackoffLimitExceeded".into())
        );
        assert_eq!(job_outcome(&Job::default()), JobOutcome::Running);
    }

    #[test]
    fn the_receipt_holds_ids_times_and_the_outcome_only() {
        let d = dsr("2026-03-02T09:30:00Z", Some(1));
        let r = receipt(
            &d,
            &Answered {
                answer: Answer::Fulfilled,
                answered_at: "2026-03-05T10:00:00Z".parse().unwrap(),
                tenant_uid: Some("t-uid".into()),
                job: Some("herald-dsr-0123abcd4567"),
                delivered_to: Some("https://u:pw@x.example/up?X-Amz-Signature=abc"),
                deletion_receipt: None,
                extension_accepted: Some(true),
            },
        );
        assert!(r.met_deadline);
        assert_eq!(r.deadline, Time("2026-05-02T09:30:00Z".parse().unwrap()));
        // A pre-signed URL's credential is not kept.
        assert_eq!(r.delivered_to.as_deref(), Some("https://x.example/up"));
        assert_eq!(
            (r.extension_months, r.extension_accepted),
            (Some(1), Some(true))
        );
        let (body, digest) = seal(&r).unwrap();
        assert_eq!(digest, crate::digest::sha256_hex(body.as_bytes()));
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["outcome"], "Fulfilled");
        assert_eq!(v["right"], "Access");
        assert!(!body.contains("subject\":"), "{body}");
        assert!(
            !body.contains("Signature") && !body.contains("pw"),
            "{body}"
        );
    }

    #[test]
    fn a_refused_extension_and_a_withdrawal_are_what_the_receipt_says() {
        let d = dsr("2026-03-02T09:30:00Z", Some(2));
        let r = receipt(
            &d,
            &Answered {
                answer: Answer::Withdrawn,
                answered_at: at("2026-04-05T10:00:00Z"),
                tenant_uid: None,
                job: Some("herald-dsr-0123abcd4567"),
                delivered_to: Some("https://x.example/up"),
                deletion_receipt: None,
                extension_accepted: Some(false),
            },
        );
        assert_eq!(r.outcome, "Withdrawn");
        // The refused extension moved nothing: the request was overdue when withdrawn.
        assert_eq!(r.deadline, Time(at("2026-04-02T09:30:00Z")));
        assert!(!r.met_deadline);
        assert_eq!(
            (
                r.extension_months,
                r.subject_informed_at.as_ref(),
                r.extension_accepted
            ),
            (None, None, Some(false))
        );
        // Nothing was delivered.
        assert_eq!(r.delivered_to, None);
        let (body, _) = seal(&r).unwrap();
        let s = crate::evidence::summarize(&body).unwrap();
        assert_eq!(s.kind, "withdrawal receipt");
    }

    #[test]
    fn status_says_answered_only_once_the_receipt_is_written_and_the_secret_gone() {
        let d = dsr("2026-03-02T09:30:00Z", None);
        let now: Timestamp = "2026-03-05T10:00:00Z".parse().unwrap();
        let st = status(&d, DataSubjectRequestStatus::default(), None, None, now);
        assert_eq!(st.state.as_deref(), Some("Pending"));
        assert!(!crate::conditions::is_true(&st.conditions, types::READY));
        let answered = DataSubjectRequestStatus {
            receipt: Some("r".into()),
            outcome: Some("Fulfilled".into()),
            receipt_delivered_at: Some(Time(now)),
            subject_secret_deleted_at: Some(Time(now)),
            ..Default::default()
        };
        let st = status(&d, answered, None, None, now);
        assert_eq!(st.state.as_deref(), Some("Answered"));
        assert!(crate::conditions::is_true(&st.conditions, types::READY));
        let blocked = status(
            &d,
            DataSubjectRequestStatus::default(),
            Some((reason::SUBJECT_SECRET_NOT_FOR_TENANT, "x".into())),
            None,
            "2026-04-03T00:00:00Z".parse().unwrap(),
        );
        assert_eq!(blocked.state.as_deref(), Some("Overdue"));
        assert!(crate::conditions::is_true(
            &blocked.conditions,
            types::STALLED
        ));
    }

    #[test]
    fn a_request_received_in_the_future_has_no_deadline_and_is_never_overdue() {
        let mut d = dsr("2199-01-01T00:00:00Z", None);
        d.metadata.creation_timestamp = Some(Time(at("2026-03-02T09:30:00Z")));
        let st = status(
            &d,
            DataSubjectRequestStatus::default(),
            Some((reason::RECEIVED_AT_IN_FUTURE, "x".into())),
            None,
            at("2199-06-01T00:00:00Z"),
        );
        assert_eq!(st.deadline, None);
        assert_eq!(st.state.as_deref(), Some("Pending"));
        let stalled = crate::conditions::find(&st.conditions, types::STALLED).unwrap();
        assert_eq!(stalled.reason, reason::RECEIVED_AT_IN_FUTURE);
    }

    #[test]
    fn the_extension_condition_says_whether_it_counts() {
        let d = dsr("2026-03-02T09:30:00Z", Some(2));
        let now = at("2026-04-10T00:00:00Z");
        let late = DataSubjectRequestStatus {
            extension_accepted: Some(false),
            extension_seen_at: Some(Time(at("2026-04-09T00:00:00Z"))),
            ..Default::default()
        };
        let st = status(&d, late, None, None, now);
        let c = crate::conditions::find(&st.conditions, types::EXTENSION_ACCEPTED).unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", reason::EXTENSION_TOO_LATE)
        );
        assert!(c.message.contains("2026-04-02T09:30:00Z"), "{}", c.message);
        // The deadline did not move: overdue.
        assert_eq!(st.deadline, Some(Time(at("2026-04-02T09:30:00Z"))));
        assert_eq!(st.state.as_deref(), Some("Overdue"));
        let st = status(&d, accepted(), None, None, now);
        let c = crate::conditions::find(&st.conditions, types::EXTENSION_ACCEPTED).unwrap();
        assert_eq!(c.reason, reason::EXTENSION_WITHIN_FIRST_MONTH);
        assert_eq!(st.state.as_deref(), Some("Pending"));
        // No extension: no condition.
        let st = status(
            &dsr("2026-03-02T09:30:00Z", None),
            DataSubjectRequestStatus::default(),
            None,
            None,
            now,
        );
        assert!(crate::conditions::find(&st.conditions, types::EXTENSION_ACCEPTED).is_none());
    }

    mod properties {
        //! Any receipt time (and beyond what admission admits), any extension, any time
        //! it is seen: the month function, the deadline and the judgement never panic,
        //! the deadline is never before receipt, and an extension is only ever accepted
        //! within the first month.
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn months_and_extensions_never_panic_and_stay_in_the_first_month(
                received in Timestamp::MIN.as_second()..=Timestamp::MAX.as_second(),
                informed in Timestamp::MIN.as_second()..=Timestamp::MAX.as_second(),
                seen in Timestamp::MIN.as_second()..=Timestamp::MAX.as_second(),
                months in -3i32..5,
            ) {
                let ts = |s: i64| Timestamp::from_second(s).unwrap();
                let mut d = dsr("2026-03-02T09:30:00Z", Some(months));
                d.spec.received_at = Time(ts(received));
                if let Some(e) = d.spec.extension.as_mut() {
                    e.subject_informed_at = Some(Time(ts(informed)));
                }
                let end = first_month_end(&d);
                prop_assert!(end >= ts(received));
                let accepted = judge_extension(&d, ts(seen));
                if accepted {
                    prop_assert!(ts(seen) <= end && ts(informed) <= end && ts(informed) >= ts(received));
                }
                let mut st = DataSubjectRequestStatus::default();
                record_extension(&d, &mut st, ts(seen));
                prop_assert!(deadline(&d, &st) >= ts(received));
                let _ = received_in_future(&d, ts(seen));
                let _ = status(&d, st, None, None, ts(seen));
            }
        }
    }
}
