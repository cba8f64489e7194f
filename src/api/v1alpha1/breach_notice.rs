//! BreachNotice: a personal data breach the platform became aware of, and its notice to
//! every affected tenant (the controllers) within 48 hours (Art. 33(2) GDPR, C10 of
//! the design), with the information Art. 33(3) asks for as far as it is known.
//! Information may follow in phases: every later change of the spec is sent again to
//! every affected tenant, as a follow-up with its own idempotency key.
//!
//! What the tenants were told stays true: once the first notice went out
//! (`status.firstNoticeAt`), awareAt, nature, affectedTenants and platformDataInvolved
//! cannot change (a CEL rule on the whole object, so no admission policy can be switched
//! off to allow it); what was learnt since goes in a new BreachNotice with
//! `spec.supplementOf: <the first>`, which sends its own notices. Each deadline's
//! outcome is recorded once in `status.deadlinesMet` and never changed, and the proof of
//! each tenant's notice is kept in signed breach receipts that outlive the Tenant.
//!
//! A BreachNotice is evidence (Art. 33(5): every breach is documented, notified or
//! not): the admission policy `herald-breachnotice-protection` refuses its deletion to
//! everyone outside the break-glass group (deploy/admission/).

use std::collections::BTreeMap;

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
           evidence and cannot be deleted. Once the first notice went out \
           (status.firstNoticeAt), awareAt, nature, affectedTenants and platformDataInvolved \
           cannot change: additions go in a new BreachNotice with spec.supplementOf naming \
           this one.",
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
    ),
    // What the tenants were told is evidence: once a notice went out these four cannot
    // change. A rule on the whole object (it needs the status), part of the CRD itself so
    // that no chart value or missing policy admits a rewrite. No fieldPath: the API
    // server refuses one on a root rule that names two places.
    validation = Rule::new("!has(oldSelf.status) || !has(oldSelf.status.firstNoticeAt) || (self.spec.awareAt == oldSelf.spec.awareAt && self.spec.nature == oldSelf.spec.nature && self.spec.affectedTenants == oldSelf.spec.affectedTenants && (has(self.spec.platformDataInvolved) && self.spec.platformDataInvolved) == (has(oldSelf.spec.platformDataInvolved) && oldSelf.spec.platformDataInvolved))")
        .message("spec.awareAt, spec.nature, spec.affectedTenants and spec.platformDataInvolved cannot change once the first notice of this breach went out (status.firstNoticeAt): what the tenants were told is evidence. Put what was learnt since (more tenants, another nature) in a new BreachNotice with spec.supplementOf: <this BreachNotice's name>; the other fields may still be updated and each update reaches the tenants as a follow-up"),
    validation = Rule::new("has(self.spec.supplementOf) == has(oldSelf.spec.supplementOf)")
        .message("spec.supplementOf cannot be added or removed: a supplement is a BreachNotice of its own, created with it"),
    validation = Rule::new("!has(self.spec.supplementOf) || self.spec.supplementOf != self.metadata.name")
        .message("spec.supplementOf names the BreachNotice this one supplements, not itself"),
    // Written only by Herald, and never taken back: the moment the record froze, and each
    // deadline's outcome.
    validation = Rule::new("!has(oldSelf.status) || ((!has(oldSelf.status.firstNoticeAt) || (has(self.status) && has(self.status.firstNoticeAt) && self.status.firstNoticeAt == oldSelf.status.firstNoticeAt)) && (!has(oldSelf.status.deadlinesMet) || (has(self.status) && has(self.status.deadlinesMet) && (!has(oldSelf.status.deadlinesMet.tenants) || (has(self.status.deadlinesMet.tenants) && self.status.deadlinesMet.tenants == oldSelf.status.deadlinesMet.tenants)) && (!has(oldSelf.status.deadlinesMet.authority) || (has(self.status.deadlinesMet.authority) && self.status.deadlinesMet.authority == oldSelf.status.deadlinesMet.authority)))))")
        .message("status.firstNoticeAt and status.deadlinesMet are recorded once and never changed or removed"),
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!has(self.authorityNotifiedAt) || (has(self.platformDataInvolved) && self.platformDataInvolved)")
        .message("authorityNotifiedAt is only for a breach with platformDataInvolved: true (the platform notifies its supervisory authority only about its own data)")
        .field_path(".authorityNotifiedAt"),
    validation = Rule::new("!has(self.authorityNotifiedAt) || self.authorityNotifiedAt >= self.awareAt")
        .message("authorityNotifiedAt cannot be before awareAt: the supervisory authority cannot have been told of a breach before the platform became aware of it")
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
    /// Cannot change once the first notice went out (status.firstNoticeAt): tenants found
    /// affected later are told by a supplement (spec.supplementOf).
    pub affected_tenants: AffectedTenants,

    /// The nature of the breach, in the words the customers are told (what happened, to
    /// which systems, since when). No personal data. Cannot change once the first notice
    /// went out: a changed assessment goes in a supplement (spec.supplementOf).
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
    /// Cannot change once the first notice went out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform_data_involved: Option<bool>,

    /// When the platform notified its supervisory authority (only with
    /// platformDataInvolved): not before awareAt. Until it is set (or while it lies more
    /// than 5 minutes in the future: condition reason AuthorityNotifiedAtInFuture), the
    /// 72-hour deadline is exported and alerted on. Whether that deadline was met is
    /// recorded once in status.deadlinesMet.authority; setting this later does not change it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self < timestamp('2200-01-01T00:00:00Z')")
        .message("authorityNotifiedAt must be before 2200-01-01"))]
    pub authority_notified_at: Option<Time>,

    /// The BreachNotice (its name, in the control namespace) this one supplements: what
    /// was learnt after the first notice of that breach went out (more affected tenants,
    /// a changed nature), told as a breach notice of its own, with its own deadlines and
    /// receipts. Its notices carry `supplementOf`; the first lists it in
    /// status.supplements. Immutable.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = Rule::new("self == oldSelf")
        .message("spec.supplementOf is immutable: a supplement to another breach is another BreachNotice"))]
    pub supplement_of: Option<String>,
}

/// The label prefix a tenant selector may use: labels the platform owns, set on Tenants
/// by the platform team, never by whoever writes a tenant's manifest (a selector on any
/// other label would let a tenant's own manifest opt in or out of a breach notice).
pub const PLATFORM_LABEL_PREFIX: &str = "platform.herald.dev/";

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
    /// empty selector would match every tenant, which allTenants says explicitly). Only
    /// labels under the prefix the platform owns, `platform.herald.dev/` (e.g.
    /// `platform.herald.dev/cluster: eu-1`), may be selected on: other labels are written
    /// by the tenants' own manifests. Otherwise name the tenants.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("(has(self.matchLabels) && size(self.matchLabels) > 0) || (has(self.matchExpressions) && size(self.matchExpressions) > 0)")
        .message("affectedTenants.selector must not be empty: an empty selector matches every tenant; say allTenants: true for that"))]
    pub selector: Option<TenantSelector>,

    /// Every Tenant is affected. Must be `true` when set: "all" is said explicitly.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self")
        .message("affectedTenants.allTenants must be true when set (omit it and use names or selector otherwise)"))]
    pub all_tenants: Option<bool>,
}

/// A label selector on Tenants, limited to the labels the platform owns
/// ([`PLATFORM_LABEL_PREFIX`]) and bounded (CEL cost, and no breach selects by a
/// thousand labels). Serialized like a Kubernetes LabelSelector.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantSelector {
    /// Labels a Tenant must carry with these values; keys under `platform.herald.dev/`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(extend("maxProperties" = 16))]
    #[x_kube(validation = Rule::new("self.all(k, k.startsWith('platform.herald.dev/'))")
        .message("affectedTenants.selector may only select labels under platform.herald.dev/ (labels the platform sets on Tenants; any other label may be written by a tenant's own manifest): name the tenants in affectedTenants.names instead"))]
    pub match_labels: Option<BTreeMap<String, String>>,

    /// Label requirements (key, operator In/NotIn/Exists/DoesNotExist, values); keys
    /// under `platform.herald.dev/`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16))]
    #[x_kube(validation = Rule::new("self.all(e, e.key.startsWith('platform.herald.dev/'))")
        .message("affectedTenants.selector may only select labels under platform.herald.dev/ (labels the platform sets on Tenants; any other label may be written by a tenant's own manifest): name the tenants in affectedTenants.names instead"))]
    pub match_expressions: Option<Vec<TenantSelectorRequirement>>,
}

/// One requirement of a [`TenantSelector`], as in a Kubernetes LabelSelector.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.operator in ['In', 'NotIn', 'Exists', 'DoesNotExist']")
        .message("affectedTenants.selector.matchExpressions[].operator must be In, NotIn, Exists or DoesNotExist"),
    validation = Rule::new("(self.operator in ['In', 'NotIn']) == (has(self.values) && size(self.values) > 0)")
        .message("affectedTenants.selector.matchExpressions[].values is required (not empty) for In and NotIn, and not allowed for Exists and DoesNotExist"),
)]
pub struct TenantSelectorRequirement {
    /// The label key (under `platform.herald.dev/`).
    #[schemars(length(min = 1, max = 317))]
    pub key: String,
    /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
    #[schemars(length(min = 1, max = 16))]
    pub operator: String,
    /// The values, for `In` and `NotIn`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), inner(length(max = 63)))]
    pub values: Option<Vec<String>>,
}

impl TenantSelector {
    /// The same selector as a Kubernetes LabelSelector (to match with kube's selector).
    pub fn to_label_selector(&self) -> LabelSelector {
        LabelSelector {
            match_labels: self.match_labels.clone(),
            match_expressions: self.match_expressions.as_ref().map(|es| {
                es.iter()
                    .map(|e| {
                        k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement {
                            key: e.key.clone(),
                            operator: e.operator.clone(),
                            values: e.values.clone(),
                        }
                    })
                    .collect()
            }),
        }
    }
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

    /// When the first notice of this breach went out (recorded just before it was sent).
    /// From then on awareAt, nature, affectedTenants and platformDataInvolved cannot
    /// change. Never changed or removed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_notice_at: Option<Time>,

    /// Whether each deadline was met, recorded once its outcome is known and never
    /// changed afterwards (not by a later edit of the spec, not by a later reconcile).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deadlines_met: Option<DeadlinesMet>,

    /// The BreachNotices that supplement this one (their spec.supplementOf names it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub supplements: Vec<String>,

    /// The signed breach receipts: proof of which tenant acknowledged a notice of this
    /// breach and when, kept in the control namespace after the Tenant is gone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipts: Option<BreachReceipts>,
}

/// The outcome of each deadline of a breach, each recorded once.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadlinesMet {
    /// The 48-hour deadline to tell every affected tenant: recorded when every affected
    /// tenant acknowledged a notice, or when the deadline passed, whichever came first.
    /// Each tenant's own outcome (its acknowledgement against the deadline) is in the
    /// breach receipts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenants: Option<TenantsDeadlineMet>,
    /// The supervisory authority's 72-hour deadline (platformDataInvolved only): recorded
    /// when authorityNotifiedAt is set (and not in the future) or when the deadline passed
    /// without it, whichever came first. A back-dated authorityNotifiedAt set after that
    /// does not change it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authority: Option<AuthorityDeadlineMet>,
}

/// Whether the affected tenants were told within 48 hours.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantsDeadlineMet {
    /// Every affected tenant acknowledged a notice by the deadline.
    pub met: bool,
    /// When this was recorded.
    pub recorded_at: Time,
    /// Affected tenants that acknowledged a notice by the deadline.
    pub in_time: i64,
    /// Affected tenants (named ones that do not exist included) that had not by then.
    pub late: i64,
    /// The first of them by name (at most 20; `late` counts them all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20), inner(length(max = 253)))]
    pub late_tenants: Vec<String>,
}

/// Whether the supervisory authority was told within 72 hours.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthorityDeadlineMet {
    /// authorityNotifiedAt was set, not after the deadline, before the deadline passed.
    pub met: bool,
    /// When this was recorded.
    pub recorded_at: Time,
    /// authorityNotifiedAt as it was when recorded (absent: not set by the deadline).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notified_at: Option<Time>,
}

/// The signed breach receipts of a breach (ConfigMaps in the control namespace).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BreachReceipts {
    /// Their names (`breach-receipt-<breach>-<uid8>-<digest>`), in the order written.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    /// The tenants they record.
    pub tenants: i64,
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
