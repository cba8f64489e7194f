//! RetentionPolicy: how many days each category of data is kept, within the bounds the
//! platform promises (Conversation24's retention table, MessageBird 7.1 and 7.4).
//!
//! Bounds that come from a promise or a law are CEL rules whose message says which; the
//! generic "at least one day" is the schema's `minimum`. Unset periods take the operator's
//! default, written in each field's doc, so a policy only needs to say what differs.

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// Retention periods for a tenant's data, in days.
// Each printcolumn(...) repeats `type_ = "string"`, which clippy takes for a duplicated
// attribute; they are separate columns.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "herald.dev",
    version = "v1alpha1",
    kind = "RetentionPolicy",
    plural = "retentionpolicies",
    doc = "Retention periods, in days, for each category of a tenant's data, and for the records \
           the platform must keep after erasure (without end-user data). Tenants reference a \
           policy by name; admission enforces the platform's bounds (backups at most 7 days, logs \
           at most 90, erasure within 30 days of termination, billing records at least 7 years).",
    derive = "PartialEq",
    shortname = "rp",
    category = "herald",
    printcolumn(
        name = "Delete Within",
        type_ = "integer",
        json_path = ".spec.deleteWithinDays",
        description = "Days after termination by which a tenant's end-user data is erased."
    ),
    printcolumn(
        name = "Backups",
        type_ = "integer",
        json_path = ".spec.backupsDays",
        priority = 1,
        description = "Days backups are kept."
    ),
    printcolumn(
        name = "Logs",
        type_ = "integer",
        json_path = ".spec.logsDays",
        priority = 1,
        description = "Days system and access logs are kept."
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct RetentionPolicySpec {
    /// Days after contract termination within which all of the tenant's end-user data is
    /// erased and verified gone, 1 to 30 (the DPA promise: within 30 days). Required.
    #[schemars(range(min = 1))]
    #[x_kube(validation = Rule::new("self <= 30")
        .message("deleteWithinDays may be at most 30: end-user data must be erased within 30 days of contract termination"))]
    pub delete_within_days: i32,

    /// Days message content (bodies and attachments exchanged with end users) is kept,
    /// counted from when it was sent. The customer may shorten it. Default: 90.
    #[serde(skip_serializing_if = "Option::is_none")]
    // Bounded so that no date computed from it overflows (the law asks for far less).
    #[schemars(range(min = 1, max = 36500))]
    pub message_content_days: Option<i32>,

    /// Days delivery metadata (timestamps, channel, status, error codes) is kept. Default:
    /// 180.
    #[serde(skip_serializing_if = "Option::is_none")]
    // Bounded so that no date computed from it overflows (the law asks for far less).
    #[schemars(range(min = 1, max = 36500))]
    pub delivery_metadata_days: Option<i32>,

    /// Days SMS and voice traffic data (numbers, routing, call detail records) is kept,
    /// for the integrity of the service and to prevent misuse of telecom services.
    /// Default: 183 (six months, as MessageBird keeps it).
    #[serde(skip_serializing_if = "Option::is_none")]
    // Bounded so that no date computed from it overflows (the law asks for far less).
    #[schemars(range(min = 1, max = 36500))]
    pub sms_voice_traffic_days: Option<i32>,

    /// Days encrypted backups are kept, 1 to 7; older backups are deleted. Default: 7.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    #[x_kube(validation = Rule::new("self <= 7")
        .message("backupsDays may be at most 7: encrypted backups are deleted after 7 days"))]
    pub backups_days: Option<i32>,

    /// Days system and access logs are kept, 1 to 90. Default: 90.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    #[x_kube(validation = Rule::new("self <= 90")
        .message("logsDays may be at most 90: system and access logs are kept up to 90 days"))]
    pub logs_days: Option<i32>,

    /// Days customer account data is kept after the contract ends, 1 to 30; then it is
    /// deleted or anonymised. Default: 30.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    #[x_kube(validation = Rule::new("self <= 30")
        .message("accountDataDaysAfterContractEnd may be at most 30: customer account data is kept for the contract plus 30 days"))]
    pub account_data_days_after_contract_end: Option<i32>,

    /// Records the law makes the platform keep after a tenant is erased. They hold no
    /// end-user data (ids, amounts, times, counts only). When unset, every period takes its
    /// default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub records: Option<RecordRetention>,
}

/// Retention of records kept after erasure, in days.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordRetention {
    /// Days billing and financial records are kept, at least 2555 (7 years, Dutch
    /// accounting law). Default: 2555.
    #[serde(skip_serializing_if = "Option::is_none")]
    // At most 100 years: a receipt states when each record category ends.
    #[schemars(range(min = 1, max = 36500))]
    #[x_kube(validation = Rule::new("self >= 2555")
        .message("records.billingDays must be at least 2555 (7 years): accounting law requires billing records to be kept 7 years"))]
    pub billing_days: Option<i32>,

    /// Days security incident records are kept from the incident, at least 1095 (3 years).
    /// Default: 1095.
    #[serde(skip_serializing_if = "Option::is_none")]
    // At most 100 years: a receipt states when each record category ends.
    #[schemars(range(min = 1, max = 36500))]
    #[x_kube(validation = Rule::new("self >= 1095")
        .message("records.securityIncidentsDays must be at least 1095 (3 years): security incident records are kept at least 3 years"))]
    pub security_incidents_days: Option<i32>,

    /// Days consent records are kept after the consent ends (Art. 7(1): the controller must
    /// be able to prove consent). Default: 1095 (3 years).
    #[serde(skip_serializing_if = "Option::is_none")]
    // At most 100 years: a receipt states when each record category ends.
    #[schemars(range(min = 1, max = 36500))]
    pub consent_days: Option<i32>,

    /// Days deletion receipts (proof that a tenant was erased) are kept after the erasure,
    /// at least 1825 (5 years, as proof of fulfilled requests is kept). Default: 1825.
    #[serde(skip_serializing_if = "Option::is_none")]
    // At most 100 years: a receipt states when each record category ends.
    #[schemars(range(min = 1, max = 36500))]
    #[x_kube(validation = Rule::new("self >= 1825")
        .message("records.deletionReceiptsDays must be at least 1825 (5 years): proof that erasure was done is kept 5 years"))]
    pub deletion_receipts_days: Option<i32>,
}
