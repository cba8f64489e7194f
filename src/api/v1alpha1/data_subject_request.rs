//! DataSubjectRequest: a data subject's request (access, rectification, erasure,
//! restriction, portability, objection) that a tenant (the controller) asks the platform
//! (its processor) to help answer within one month of receipt (Art. 12(3) GDPR, C11 of
//! the design), extendable by two further months when the data subject was told so
//! within the first month.
//!
//! The data subject's identifier is never in the object: `subjectSecretRef` names a
//! Secret in the control namespace, labelled for the tenant, which Herald deletes once
//! the request is answered. The proof that it was answered is a signed fulfilment
//! receipt (ids, right, times, outcome; no personal data), kept like deletion receipts.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ObjectRef;

/// Month index (year × 12 + month) and the offset within the month in seconds of a CEL
/// timestamp, as CEL expressions: "within one month" compares them, since CEL cannot
/// add a calendar month to a timestamp.
macro_rules! within_first_month {
    ($at:literal, $from:literal) => {
        concat!(
            $at,
            " >= ",
            $from,
            " && (",
            "(",
            $at,
            ".getFullYear() * 12 + ",
            $at,
            ".getMonth()) - (",
            $from,
            ".getFullYear() * 12 + ",
            $from,
            ".getMonth()) == 0 || ",
            "((",
            $at,
            ".getFullYear() * 12 + ",
            $at,
            ".getMonth()) - (",
            $from,
            ".getFullYear() * 12 + ",
            $from,
            ".getMonth()) == 1 && ",
            "(",
            $at,
            ".getDate() * 86400 + ",
            $at,
            ".getHours() * 3600 + ",
            $at,
            ".getMinutes() * 60 + ",
            $at,
            ".getSeconds()) <= ",
            "(",
            $from,
            ".getDate() * 86400 + ",
            $from,
            ".getHours() * 3600 + ",
            $from,
            ".getMinutes() * 60 + ",
            $from,
            ".getSeconds())))"
        )
    };
}

/// A data subject's request and its answer.
// Each printcolumn(...) repeats `type_ = "string"`, which clippy takes for a duplicated
// attribute; they are separate columns.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "herald.dev",
    version = "v1alpha1",
    kind = "DataSubjectRequest",
    namespaced,
    doc = "A data subject's request (Art. 15-21 GDPR) a Tenant asks the platform to answer \
           within one month of receipt (Art. 12(3)). Herald runs it as a Job in the tenant's \
           namespace and regions with the platform's image (`dsr --right <r> --subject-file \
           <path>`), has the result of an access or portability request delivered to the \
           tenant's export endpoint, writes a signed fulfilment receipt (no personal data) \
           delivered to the tenant and kept as evidence, and deletes the Secret holding the \
           data subject's identifier. The deadline is receivedAt + 1 month (+ the extension's \
           months). Lives in the operator's control namespace (e.g. herald-system).",
    status = "DataSubjectRequestStatus",
    derive = "PartialEq",
    shortname = "dsr",
    category = "herald",
    printcolumn(
        name = "Tenant",
        type_ = "string",
        json_path = ".spec.tenantRef.name",
        description = "The Tenant (the controller) the request is answered for."
    ),
    printcolumn(
        name = "Right",
        type_ = "string",
        json_path = ".spec.right",
        description = "The right exercised."
    ),
    printcolumn(
        name = "Deadline",
        type_ = "string",
        json_path = ".status.deadline",
        description = "receivedAt + 1 month (+ the extension's months)."
    ),
    printcolumn(
        name = "State",
        type_ = "string",
        json_path = ".status.state",
        description = "Pending, Running, Answered or Overdue."
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#,
        description = "The Ready condition."
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].reason"#,
        priority = 1,
        description = "Why Ready is what it is (docs/conditions.md)."
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new(concat!(
        "!has(self.extension) || !has(self.extension.subjectInformedAt) || (",
        within_first_month!("self.extension.subjectInformedAt", "self.receivedAt"),
        ")"
    ))
    .message("extension.subjectInformedAt must be within the first month after receivedAt (and not before it): the data subject must be told of an extension within one month of receipt (Art. 12(3) GDPR), so a later extension is refused")
    .field_path(".extension.subjectInformedAt"),
    validation = Rule::new("!has(oldSelf.extension) || (has(self.extension) && self.extension == oldSelf.extension)")
        .message("extension cannot be changed or removed once made: it records that the data subject was told")
        .field_path(".extension"),
)]
pub struct DataSubjectRequestSpec {
    /// The Tenant (the controller) whose data subject made the request. Immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("tenantRef is immutable"))]
    pub tenant_ref: ObjectRef,

    /// The right exercised: Access (Art. 15), Rectification (16), Erasure (17),
    /// Restriction (18), Portability (20) or Objection (21). Immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("right is immutable: a request for another right is another request"))]
    pub right: Right,

    /// When the request was received (RFC 3339, e.g. `2026-03-02T08:15:00Z`). The
    /// deadline is this + 1 month. Immutable: moving it would move the deadline.
    #[x_kube(
        validation = Rule::new("self >= timestamp('2000-01-01T00:00:00Z') && self < timestamp('2200-01-01T00:00:00Z')")
            .message("receivedAt must be between 2000-01-01 and 2200-01-01"),
        validation = Rule::new("self == oldSelf")
            .message("receivedAt is immutable: when the request was received sets its one-month deadline"),
    )]
    pub received_at: Time,

    /// A Secret in the control namespace, labelled `herald.dev/tenant=<tenantRef>`,
    /// whose key `subject` holds the data subject's identifier (never put it in this
    /// object). Herald deletes it once the request is answered. Immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("subjectSecretRef is immutable"))]
    pub subject_secret_ref: ObjectRef,

    /// An extension of the deadline by one or two months (Art. 12(3): complex or
    /// numerous requests), with why and when the data subject was told: within the first
    /// month. Cannot be changed or removed once made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extension: Option<Extension>,
}

/// The right a data subject exercises.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Right {
    /// Art. 15: a copy of the personal data, delivered to the tenant's export endpoint.
    Access,
    /// Art. 16: the data corrected.
    Rectification,
    /// Art. 17: the data erased.
    Erasure,
    /// Art. 18: processing restricted.
    Restriction,
    /// Art. 20: the data in a machine-readable format, delivered to the tenant's export
    /// endpoint.
    Portability,
    /// Art. 21: processing stopped.
    Objection,
}

impl Right {
    /// The `--right` argument of the request's Job.
    pub fn arg(self) -> &'static str {
        match self {
            Right::Access => "access",
            Right::Rectification => "rectification",
            Right::Erasure => "erasure",
            Right::Restriction => "restriction",
            Right::Portability => "portability",
            Right::Objection => "objection",
        }
    }

    /// Whether the answer is data delivered to the tenant (access, portability).
    pub fn delivers_data(self) -> bool {
        matches!(self, Right::Access | Right::Portability)
    }
}

/// An extension of the deadline.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("has(self.reason) && has(self.subjectInformedAt)")
        .message("an extension needs a reason and subjectInformedAt (when the data subject was told of it, within the first month)"),
)]
pub struct Extension {
    /// By how many months the deadline is extended: 1 or 2.
    #[schemars(range(min = 1, max = 2))]
    pub months: i32,

    /// Why (the request's complexity or the number of requests), in the words the data
    /// subject was told. No personal data.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub reason: Option<String>,

    /// When the data subject was told of the extension and why: within the first month
    /// after receivedAt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject_informed_at: Option<Time>,
}

/// What Herald observed and did for the request. Written only by the operator; never
/// holds the data subject's identifier.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct DataSubjectRequestStatus {
    /// The metadata.generation of the spec this status describes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// The latest observations, one per type: Ready (the summary), Reconciling, Stalled.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// receivedAt + 1 month (+ the extension's months): when the request must be
    /// answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deadline: Option<Time>,

    /// `Pending` (waiting for what a condition names), `Running` (its Job runs),
    /// `Answered` or `Overdue` (the deadline passed unanswered).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,

    /// The Job in the tenant namespace that runs the request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,

    /// The answer: `Fulfilled` (exit code 0), `NothingHeld` (exit code 3, or the tenant
    /// is erased or gone), `SubjectNotIdentified` (exit code 4).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,

    /// When the answer was established.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answered_at: Option<Time>,

    /// For a tenant already erased: its deletion receipt (a ConfigMap in the control
    /// namespace), the answer's reference.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deletion_receipt: Option<String>,

    /// The fulfilment receipt: a signed, immutable ConfigMap in the control namespace,
    /// kept as evidence (its deletion is refused).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipt: Option<String>,

    /// The fulfilment receipt's sha256 as Herald wrote it: only a stored receipt with
    /// this digest, signed by Herald's key, is ever delivered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipt_digest: Option<String>,

    /// When the tenant's notification endpoint acknowledged the receipt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipt_delivered_at: Option<Time>,

    /// When Herald deleted the Secret holding the data subject's identifier.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject_secret_deleted_at: Option<Time>,
}
