//! BreachNotice: a personal data breach the platform became aware of, and its notice to
//! every affected tenant (the controllers) within 48 hours (Art. 33(2) GDPR, C10 of
//! the design), with the information Art. 33(3) asks for as far as it is known.
//! Information may follow in phases: every later change of the spec is sent again to
//! every affected tenant, as a follow-up with its own idempotency key.
//!
//! A BreachNotice is evidence (Art. 33(5): every breach is documented, notified or
//! not): the admission policy `herald-breachnotice-protection` refuses its deletion to
//! everyone outside the break-glass group (deploy/admission/).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A personal data breach and its notices.
// Each printcolumn(...) repeats `type_ = "string"`, which clippy takes for a duplicated
// attribute; they are separate columns.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "herald.dev",
    version = "v1alpha1",
    kind = "BreachNotice",
    namespaced,
    doc = "A personal data breach the platform became aware of (Art. 33 GDPR). Herald sends a \
           signed notice with what is known to every affected Tenant's notification endpoint, \
           retries until each acknowledges it, and sends every later change of the spec as a \
           follow-up (information in phases). The deadline is awareAt + 48 hours (and, where \
           the platform's own data is involved, the supervisory authority's awareAt + 72 \
           hours). Lives in the operator's control namespace (e.g. herald-system); it is \
           evidence and cannot be deleted.",
    status = "BreachNoticeStatus",
    derive = "PartialEq",
    shortname = "breach",
    category = "herald",
    printcolumn(
        name = "Deadline",
        type_ = "string",
        json_path = ".status.deadline",
        description = "awareAt + 48 hours: every affected tenant must have been told by then."
    ),
    printcolumn(
        name = "State",
        type_ = "string",
        json_path = ".status.state",
        description = "Notifying, Notified (every affected tenant acknowledged the latest notice) or Overdue."
    ),
    printcolumn(
        name = "Acknowledged",
        type_ = "string",
        json_path = ".status.acknowledged",
        description = "Affected tenants that acknowledged the latest notice / affected tenants."
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
    validation = Rule::new("!has(self.authorityNotifiedAt) || (has(self.platformDataInvolved) && self.platformDataInvolved)")
        .message("authorityNotifiedAt is only for a breach with platformDataInvolved: true (the platform notifies its supervisory authority only about its own data)")
        .field_path(".authorityNotifiedAt"),
)]
pub struct BreachNoticeSpec {
    /// When the platform became aware of the breach (RFC 3339, e.g.
    /// `2026-03-02T08:15:00Z`). The deadline is this + 48 hours. Immutable: it is
    /// evidence, and moving it would move the deadline.
    #[x_kube(
        validation = Rule::new("self >= timestamp('2000-01-01T00:00:00Z') && self < timestamp('2200-01-01T00:00:00Z')")
            .message("awareAt must be between 2000-01-01 and 2200-01-01"),
        validation = Rule::new("self == oldSelf")
            .message("awareAt is immutable: when the platform became aware of the breach is evidence and sets the 48-hour deadline"),
    )]
    pub aware_at: Time,

    /// Which tenants are affected: exactly one of names, selector or allTenants: true.
    pub affected_tenants: AffectedTenants,

    /// The nature of the breach, in the words the customers are told (what happened, to
    /// which systems, since when). No personal data.
    #[schemars(length(min = 1, max = 4096))]
    pub nature: String,

    /// The categories of personal data concerned, as far as known, e.g. `message
    /// content`, `phone numbers`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(min = 1, max = 128)))]
    pub data_categories: Vec<String>,

    /// The approximate number of personal data records concerned, as far as known.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub approximate_records: Option<i64>,

    /// The approximate number of data subjects concerned, as far as known.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub approximate_data_subjects: Option<i64>,

    /// The likely consequences of the breach, as far as known.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub likely_consequences: Option<String>,

    /// The measures taken or proposed to address the breach and mitigate its effects.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub measures: Option<String>,

    /// The contact point where customers obtain more information (the data protection
    /// officer's office, a role, not a person's private details).
    pub contact: BreachContact,

    /// Whether data the platform controls itself (its own staff or customer-account data)
    /// is involved: then the platform must also notify its supervisory authority within
    /// 72 hours of awareAt (Art. 33(1)), and that deadline is tracked too. Default: false.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform_data_involved: Option<bool>,

    /// When the platform notified its supervisory authority (only with
    /// platformDataInvolved). Until it is set, the 72-hour deadline is exported and
    /// alerted on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authority_notified_at: Option<Time>,
}

/// Which tenants a breach affects: exactly one way of saying it, so that "all" is
/// never what an empty list or a forgotten field means.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("(has(self.names) ? 1 : 0) + (has(self.selector) ? 1 : 0) + (has(self.allTenants) ? 1 : 0) == 1")
        .message("affectedTenants needs exactly one of names, selector or allTenants: true"),
)]
pub struct AffectedTenants {
    /// The affected Tenants by name.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1000), inner(length(min = 1, max = 253)))]
    #[x_kube(
        merge_strategy = ListMerge::Set,
        validation = Rule::new("size(self) > 0")
            .message("affectedTenants.names must name at least one tenant (use allTenants: true for every tenant)"),
    )]
    pub names: Option<Vec<String>>,

    /// The affected Tenants by their labels (a Kubernetes label selector, not empty: an
    /// empty selector would match every tenant, which allTenants says explicitly).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("(has(self.matchLabels) && size(self.matchLabels) > 0) || (has(self.matchExpressions) && size(self.matchExpressions) > 0)")
        .message("affectedTenants.selector must not be empty: an empty selector matches every tenant; say allTenants: true for that"))]
    pub selector: Option<LabelSelector>,

    /// Every Tenant is affected. Must be `true` when set: "all" is said explicitly.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self")
        .message("affectedTenants.allTenants must be true when set (omit it and use names or selector otherwise)"))]
    pub all_tenants: Option<bool>,
}

/// Where customers obtain more information about a breach.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BreachContact {
    /// The contact point's name, e.g. `Data Protection Office`.
    #[schemars(length(min = 1, max = 256))]
    pub name: String,
    /// Its email address, e.g. `dpo@platform.example`.
    #[schemars(length(min = 3, max = 254), regex(pattern = r"^[^@\s]+@[^@\s]+$"))]
    pub email: String,
}

/// What Herald observed and did for the breach. Written only by the operator.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct BreachNoticeStatus {
    /// The metadata.generation of the spec this status describes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// The latest observations, one per type: Ready (the summary), Reconciling,
    /// Stalled, TenantsNotified.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// awareAt + 48 hours: when every affected tenant must have been told.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deadline: Option<Time>,

    /// awareAt + 72 hours, when platformDataInvolved: when the supervisory authority
    /// must have been told.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authority_deadline: Option<Time>,

    /// Until when the BreachNotice is kept as evidence: awareAt plus the platform's
    /// configured retention (`breachNotices.retentionDays`, default 1825 days). Only the
    /// break-glass group may delete it, after this.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retain_until: Option<Time>,

    /// `Notifying`, `Notified` (every affected tenant acknowledged the latest notice) or
    /// `Overdue` (the deadline passed before every affected tenant acknowledged a notice).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,

    /// How many affected tenants acknowledged the latest notice, e.g. `2/3`. Each
    /// tenant's record of the notices is in that Tenant's `status.breachNotices`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acknowledged: Option<String>,
}

/// The notice of a breach to one tenant. Never holds a secret or an endpoint's answer.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BreachTenantNotice {
    /// The BreachNotice (its name in the control namespace) this record is of: the key
    /// of the Tenant's `status.breachNotices`.
    pub breach: String,

    /// The BreachNotice's uid: a breach deleted and created again under the same name
    /// is another breach, owed its own notice.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub breach_uid: String,

    /// The Tenant told.
    pub tenant: String,

    /// The metadata.generation of the spec the latest notice told (a later one is a
    /// follow-up).
    pub generation: i64,

    /// The latest notice's `webhook-id` (Standard Webhooks): the same for every retry of
    /// it, a new one for every follow-up.
    pub idempotency_key: String,

    /// When the first notice of this breach was sent to the tenant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_sent_at: Option<Time>,

    /// When the tenant's endpoint first acknowledged (2xx) a notice of this breach: the
    /// time that counts for the 48-hour deadline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_acknowledged_at: Option<Time>,

    /// The sentAt of the latest notice (recorded before it is sent; a notice whose
    /// outcome was never recorded is sent again unchanged).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<Time>,

    /// When the tenant's endpoint acknowledged (2xx) the latest notice. Unset while it
    /// has not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acknowledged_at: Option<Time>,

    /// True from just before a delivery attempt until its outcome is recorded.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub awaiting_outcome: bool,

    /// Delivery attempts of the latest notice so far.
    // int32 in the schema: the API server knows no `uint32` format (see
    // SubprocessorNotice.attempts).
    #[serde(default, skip_serializing_if = "is_zero")]
    #[schemars(extend("format" = "int32"))]
    pub attempts: u32,

    /// When the last attempt was made: a failed notice is retried on its own backoff
    /// from here (5 s doubling to 5 min).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_attempt_at: Option<Time>,

    /// Why the last attempt failed (an HTTP status, a transport error class, or what is
    /// wrong with the tenant's signing secret, by name), while unacknowledged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}
