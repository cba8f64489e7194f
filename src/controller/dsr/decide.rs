//! The pure part of a DataSubjectRequest: its deadline, the Job's name and arguments, what a finished Job answered (by its exit
//! code, see the image contract in the README), the fulfilment receipt, and the status.
//! No I/O: the controller (`super`) does the reading and writing.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::tz::TimeZone;
use k8s_openapi::jiff::{Span, Timestamp};
use serde::Serialize;
use serde_json::{Value, json};

use crate::api::v1alpha1::conditions::{self as types, reason};
use crate::api::v1alpha1::{DataSubjectRequest, DataSubjectRequestStatus, Right};
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
}

impl Answer {
    /// The `status.outcome` and receipt spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Answer::Fulfilled => "Fulfilled",
            Answer::NothingHeld => "NothingHeld",
            Answer::SubjectNotIdentified => "SubjectNotIdentified",
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

/// receivedAt + 1 month, + the extension's months (calendar months in UTC: a month
/// after 31 January is the end of February). The latest representable time if out of range
/// (admission keeps receivedAt before 2200, so never in practice).
pub fn deadline(dsr: &DataSubjectRequest) -> Timestamp {
    let months = 1 + dsr
        .spec
        .extension
        .as_ref()
        .map_or(0, |e| i64::from(e.months.clamp(0, 2)));
    dsr.spec
        .received_at
        .0
        .to_zoned(TimeZone::UTC)
        .checked_add(Span::new().months(months))
        .map(|z| z.timestamp())
        .unwrap_or(Timestamp::MAX)
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
    /// The extension's months and when the data subject was told of it.
    pub extension_months: Option<i32>,
    pub subject_informed_at: Option<Time>,
    /// When the answer was established, and whether by the deadline.
    pub answered_at: Time,
    pub met_deadline: bool,
    /// `Fulfilled`, `NothingHeld` or `SubjectNotIdentified`.
    pub outcome: &'static str,
    /// The Job that answered (absent when the tenant was erased or gone).
    pub job: Option<String>,
    /// Where an access or portability answer was delivered (the tenant's export
    /// endpoint), when the Job delivered one.
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
}

/// The fulfilment receipt of `dsr`.
pub fn receipt(dsr: &DataSubjectRequest, a: &Answered<'_>) -> Receipt {
    let deadline = deadline(dsr);
    Receipt {
        schema: crate::evidence::FULFILMENT_SCHEMA,
        request: dsr.metadata.name.clone().unwrap_or_default(),
        request_uid: dsr.metadata.uid.clone().unwrap_or_default(),
        tenant: dsr.spec.tenant_ref.name.clone(),
        tenant_uid: a.tenant_uid.clone(),
        right: dsr.spec.right,
        received_at: dsr.spec.received_at.clone(),
        deadline: Time(deadline),
        extension_months: dsr.spec.extension.as_ref().map(|e| e.months),
        subject_informed_at: dsr
            .spec
            .extension
            .as_ref()
            .and_then(|e| e.subject_informed_at.clone()),
        answered_at: Time(a.answered_at),
        met_deadline: a.answered_at <= deadline,
        outcome: a.answer.as_str(),
        job: a.job.map(str::to_owned),
        delivered_to: a
            .delivered_to
            .filter(|_| a.answer == Answer::Fulfilled && dsr.spec.right.delivers_data())
            .map(str::to_owned),
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
    let deadline = deadline(dsr);
    let answered = st.receipt.is_some();
    let done = answered
        && st.subject_secret_deleted_at.is_some()
        && (st.receipt_delivered_at.is_some() || blocked.is_some());
    let state = if answered {
        "Answered"
    } else if now > deadline {
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
    let reconciling = (!done && blocked.is_none()).then(|| {
        (
            reason::PROGRESSING,
            "the request is being answered".to_owned(),
        )
    });
    let desired = vec![
        ready,
        crate::conditions::reconciling(reconciling),
        crate::conditions::stalled(blocked),
    ];
    st.conditions = merge(&st.conditions, &desired, dsr.metadata.generation, now);
    st.observed_generation = dsr.metadata.generation;
    st.deadline = Some(Time(deadline));
    st.state = Some(state.to_owned());
    st
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

    #[test]
    fn the_deadline_is_one_calendar_month_after_receipt_plus_the_extension() {
        let at = |s: &str| s.parse::<Timestamp>().unwrap();
        assert_eq!(
            deadline(&dsr("2026-03-02T09:30:00Z", None)),
            at("2026-04-02T09:30:00Z")
        );
        assert_eq!(
            deadline(&dsr("2026-03-02T09:30:00Z", Some(2))),
            at("2026-06-02T09:30:00Z")
        );
        // The end of a shorter month, not a day into the next.
        assert_eq!(
            deadline(&dsr("2026-01-31T12:00:00Z", None)),
            at("2026-02-28T12:00:00Z")
        );
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
                delivered_to: Some("https://x.example/up"),
                deletion_receipt: None,
            },
        );
        assert!(r.met_deadline);
        assert_eq!(r.deadline, Time("2026-05-02T09:30:00Z".parse().unwrap()));
        let (body, digest) = seal(&r).unwrap();
        assert_eq!(digest, crate::digest::sha256_hex(body.as_bytes()));
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["outcome"], "Fulfilled");
        assert_eq!(v["right"], "Access");
        assert!(!body.contains("subject\":"), "{body}");
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
}
