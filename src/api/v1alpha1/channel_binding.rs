//! ChannelBinding: one messaging channel of one tenant, where its credential comes from,
//! how it is rotated, and which Subprocessor carries it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{DNS_LABEL, ObjectRef};

/// One channel of one tenant.
// Each printcolumn(...) repeats `type_ = "string"`, which clippy takes for a duplicated
// attribute; they are separate columns.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "herald.dev",
    version = "v1alpha1",
    kind = "ChannelBinding",
    namespaced,
    doc = "One messaging channel (WhatsApp, SMS, email, …) of one Tenant: which Subprocessor \
           carries it, where its credential comes from and how the credential is rotated. Lives \
           in the operator's control namespace (e.g. herald-system); Herald copies the credential \
           into the tenant's namespace as immutable, versioned Secrets.",
    status = "ChannelBindingStatus",
    derive = "PartialEq",
    shortname = "cb",
    category = "herald",
    printcolumn(
        name = "Tenant",
        type_ = "string",
        json_path = ".spec.tenantRef.name",
        description = "The Tenant this channel belongs to."
    ),
    printcolumn(
        name = "Channel",
        type_ = "string",
        json_path = ".spec.channel",
        description = "The messaging channel."
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
        name = "Credential",
        type_ = "integer",
        json_path = ".status.credentialVersion",
        description = "The credential version the senders use."
    ),
    printcolumn(
        name = "Next Rotation",
        type_ = "string",
        json_path = ".status.nextRotation",
        description = "When the credential is rotated next."
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    // Herald labels the binding's credential Secrets herald.dev/channel-binding=<name>,
    // and a label value is at most 63 characters (a name is a DNS subdomain already).
    validation = Rule::new("self.metadata.name.size() <= 63").message(
        "metadata.name of a ChannelBinding must be at most 63 characters: Herald labels its \
         credential Secrets herald.dev/channel-binding=<name>, and a label value is at most 63"
    ),
)]
#[serde(rename_all = "camelCase")]
pub struct ChannelBindingSpec {
    /// The Tenant this channel belongs to. Immutable: a channel and its credentials cannot
    /// move to another customer; delete the ChannelBinding and create a new one instead.
    #[x_kube(
        validation = Rule::new("self == oldSelf")
            .message("tenantRef is immutable: a channel cannot move to another tenant; delete this ChannelBinding and create a new one"),
        validation = Rule::new("self.name.size() <= 56 && self.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')")
            .message("tenantRef.name must be the name of a Tenant: a DNS label of at most 56 characters (lowercase letters, digits and '-')"),
    )]
    pub tenant_ref: ObjectRef,

    /// The messaging channel: whatsapp, sms, email, push, voice, livechat, messenger,
    /// instagram, viber, line, wechat, telegram, google-business-messages or rcs.
    /// Immutable: another channel needs another credential and another ChannelBinding.
    #[x_kube(validation = Rule::new("self == oldSelf")
        .message("channel is immutable: create a new ChannelBinding for another channel"))]
    pub channel: Channel,

    /// The Subprocessor (cluster-scoped) that carries this channel, e.g. the WhatsApp
    /// Business provider or an SMS carrier. The channel only runs while that Subprocessor
    /// is effective for the tenant (announced, notice period passed, not objected to).
    pub subprocessor_ref: ObjectRef,

    /// Where the channel's credential comes from: exactly one of secretRef or providerApi.
    pub credential: CredentialSource,

    /// When the credential is rotated. When unset, every 90 days with 10 minutes of overlap.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotation: Option<Rotation>,

    /// Stops sending on this channel (the credential is kept, the senders drop the
    /// channel). Default: false.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,
}

/// A messaging channel.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// WhatsApp Business.
    #[serde(rename = "whatsapp")]
    WhatsApp,
    /// SMS.
    Sms,
    /// Email.
    Email,
    /// Mobile push notifications.
    Push,
    /// Voice calls.
    Voice,
    /// The platform's own web live chat.
    #[serde(rename = "livechat")]
    LiveChat,
    /// Facebook Messenger.
    Messenger,
    /// Instagram direct messages.
    Instagram,
    /// Viber.
    Viber,
    /// LINE.
    Line,
    /// WeChat.
    #[serde(rename = "wechat")]
    WeChat,
    /// Telegram.
    Telegram,
    /// Google Business Messages.
    #[serde(rename = "google-business-messages")]
    GoogleBusinessMessages,
    /// RCS business messaging.
    Rcs,
}

/// Where a credential comes from.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.secretRef) != has(self.providerApi)")
    .message("credential needs exactly one source: either secretRef or providerApi"))]
pub struct CredentialSource {
    /// A Secret in the ChannelBinding's namespace holding the credential, with the keys the
    /// channel's sender expects (e.g. `accessToken` for WhatsApp, `apiKey` for email).
    /// Herald copies it into the tenant's namespace as a new immutable version whenever it
    /// changes. Revoking the old credential at the provider is then up to whoever changed
    /// the Secret. The Secret must carry the label `herald.dev/tenant=<tenantRef.name>`:
    /// one without it (or labelled for another tenant) is never copied (reason
    /// SourceNotOwnedByTenant).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<ObjectRef>,

    /// A provider credential API of the platform's, by name: Herald asks it for a new
    /// credential at each rotation and revokes the previous one once the senders run on the
    /// new one. Where that API is and how Herald authenticates to it are the platform's
    /// (the operator configuration's `providers`), never the manifest's: a binding can
    /// choose among the configured providers, not aim a token at a host. A name the
    /// configuration does not have gets nothing sent anywhere (reason
    /// ProviderNotConfigured).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_api: Option<ProviderApi>,
}

/// A provider's credential API, named as the operator configuration names it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.name)")
    .message("credential.providerApi needs the name of a provider of the operator configuration (providers)"))]
pub struct ProviderApi {
    /// The provider's name in the operator configuration (`providers.<name>`; the chart's
    /// `config.providers`): a DNS-1123 label. Required (the rule above); optional in the
    /// type only so that a binding stored before providers were named (with `url`, no
    /// name) still deserializes: it names no provider (ProviderNotConfigured) instead of
    /// breaking the watch.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), regex(pattern = DNS_LABEL))]
    pub name: Option<String>,
}

/// The rotation schedule of a credential.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rotation {
    /// Days between two rotations, 1 to 365. Default: 90.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 365))]
    pub interval_days: Option<i32>,

    /// Minutes the previous credential stays valid after every sender runs on the new one,
    /// before Herald revokes it at the provider, 0 to 1440. Covers messages in flight.
    /// Default: 10.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1440))]
    pub overlap_minutes: Option<i32>,
}

/// What Herald observed and did for the channel. Written only by the operator.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChannelBindingStatus {
    /// The metadata.generation of the spec this status describes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// The latest observations, one per type: Ready (the summary), CredentialCurrent,
    /// SubprocessorEffective.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// The credential version the senders use (1, 2, …); each version is an immutable
    /// Secret in the tenant's namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential_version: Option<i64>,

    /// Name of the Secret in the tenant's namespace that holds the current version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential_secret: Option<String>,

    /// When the current version was put in place.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_rotation: Option<Time>,

    /// When the credential is rotated next (last rotation + intervalDays).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_rotation: Option<Time>,

    /// The provider's id of the current credential (providerApi only), used to revoke it
    /// at the next rotation. An id, never the credential itself.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_credential_id: Option<String>,

    /// `hmac-sha256:<hex>`: HMAC-SHA256, keyed with the operator's own key (Secret
    /// herald-source-hash-key in the control namespace), over the key names and values of
    /// the source Secret that the current version was copied from (secretRef only): a
    /// change of the Secret is a new version. Without the key it reveals nothing of the
    /// values, even a guessable one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_hash: Option<String>,

    /// During a rotation: the version the senders used before, kept valid until every
    /// sender runs on the current one and rotation.overlapMinutes have passed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_credential_version: Option<i64>,

    /// During a rotation: the Secret (in the tenant's namespace) of the previous version,
    /// deleted when the rotation completes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_credential_secret: Option<String>,

    /// During a rotation: the provider's id of the previous credential, revoked when the
    /// rotation completes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_provider_credential_id: Option<String>,

    /// During a rotation: when every sender was first seen running on the current version.
    /// The previous credential is revoked rotation.overlapMinutes after this.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rolled_out_at: Option<Time>,

    /// The value of the annotation herald.dev/rotate-requested-at that the last rotation
    /// handled: when it equals the annotation, the requested rotation has started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_handled_rotate_at: Option<String>,

    /// Set once the binding's Tenant is terminated and every credential Herald issued for
    /// the binding is revoked: the current and the previous provider credential were
    /// revoked at the provider (a 2xx or 404 answer), or there was nothing to revoke there
    /// (a secretRef source: revoking it is up to whoever issued it). From then on the
    /// binding is never rotated again (Ready=False, reason TenantTerminated).
    ///
    /// The termination pipeline reads it: while it is unset the tenant's erasure reports
    /// the revocation as a failing step (see revocationFailure), without waiting for it.
    /// It is never unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credentials_revoked_at: Option<Time>,

    /// While the terminated tenant's credentials cannot be revoked: the error class of
    /// the last attempt, how many attempts failed, and when the last was made. The
    /// tenant's erasure does not wait for the revocation (no end-user data is at stake);
    /// it reports this in its status and its receipt. Unset once revoked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revocation_failure: Option<super::StepFailure>,

    /// Credentials minted at the provider whose Secret is not stored (providerApi only):
    /// each is recorded before its Secret is created, so that a failure or a crash in
    /// between never leaves a live credential nobody knows of. Herald retries storing a
    /// version with the same Idempotency-Key, so the provider answers with the same
    /// credential; one that was not stored after all (the provider minted another, or the
    /// binding or its tenant went) is revoked, and leaves this list once it is.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unstored_credentials: Vec<UnstoredCredential>,
}

/// A minted credential not yet in a Secret: its version and the provider's id (never
/// the credential itself).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct UnstoredCredential {
    /// The version it was minted for.
    pub version: i64,
    /// The provider's id of the credential.
    pub provider_credential_id: String,
    /// When it was minted.
    pub minted_at: Time,
}
