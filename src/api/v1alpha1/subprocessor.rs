//! Subprocessor: an approved third party that processes tenants' personal data, where it
//! does so, and under which transfer safeguard (Chapter V GDPR).
//!
//! Admission judges what the object alone shows: a location outside the EEA cannot claim
//! the EEA safeguard, and SCCs or BCRs need a transfer impact assessment. Whether a
//! country has an adequacy decision is the region catalog's business (operator
//! configuration), so an `Adequacy` claim is checked by the reconciler, not here.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::channel_binding::Channel;
use super::common::{Dpa, PRINTABLE_MESSAGE, PRINTABLE_RULE, eea_cel_list, iso_country_rule};

/// An approved sub-processor.
// Each printcolumn(...) repeats `type_ = "string"`, which clippy takes for a duplicated
// attribute; they are separate columns.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "herald.dev",
    version = "v1alpha1",
    kind = "Subprocessor",
    doc = "An approved third party that processes tenants' personal data (Art. 28(2) and (4) \
           GDPR): what it does, where, and under which transfer safeguard. A new or materially \
           changed Subprocessor is announced to every affected tenant and becomes effective for a \
           tenant only after noticePeriodDays, unless the tenant objects.",
    status = "SubprocessorStatus",
    derive = "PartialEq",
    shortname = "sp",
    category = "herald",
    printcolumn(
        name = "Category",
        type_ = "string",
        json_path = ".spec.category",
        description = "What kind of service it provides."
    ),
    printcolumn(
        name = "Locations",
        type_ = "string",
        json_path = ".spec.locations",
        description = "Countries where it processes personal data."
    ),
    printcolumn(
        name = "Safeguard",
        type_ = "string",
        json_path = ".spec.safeguard",
        description = "The transfer safeguard."
    ),
    printcolumn(
        name = "Effective",
        type_ = "string",
        json_path = ".status.effective",
        description = "Affected tenants it is effective for / all affected tenants."
    ),
    printcolumn(
        name = "Notified",
        type_ = "string",
        json_path = ".status.noticesDelivered",
        description = "Tenants that acknowledged the notice of the current terms / tenants that must be told."
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
    validation = Rule::new(format!("self.safeguard != 'EEA' || self.locations.all(c, c in {})", eea_cel_list()))
        .message("safeguard EEA requires every location to be in the EEA (EU member states, Iceland, Liechtenstein, Norway): a location outside the EEA needs safeguard Adequacy, SCC or BCR")
        .field_path(".locations"),
    validation = Rule::new("!(self.safeguard in ['SCC', 'BCR']) || has(self.transferImpactAssessmentRef)")
        .message("safeguard SCC or BCR requires transferImpactAssessmentRef: a transfer outside the EEA under standard contractual clauses or binding corporate rules needs a transfer impact assessment")
        .field_path(".transferImpactAssessmentRef"),
    validation = Rule::new("!has(self.channels) || size(self.channels) == 0 || self.category in ['CommunicationChannel', 'EmailDelivery']")
        .message("channels may only be listed for a sub-processor of category CommunicationChannel or EmailDelivery")
        .field_path(".channels"),
)]
pub struct SubprocessorSpec {
    /// The third party's registered legal name, as in its DPA, e.g. `Meta Platforms Ireland
    /// Limited`.
    #[schemars(length(min = 1, max = 256))]
    #[x_kube(validation = Rule::new(PRINTABLE_RULE).message(format!("legalName {PRINTABLE_MESSAGE}").as_str()))]
    pub legal_name: String,

    /// What kind of service it provides: CloudInfrastructure, Security, Collaboration,
    /// MonitoringAndLogging, CommunicationChannel, EmailDelivery, Payments or Support.
    pub category: SubprocessorCategory,

    /// What it does with personal data, in the words customers are told.
    #[schemars(length(min = 1, max = 1024))]
    pub purpose: String,

    /// Countries where it processes or can access personal data, including remote access
    /// and support: ISO 3166-1 alpha-2 codes in capitals, e.g. `DE`, `IE`, `US` (the
    /// United Kingdom is `GB`, Greece `GR`). At least one.
    #[schemars(
        length(max = 64),
        inner(length(max = 2), regex(pattern = r"^[A-Z]{2}$"))
    )]
    #[x_kube(
        merge_strategy = ListMerge::Set,
        validation = Rule::new("size(self) > 0")
            .message("locations must list at least one country where the sub-processor processes personal data"),
        validation = Rule::new(iso_country_rule())
            .message("locations must be ISO 3166-1 alpha-2 country codes (e.g. DE, IE, GB for the United Kingdom, GR for Greece): a code that names no country says nothing about where data goes"),
    )]
    pub locations: Vec<String>,

    /// The transfer safeguard (Chapter V GDPR). `EEA`: every location is in the EEA.
    /// `Adequacy`: locations outside the EEA have an EU adequacy decision. `SCC`: standard
    /// contractual clauses. `BCR`: binding corporate rules. SCC and BCR need
    /// transferImpactAssessmentRef.
    pub safeguard: Safeguard,

    /// The transfer impact assessment for this sub-processor (a document id or URL), as
    /// required for transfers under SCC or BCR.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub transfer_impact_assessment_ref: Option<String>,

    /// The DPA between the platform and this sub-processor (Art. 28(4) GDPR): it must bind
    /// the sub-processor to the same obligations the platform has towards its customers.
    pub dpa: Dpa,

    /// The channels it carries, for a CommunicationChannel or EmailDelivery sub-processor
    /// (e.g. whatsapp, messenger, instagram for Meta). A ChannelBinding can only use a
    /// Subprocessor that carries its channel.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub channels: Vec<Channel>,

    /// Days between the notice sent to each affected tenant and the sub-processor becoming
    /// effective for that tenant, during which the tenant may object; 1 to 365. Default: 30.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 365))]
    pub notice_period_days: Option<i32>,
}

/// The kind of service a sub-processor provides (Conversation24's categories, plus the
/// ones Servus and MessageBird name).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum SubprocessorCategory {
    /// Hosting and data storage.
    CloudInfrastructure,
    /// Security scanning and threat detection.
    Security,
    /// Internal collaboration tools.
    Collaboration,
    /// Platform monitoring and logging.
    MonitoringAndLogging,
    /// A messaging channel provider (WhatsApp Business, SMS carriers, …).
    CommunicationChannel,
    /// Email delivery.
    EmailDelivery,
    /// Payment processing.
    Payments,
    /// Customer support tooling.
    Support,
}

/// A transfer safeguard.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Safeguard {
    /// Every location is in the EEA: no transfer.
    #[serde(rename = "EEA")]
    Eea,
    /// An EU adequacy decision covers every location outside the EEA (Art. 45).
    Adequacy,
    /// Standard contractual clauses (Art. 46(2)(c)).
    #[serde(rename = "SCC")]
    Scc,
    /// Binding corporate rules (Art. 47).
    #[serde(rename = "BCR")]
    Bcr,
}

/// What Herald observed and did for the sub-processor. Written only by the operator.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubprocessorStatus {
    /// The metadata.generation of the spec this status describes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// The latest observations, one per type: Ready (the summary), NoticesDelivered,
    /// SubprocessorEffective.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// For how many of the tenants it affects it is effective, e.g. `3/4` (one tenant
    /// still in its notice period or objecting).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effective: Option<String>,

    /// SHA-256 (hex) over the material terms customers are told about: locations,
    /// safeguard, purpose and channels. A change is announced to every affected tenant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub material_hash: Option<String>,

    /// When the material terms took their current form: the creation time for a new
    /// Subprocessor, else when Herald first saw the change. Tenants that started using the
    /// platform before this must be notified and wait noticePeriodDays.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub material_changed_at: Option<Time>,

    /// How many of the affected tenants that must be told have acknowledged the notice
    /// of the current terms, e.g. `3/4`. The records themselves are kept per tenant, in
    /// the Tenant's `status.subprocessorNotices`, so that no object grows with the fleet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notices_delivered: Option<String>,
}

/// The notice of a Subprocessor's current terms to one tenant, kept in that Tenant's
/// status (`status.subprocessorNotices`, one entry per Subprocessor, each written by the
/// Subprocessor controller under a field manager of its own).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubprocessorNotice {
    /// The Subprocessor announced.
    pub subprocessor: String,

    /// The materialHash the notice announced. A notice of an older hash does not count
    /// for the current terms.
    pub material_hash: String,

    /// The notice's `webhook-id` (Standard Webhooks): the same for every retry of it,
    /// so the customer can drop duplicates.
    pub idempotency_key: String,

    /// The sentAt of the notice last sent. Recorded before it is sent: a notice whose
    /// outcome was never recorded (the operator stopped mid-delivery) is sent again
    /// unchanged — same sentAt, same objection window — never with a new window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<Time>,

    /// The end of the objection window the notice states (sentAt + noticePeriodDays).
    /// Until then the tenant may object and the Subprocessor is not effective for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub objection_window_ends: Option<Time>,

    /// True from just before a delivery attempt until its outcome is recorded.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub awaiting_outcome: bool,

    /// When the customer's endpoint acknowledged the notice (2xx). Unset while it has not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<Time>,

    /// Delivery attempts of this notice so far.
    // int32 in the schema: the API server knows no `uint32` format and warns on every
    // apply of the CRD (the value never comes near 2^31).
    #[serde(default, skip_serializing_if = "is_zero")]
    #[schemars(extend("format" = "int32"))]
    pub attempts: u32,

    /// When the last attempt was made: a failed notice is retried on its own backoff
    /// from here (5 s doubling to 5 min), however often the Subprocessor is reconciled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_attempt_at: Option<Time>,

    /// Why the last delivery attempt failed (an HTTP status or a transport error class),
    /// while the notice is undelivered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}
