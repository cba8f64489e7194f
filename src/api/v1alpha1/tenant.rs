//! Tenant: one customer (the data controller), its contract, and where and how its
//! messaging stack may run.

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{
    DNS_LABEL, Dpa, HTTPS_URL_RULE, IMAGE_RULE, NAME_IS_SUBDOMAIN_MESSAGE, NAME_IS_SUBDOMAIN_RULE,
    ObjectRef, PRINTABLE_MESSAGE, PRINTABLE_RULE, SecretKeyRef,
};

/// One customer of the platform and the messaging stack Herald runs for it.
// The name rule sits on the root because only there can CEL see `metadata.name`: the
// operator creates the namespace `tenant-<name>`, a DNS label of at most 63 characters,
// so the name must be a DNS label of at most 63 - len("tenant-") = 56 characters.
// Each printcolumn(...) repeats `type_ = "string"`, which clippy takes for a duplicated
// attribute; they are separate columns.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "herald.dev",
    version = "v1alpha1",
    kind = "Tenant",
    doc = "A customer of the platform (the data controller): its contract and DPA, where its \
           data may be processed, its senders, its retention policy, where it is notified, and \
           the sub-processors it objected to. Herald runs the tenant's messaging stack in the \
           namespace tenant-<name> and erases it within the retention policy's deleteWithinDays \
           after the contract is terminated.",
    status = "TenantStatus",
    derive = "PartialEq",
    shortname = "tn",
    category = "herald",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase",
        description = "Where the tenant is in its life: Pending, Active, Suspended, Terminating, Erased."),
    printcolumn(name = "Ready", type_ = "string", json_path = r#".status.conditions[?(@.type=="Ready")].status"#,
        description = "The Ready condition."),
    printcolumn(name = "Reason", type_ = "string", json_path = r#".status.conditions[?(@.type=="Ready")].reason"#,
        priority = 1, description = "Why Ready is what it is (docs/conditions.md)."),
    printcolumn(name = "Regions", type_ = "string", json_path = ".status.regions",
        description = "Regions the senders may run in now."),
    printcolumn(name = "Senders", type_ = "string", json_path = ".status.sendersReady",
        description = "Ready sender pods / desired."),
    printcolumn(name = "Deletion Deadline", type_ = "string", json_path = ".status.deletionDeadline",
        description = "After termination: when erasure must be complete."),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    // No fieldPath: the API server refuses one that points into metadata, so the message
    // names the field itself.
    validation = Rule::new(
        "self.metadata.name.size() <= 56 && self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')"
    ).message(
        "metadata.name of a Tenant must be a DNS label of at most 56 characters (lowercase letters, digits \
         and '-', starting and ending with a letter or digit): Herald creates the namespace tenant-<name>"
    ),
)]
#[serde(rename_all = "camelCase")]
pub struct TenantSpec {
    /// The customer's name as people know it, e.g. `Acme Retail B.V.`. Used in notices and
    /// deletion receipts. Printable: no control characters, line separators or
    /// bidirectional overrides.
    #[schemars(length(min = 1, max = 256))]
    #[x_kube(validation = Rule::new(PRINTABLE_RULE).message(format!("displayName {PRINTABLE_MESSAGE}").as_str()))]
    pub display_name: String,

    /// The contract with the customer: its state, the signed DPA, and what happens to the
    /// customer's data when the contract ends.
    pub contract: Contract,

    /// Where this tenant's data may be processed and stored: the regions its senders may
    /// run in. Herald schedules the senders only onto nodes of these regions, keeps
    /// checking where they actually run, and evicts any pod found elsewhere.
    pub residency: Residency,

    /// The sender Deployment that delivers the tenant's messages. When unset, the
    /// operator's defaults apply to every field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub senders: Option<Senders>,

    /// The RetentionPolicy (cluster-scoped) whose periods apply to this tenant's data,
    /// including how many days after termination its data is erased.
    pub retention_policy_ref: ObjectRef,

    /// Where Herald sends the customer signed notices: sub-processor changes and deletion
    /// receipts. When unset, the customer cannot be notified, so no new or changed
    /// Subprocessor ever becomes effective for this tenant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notifications: Option<Notifications>,

    /// Sub-processors the customer objected to (their right under the DPA). An objected
    /// Subprocessor never becomes effective for this tenant, and a channel carried by it
    /// stops.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub subprocessor_objections: Vec<SubprocessorObjection>,

    /// Guards against erasing a customer by accident: unless this is false, deleting a
    /// Tenant whose contract is not Terminated is refused at admission (the
    /// ValidatingAdmissionPolicy herald-tenant-deletion-protection), because deleting it
    /// deletes its stack and data without a deletion receipt. Terminate the contract
    /// instead. Default: true.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deletion_protection: Option<bool>,
}

/// The state of the contract, the DPA and the termination choice.
// Checked here rather than on the spec so the messages can name `contract.…` fields
// and the transition rules compare only this object.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.state != 'Terminated' || has(self.terminatedAt)")
        .message("contract.terminatedAt is required when contract.state is Terminated: the erasure deadline is counted from it"),
    validation = Rule::new("self.state == 'Terminated' || !has(self.terminatedAt)")
        .message("contract.terminatedAt may only be set when contract.state is Terminated"),
    validation = Rule::new("oldSelf.state != 'Terminated' || self.state == 'Terminated'")
        .message("a Terminated contract is final: contract.state cannot go back to Active or Suspended (a new contract needs a new Tenant)"),
    validation = Rule::new("oldSelf.state != 'Terminated' || !has(oldSelf.terminatedAt) || (has(self.terminatedAt) && self.terminatedAt == oldSelf.terminatedAt)")
        .message("contract.terminatedAt cannot change once the contract is Terminated: the erasure deadline is counted from it"),
)]
pub struct Contract {
    /// `Active`: the stack runs and sends. `Suspended`: the stack and data are kept but no
    /// sender runs. `Terminated`: senders stop at once, credentials are revoked, the data
    /// is returned if asked and then erased. Terminated is final.
    pub state: ContractState,

    /// When the contract ended (RFC 3339). Required when, and only when, the state is
    /// Terminated; erasure must be complete by terminatedAt + the retention policy's
    /// deleteWithinDays. Cannot change afterwards.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= timestamp('2000-01-01T00:00:00Z') && self < timestamp('2200-01-01T00:00:00Z')")
        .message("contract.terminatedAt must be between 2000-01-01 and 2200-01-01"))]
    pub terminated_at: Option<Time>,

    /// The signed data processing agreement (Art. 28 GDPR). Without it the stack may exist
    /// but no sender runs (condition DPASigned=False): no DPA, no processing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dpa: Option<Dpa>,

    /// What happens to the customer's data at termination: delete it, or return it first.
    /// When unset: Delete.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_termination: Option<OnTermination>,
}

/// The state of a contract.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ContractState {
    /// The stack runs and sends.
    Active,
    /// The stack and data are kept, no sender runs.
    Suspended,
    /// The contract ended: stop, revoke, return if asked, erase. Final.
    Terminated,
}

/// The customer's choice for its data at termination ("delete or return", Art. 28(3)(g)).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.action != 'ReturnThenDelete' || has(self.export)")
        .message("onTermination.export is required when onTermination.action is ReturnThenDelete: it says where the data is returned"),
    validation = Rule::new("self.action == 'ReturnThenDelete' || !has(self.export)")
        .message("onTermination.export is only used when onTermination.action is ReturnThenDelete"),
)]
pub struct OnTermination {
    /// `Delete`: erase everything. `ReturnThenDelete`: export the customer's data to
    /// `export` first, then erase everything.
    pub action: TerminationAction,

    /// Where the export is delivered. Required when, and only when, the action is
    /// ReturnThenDelete.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub export: Option<ExportDestination>,
}

/// What happens to a terminated tenant's data.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum TerminationAction {
    /// Erase everything.
    Delete,
    /// Export the data to the customer, then erase everything.
    ReturnThenDelete,
}

/// Where a terminated tenant's data export is delivered.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExportDestination {
    /// The URL the export archive is uploaded to with HTTP PUT, e.g. a pre-signed object
    /// storage URL of the customer. Must be https (plain http only for 127.0.0.1 or
    /// localhost, for tests).
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(validation = Rule::new(HTTPS_URL_RULE)
        .message(concat!("onTermination.export.url ", "must be an https:// URL (plain http only for 127.0.0.1, ::1 or localhost) with no userinfo, no IP address but loopback (a name, never 10.x or 169.254.169.254) and a port in 1-65535 if any")))]
    pub url: String,

    /// A key of a Secret in the operator's namespace holding the bearer token for the
    /// upload. When unset, the upload carries no credentials (the URL is pre-signed). The
    /// Secret must carry the label `herald.dev/tenant=<this tenant>` (else SecretsOwned is
    /// False, reason SourceNotOwnedByTenant).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_secret_ref: Option<SecretKeyRef>,
}

/// Where the tenant may run.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Residency {
    /// Regions where the tenant's senders may run and its data may be stored: values of
    /// the node label topology.kubernetes.io/region, e.g. `eu-central-1`. At least one. Each
    /// must be in the operator's region catalog and in the EEA, or in a country with an EU
    /// adequacy decision when allowAdequacy is true; otherwise the tenant reports
    /// ResidencyCompliant=False and no sender runs there.
    #[schemars(length(max = 16), inner(length(min = 1, max = 63), regex(pattern = DNS_LABEL)))]
    #[x_kube(
        merge_strategy = ListMerge::Set,
        validation = Rule::new("size(self) > 0")
            .message("residency.regions must name at least one region: a tenant with no allowed region can run nowhere"),
    )]
    pub regions: Vec<String>,

    /// Also allow regions in countries outside the EEA that have an EU adequacy decision
    /// (e.g. Switzerland, the United Kingdom). The customer must opt in to this. Default:
    /// false (EEA regions only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_adequacy: Option<bool>,
}

/// The sender Deployment.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Senders {
    /// Container image of the sender, a reference as container runtimes parse it
    /// (`[registry[:port]/]path[:tag][@sha256:digest]`, lowercase path), e.g.
    /// `ghcr.io/herald-dev/sender:0.1.0`. Default: the operator's configured sender image.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    #[x_kube(validation = Rule::new(IMAGE_RULE)
        .message("senders.image must be a container image reference: [registry[:port]/]path[:tag][@sha256:digest], the path in lowercase letters, digits and separators (. _ __ -), a tag of at most 128 characters"))]
    pub image: Option<String>,

    /// Number of sender pods while the contract is Active, 0 to 50 (0 parks the tenant
    /// without suspending the contract). Default: 2, spread over zones.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 50))]
    pub replicas: Option<i32>,

    /// CPU and memory requests and limits of each sender container: Kubernetes
    /// quantities (e.g. `100m`, `256Mi`), at most 8 of each, no request above its limit;
    /// only `cpu`, `memory` and `ephemeral-storage` (the tenant namespace's quota caps
    /// cpu and memory, its LimitRange each container; a GPU, hugepages or another
    /// extended resource is refused).
    /// Default: the operator's defaults.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(transform = bounded_resources)]
    #[x_kube(
        validation = Rule::new(
            "(!has(self.requests) || self.requests.all(k, k in ['cpu', 'memory', 'ephemeral-storage'])) && \
             (!has(self.limits) || self.limits.all(k, k in ['cpu', 'memory', 'ephemeral-storage']))"
        ).message("senders.resources: only cpu, memory and ephemeral-storage may be requested or limited (no GPUs, hugepages or other extended resources)"),
        validation = Rule::new(
            "!has(self.claims)"
        ).message("senders.resources.claims: dynamic resource claims are not allowed for senders"),
        validation = Rule::new(
            "(!has(self.requests) || self.requests.all(k, isQuantity(string(self.requests[k])))) && \
             (!has(self.limits) || self.limits.all(k, isQuantity(string(self.limits[k]))))"
        ).message("senders.resources: every request and limit must be a Kubernetes quantity, e.g. 100m, 1.5 or 256Mi"),
        validation = Rule::new(
            "!has(self.requests) || !has(self.limits) || self.requests.all(k, !(k in self.limits) || \
             !isQuantity(string(self.requests[k])) || !isQuantity(string(self.limits[k])) || \
             quantity(string(self.requests[k])).compareTo(quantity(string(self.limits[k]))) <= 0)"
        ).message("senders.resources: a request may not exceed its limit (e.g. requests.memory 512Mi with limits.memory 256Mi): the API server would refuse the sender pods"),
    )]
    pub resources: Option<ResourceRequirements>,
}

/// Bounds the requests and limits of a `ResourceRequirements` schema (k8s-openapi's has
/// none): at most 8 entries, each at most 64 characters. The API server estimates a CEL
/// rule's cost from such bounds, and refuses the CRD when unbounded maps make the
/// quantity rules too costly.
fn bounded_resources(schema: &mut schemars::Schema) {
    for key in ["limits", "requests"] {
        let Some(map) = schema
            .get_mut("properties")
            .and_then(|p| p.get_mut(key))
            .and_then(|m| m.as_object_mut())
        else {
            continue;
        };
        map.insert("maxProperties".into(), 8.into());
        if let Some(values) = map
            .get_mut("additionalProperties")
            .and_then(|v| v.as_object_mut())
        {
            values.insert("maxLength".into(), 64.into());
        }
    }
}

/// Where and how the customer is notified.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Notifications {
    /// The customer's endpoint for notices (HTTP POST, JSON). Must be https (plain http only
    /// for 127.0.0.1 or localhost, for tests).
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(validation = Rule::new(HTTPS_URL_RULE)
        .message(concat!("notifications.webhookUrl ", "must be an https:// URL (plain http only for 127.0.0.1, ::1 or localhost) with no userinfo, no IP address but loopback (a name, never 10.x or 169.254.169.254) and a port in 1-65535 if any")))]
    pub webhook_url: String,

    /// A key of a Secret in the operator's namespace holding the Standard Webhooks secret
    /// (`whsec_<base64>`) that signs every notice and receipt (webhook-signature: HMAC-SHA256
    /// over id, timestamp and body), so the customer can verify the sender. The
    /// Secret must carry the label `herald.dev/tenant=<this tenant>`: Herald signs nothing
    /// with one that does not (SecretsOwned=False, reason SourceNotOwnedByTenant).
    pub signing_secret_ref: SecretKeyRef,
}

/// An objection of the customer to one Subprocessor.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(NAME_IS_SUBDOMAIN_RULE).message(NAME_IS_SUBDOMAIN_MESSAGE))]
pub struct SubprocessorObjection {
    /// Name of the Subprocessor objected to.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,

    /// The customer's reason, for the record.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub reason: Option<String>,

    /// When the customer objected (RFC 3339), for the record.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raised_at: Option<Time>,
}

/// What Herald observed and did for the tenant. Written only by the operator.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantStatus {
    /// The metadata.generation of the spec this status describes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// The latest observations, one per type: Ready (the summary), DPASigned,
    /// ResidencyCompliant, RetentionApplied, SendersAvailable, PurgesCurrent, and after
    /// termination Erased, DeletionOverdue, ReceiptDelivered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// Where the tenant is in its life: Pending, Active, Suspended, Terminating, Erased.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<TenantPhase>,

    /// The tenant's namespace, `tenant-<name>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,

    /// The regions the senders may run in now (the spec's regions that the region catalog
    /// allows for this tenant), comma-separated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regions: Option<String>,

    /// Ready sender pods over desired sender pods, e.g. `2/2`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub senders_ready: Option<String>,

    /// After termination: terminatedAt + deleteWithinDays, the time by which erasure must be
    /// complete. Persisted so that a restarted operator resumes against the same deadline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deletion_deadline: Option<Time>,

    /// While the contract is active or suspended: per data category that the stack purges
    /// by age, its retention period and when its purge CronJob (herald-purge-<category>
    /// in the tenant namespace) last succeeded. A purge that has not succeeded within its
    /// period sets PurgesCurrent=False (reason PurgeOverdue).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["category".into()]))]
    pub purges: Vec<CategoryPurge>,

    /// The value of the annotation herald.dev/reconcile-requested-at that the last
    /// reconcile saw: when it equals the annotation, the requested reconcile has run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,

    /// The notices of sub-processor changes sent to this tenant, one per Subprocessor:
    /// what was announced, when, and until when the tenant may object. Written by the
    /// Subprocessor controller (never by the Tenant controller), each record as the
    /// delivery happens; kept here so that no Subprocessor grows with the fleet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["subprocessor".into()]))]
    pub subprocessor_notices: Vec<super::SubprocessorNotice>,

    /// Progress of the termination pipeline (stop, revoke, export, erase, verify, receipt),
    /// persisted step by step so that a restarted operator resumes where it stopped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub erasure: Option<ErasureStatus>,

    /// The notices of personal data breaches sent to this tenant, one per BreachNotice:
    /// when first sent and acknowledged, the latest notice (a follow-up after a spec
    /// change) and its outcome. Written by the BreachNotice controller, each record as
    /// the delivery happens, under a field manager of that breach's own; kept here so
    /// that no BreachNotice grows with the fleet (etcd's object limit at 10,000 tenants).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["breach".into()]))]
    pub breach_notices: Vec<super::BreachTenantNotice>,
}

/// Where a terminated (or deleted) tenant's erasure stands. Every time here was recorded
/// when the step completed; nothing here is personal data.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErasureStatus {
    /// When Herald began handling the termination (senders stopped, credentials revoked).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// The latest time erasure starts: the deadline minus the operator's safety margin.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub erase_from: Option<Time>,
    /// The export to the customer (onTermination ReturnThenDelete only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub export: Option<ExportStatus>,
    /// When erasure itself began.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub erasing_since: Option<Time>,
    /// External purges (per channel, and the platform's stores): the targets, chosen once
    /// from the live bindings and recorded before the purge Job is created (its arguments
    /// come from here), each confirmed only by a Job Herald verified.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["target".into()]))]
    pub external_purges: Vec<PurgeRecord>,
    /// Everything labelled for the tenant (and everything in its namespace) when erasure
    /// began: what was deleted, by kind.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inventory: Vec<DeletedKind>,
    /// Objects labelled for the tenant (or named as its namespace) that erasure found
    /// but must not delete, because Herald did not create them or they lie outside the
    /// erasure scope: listed so that a person decides.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_erased: Vec<NotErasedObject>,
    /// Erasure steps that keep failing and are retried: the purge Job (which holds the
    /// receipt: the data may still exist), the revocation of a channel's credentials and
    /// the receipt's delivery (which do not: no end-user data is at stake). Each entry
    /// goes once its step succeeds; the receipt lists those failing when it was written.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failing_steps: Vec<StepFailure>,
    /// When Herald verified that nothing labelled for the tenant remained.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified_at: Option<Time>,
    /// The deletion receipt: an immutable ConfigMap in the operator's namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipt: Option<String>,
    /// SHA-256 of the receipt's record (hex).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipt_digest: Option<String>,
    /// When the customer's webhook acknowledged the signed receipt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipt_delivered_at: Option<Time>,
    /// Kinds of the erasure scope the operator could not list at its last sweep (RBAC),
    /// so could not verify: the receipt lists them (`unverifiedKinds`), and the Erased
    /// condition says so. Empty when erasure checked everything its scope names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unverified_kinds: Vec<String>,
    /// Objects labelled for the tenant that appeared after the receipt and were deleted
    /// again (erased stays erased), newest last, at most the last 20.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub erased_again: Vec<ErasedAgainObject>,
    /// How many objects were deleted again after the receipt, in all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub erased_again_count: Option<i64>,
    /// The erasure step the tenant is in (`export`, `awaitErasure`, `startErasure`,
    /// `selectTargets`, `purge`, `inventory`, `deleteAndVerify`, `writeReceipt`,
    /// `deliverReceipt`, `done`; see docs/erasure.md): derived from the fields above and
    /// written with them, so that people and tests see where erasure stands.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
}

/// The export Job's outcome.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExportStatus {
    /// The export Job in the tenant namespace.
    pub job: String,
    /// `Succeeded`, `Failed`, `WindowEnded` (erasure could wait no longer), or
    /// `NamespaceNotOwned` (no Job runs in a namespace Herald did not create); unset while
    /// it runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// When the outcome was recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
}

/// One external purge.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PurgeRecord {
    /// What is purged: a channel (`whatsapp`, …) or `platform` (the platform's stores).
    pub target: String,
    /// The purge Job.
    pub job: String,
    /// When the Job succeeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirmed_at: Option<Time>,
}

/// An erasure step that failed and is being retried.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepFailure {
    /// `purge`, `revocation` or `receiptDelivery`.
    pub step: String,
    /// What it acts on: the purge Job, a channel (`sms`, …), or `customer` (the
    /// customer's notification endpoint).
    pub target: String,
    /// The class of the last error (e.g. `server_error`, `timeout`, `JobFailed`): never
    /// its text, which may name a URL.
    pub error: String,
    /// How many attempts failed so far.
    pub attempts: i64,
    /// When the last attempt failed.
    pub last_try: Time,
}

/// The objects of one kind that erasure deleted.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeletedKind {
    /// `group/version` (or `v1`).
    pub api_version: String,
    /// The kind.
    pub kind: String,
    /// How many.
    pub count: i64,
    /// Their UIDs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uids: Vec<String>,
}

/// An object erasure found and left in place (see `ErasureStatus.notErased`).
#[derive(
    Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct NotErasedObject {
    /// `group/version` (or `v1`).
    pub api_version: String,
    /// The kind.
    pub kind: String,
    /// Its namespace (none for a cluster-scoped object).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Its name.
    pub name: String,
    /// Its UID.
    pub uid: String,
    /// Why it was not erased: `NamespaceNotOwned` or `OutsideErasureScope` (left by
    /// design, a person decides), or `DeletionRefused` / `DeletionStuck` (in the scope,
    /// but the API refused its deletion or a finalizer held it: a person must delete it).
    pub reason: String,
    /// What the API said (the refusal, the finalizers that hold it), when erasure tried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When Herald saw a held object (`DeletionRefused`, `DeletionStuck`) gone after the
    /// receipt (a person deleted it); unset while it remains.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<Time>,
}

/// An object labelled for the tenant that appeared after its erasure (e.g. a GitOps tool
/// re-applying the tenant's Secrets) and that Herald deleted again.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErasedAgainObject {
    /// `group/version` (or `v1`).
    pub api_version: String,
    /// The kind.
    pub kind: String,
    /// Its namespace (none for a cluster-scoped object).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Its name.
    pub name: String,
    /// Its UID.
    pub uid: String,
    /// When Herald deleted it.
    pub deleted_at: Time,
}

/// The retention purge of one data category.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CategoryPurge {
    /// The data category: messageContent, deliveryMetadata, smsVoiceTraffic, backups or
    /// logs (the RetentionPolicy field without `Days`).
    pub category: String,

    /// The retention period in force for the category, in days: data older than this is
    /// purged daily.
    pub period_days: i32,

    /// When the category's purge last succeeded (the CronJob's lastSuccessfulTime); unset
    /// until it first has.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_success: Option<Time>,
}

/// Where a tenant is in its life.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum TenantPhase {
    /// Not reconciled yet, or waiting for what it needs (DPA, retention policy, regions).
    Pending,
    /// The stack runs.
    Active,
    /// The contract is suspended: the stack is kept, no sender runs.
    Suspended,
    /// The contract is terminated: senders stopped, credentials revoked; erasure is
    /// scheduled before the deadline.
    Terminating,
    /// The customer's data is being exported (onTermination ReturnThenDelete).
    Exporting,
    /// Erasure is running: purges, deletion, verification, receipt.
    Erasing,
    /// Everything of the tenant is erased and verified gone; the deletion receipt is sent.
    Erased,
}
