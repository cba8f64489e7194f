//! The pure part of a ChannelBinding reconcile: what the rotation must do next, the
//! credential Secret of a version, and the status. No client here.
//!
//! # The rotation state machine
//!
//! Everything it needs is in the binding's status, so a restarted operator resumes:
//!
//! ```text
//!            trigger (initial | source changed | schedule | request)
//!  Current ───────────────────────────────────────────────────────────► Rolling
//!  (vN)       create Secret vN+1, status: current=vN+1, previous=vN       (vN+1, prev vN)
//!     ▲                                                                   │ Deployment rolled out
//!     │                                                                   │ and no longer on vN
//!     │  revoke vN at the provider, delete its Secret,                    ▼
//!     └───────────────────── clear previous ◄──────────────────────── Overlap
//!                         (after rolledOutAt + overlapMinutes)      (status: rolledOutAt)
//! ```
//!
//! A provider failure at any step leaves the state where it is (the senders keep the
//! version they have) and is retried; no new rotation starts while one is unfinished.
//!
//! # Termination
//!
//! Once the binding's Tenant is terminated (or being deleted), the machine above stops
//! for good: every credential Herald issued (current, previous, and any leftover
//! version) is revoked at the provider, then `status.credentialsRevokedAt` is set and
//! never unset ([`terminated_status`]). The tenant's erasure waits for that field.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Resource;

use crate::api::v1alpha1::conditions::{self as types, reason};
use crate::api::v1alpha1::{
    ChannelBinding, ChannelBindingStatus, StepFailure, Tenant, UnstoredCredential,
};
use crate::conditions::{Desired, merge};
use crate::controller::subprocessor::effective::Verdict;
use crate::controller::{MANAGED_BY, TENANT_LABEL};

/// Annotation that asks for a rotation now; its value (any, e.g. a timestamp) is echoed
/// in `status.lastHandledRotateAt` once the rotation started.
pub const ROTATE_REQUESTED_ANNOTATION: &str = "herald.dev/rotate-requested-at";
/// Label on a credential Secret: the ChannelBinding it belongs to.
pub const BINDING_LABEL: &str = "herald.dev/channel-binding";
/// Label on a credential Secret: its channel.
pub const CHANNEL_LABEL: &str = "herald.dev/channel";
/// Annotation on a credential Secret: its version.
pub const VERSION_ANNOTATION: &str = "herald.dev/credential-version";
/// Annotation on a credential Secret: the provider's id of the credential (not secret).
pub const PROVIDER_ID_ANNOTATION: &str = "herald.dev/provider-credential-id";
/// Annotation on a credential Secret: the source hash it was copied from.
pub const SOURCE_HASH_ANNOTATION: &str = "herald.dev/source-hash";
/// Key of the operator-generated webhook signing key in every credential Secret.
pub const WEBHOOK_KEY: &str = "webhook-signing-key";
/// Key of a provider-minted credential in the credential Secret.
pub const CREDENTIAL_KEY: &str = "credential";

/// Days between rotations when `rotation.intervalDays` is unset.
pub const DEFAULT_INTERVAL_DAYS: i32 = 90;
/// Overlap minutes when `rotation.overlapMinutes` is unset.
pub const DEFAULT_OVERLAP_MINUTES: i32 = 10;

/// The name of version `version` of `channel`'s credential Secret.
pub fn secret_name(channel: &str, version: i64) -> String {
    format!("herald-cred-{channel}-v{version}")
}

/// The rotation interval.
pub fn interval(b: &ChannelBinding) -> SignedDuration {
    let days = b
        .spec
        .rotation
        .as_ref()
        .and_then(|r| r.interval_days)
        .unwrap_or(DEFAULT_INTERVAL_DAYS)
        .max(1);
    SignedDuration::from_hours(i64::from(days) * 24)
}

/// The overlap after the rollout.
pub fn overlap(b: &ChannelBinding) -> SignedDuration {
    let minutes = b
        .spec
        .rotation
        .as_ref()
        .and_then(|r| r.overlap_minutes)
        .unwrap_or(DEFAULT_OVERLAP_MINUTES)
        .max(0);
    SignedDuration::from_mins(i64::from(minutes))
}

/// The prefix of a keyed source hash (status written before it holds a legacy one).
pub const SOURCE_HASH_PREFIX: &str = "hmac-sha256:";

/// HMAC-SHA256, keyed with the operator's source-hash key, over a source Secret's keys
/// and values and the binding's uid: `hmac-sha256:<hex>`.
///
/// The digest goes into status (readable by anyone who can read the binding), so it
/// must not help recover the value. A source Secret may hold a human-chosen password:
/// an unkeyed digest of it is a dictionary lookup, even salted with the uid (which is
/// public). Keyed with a secret only the operator reads ([`super::hash_key`]), the
/// digest tells nothing without that key; the uid still makes two bindings sharing a
/// source look unrelated. Keys are sorted and every field is length-prefixed, so no
/// two different Secrets encode alike.
pub fn source_hash(key: &[u8], uid: &str, data: &BTreeMap<String, ByteString>) -> String {
    use hmac::{Hmac, KeyInit, Mac};
    let encoded = encode_source(uid, data);
    let hex: String = match <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(&encoded);
            mac.finalize()
                .into_bytes()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        }
        // HMAC takes keys of any length: unreachable, and an empty digest never matches.
        Err(_) => String::new(),
    };
    format!("{SOURCE_HASH_PREFIX}{hex}")
}

/// The digest status held before the keyed one: SHA-256 salted with the binding's uid.
/// Only compared with, so an upgrade does not take it for a changed source.
pub fn legacy_source_hash(uid: &str, data: &BTreeMap<String, ByteString>) -> String {
    crate::digest::sha256_hex(&encode_source(uid, data))
}

fn encode_source(uid: &str, data: &BTreeMap<String, ByteString>) -> Vec<u8> {
    let mut buf: Vec<u8> = b"herald-source-v1\0".to_vec();
    let mut field = |bytes: &[u8]| {
        buf.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
        buf.extend_from_slice(bytes);
    };
    field(uid.as_bytes());
    for (k, v) in data {
        field(k.as_bytes());
        field(&v.0);
    }
    buf
}

/// The source hash status should hold: the keyed `hash` in place of a legacy digest of
/// the same data (`legacy`), so upgrading is not a source change and rotates nothing.
/// `None`: keep what status has (a keyed hash, a different source, or none yet).
pub fn migrated_source_hash(stored: Option<&str>, legacy: &str, hash: &str) -> Option<String> {
    (stored == Some(legacy)).then(|| hash.to_owned())
}

/// Why a rotation starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// No credential yet.
    Initial,
    /// The source Secret changed.
    SourceChanged,
    /// `intervalDays` passed since the last rotation.
    Scheduled,
    /// The rotate-requested-at annotation changed.
    Requested,
}

impl Trigger {
    /// For messages and logs.
    pub fn describe(self) -> &'static str {
        match self {
            Trigger::Initial => "first delivery",
            Trigger::SourceChanged => "the source Secret changed",
            Trigger::Scheduled => "the rotation interval passed",
            Trigger::Requested => "a rotation was requested",
        }
    }
}

/// The value of the rotate request annotation, if any.
pub fn requested(b: &ChannelBinding) -> Option<&str> {
    b.meta()
        .annotations
        .as_ref()
        .and_then(|a| a.get(ROTATE_REQUESTED_ANNOTATION))
        .map(String::as_str)
}

/// Whether a new version is due, and why. `source_hash` is the hash of the source Secret
/// now (secretRef bindings). `None` while a rotation is still unfinished.
pub fn trigger(b: &ChannelBinding, source_hash: Option<&str>, now: Timestamp) -> Option<Trigger> {
    let s = b.status.clone().unwrap_or_default();
    if s.credential_version.is_none() {
        return Some(Trigger::Initial);
    }
    if s.previous_credential_version.is_some() {
        return None;
    }
    if let Some(h) = source_hash
        && s.source_hash.as_deref() != Some(h)
    {
        return Some(Trigger::SourceChanged);
    }
    if let Some(r) = requested(b)
        && s.last_handled_rotate_at.as_deref() != Some(r)
    {
        return Some(Trigger::Requested);
    }
    if next_rotation(b, &s).is_some_and(|at| now >= at) {
        return Some(Trigger::Scheduled);
    }
    None
}

/// Last rotation + interval.
pub fn next_rotation(b: &ChannelBinding, s: &ChannelBindingStatus) -> Option<Timestamp> {
    s.last_rotation
        .as_ref()
        .and_then(|t| t.0.checked_add(interval(b)).ok())
}

/// Where the senders are, for the previous version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PreviousUse {
    /// Some sender may still use it (rollout not finished, or still on it).
    InUse,
    /// No sender uses it any more.
    Free,
}

/// Whether the previous version may still be in use, from the sender Deployment's
/// rolled-out versions (`deployment`: `None` = no Deployment; `Some(None)` = a rollout is
/// in progress).
pub fn previous_use(
    channel: &str,
    previous: i64,
    deployment: Option<Option<&BTreeMap<String, i64>>>,
) -> PreviousUse {
    match deployment {
        None => PreviousUse::Free,
        Some(None) => PreviousUse::InUse,
        Some(Some(versions)) if versions.get(channel) == Some(&previous) => PreviousUse::InUse,
        Some(Some(_)) => PreviousUse::Free,
    }
}

/// The immutable Secret of one credential version in the tenant's namespace. Owned by
/// the Tenant (not as controller): a namespaced binding in the control namespace cannot
/// own objects in another namespace, and the tenant's erasure must take them along.
pub struct SecretInputs<'a> {
    /// The binding.
    pub binding: &'a ChannelBinding,
    /// Its tenant.
    pub tenant: &'a Tenant,
    /// The channel's API spelling.
    pub channel: &'a str,
    /// The version.
    pub version: i64,
    /// The credential keys and values (copied from the source, or minted).
    pub data: BTreeMap<String, ByteString>,
    /// The operator-generated webhook signing key.
    pub webhook_key: String,
    /// Provider id of a minted credential.
    pub provider_id: Option<&'a str>,
    /// Hash of the source Secret the data was copied from.
    pub source_hash: Option<&'a str>,
}

/// Builds the credential Secret of a version.
pub fn credential_secret(i: SecretInputs<'_>) -> Secret {
    let tenant = i.tenant.metadata.name.clone().unwrap_or_default();
    let binding = i.binding.metadata.name.clone().unwrap_or_default();
    let mut data = i.data;
    data.insert(WEBHOOK_KEY.into(), ByteString(i.webhook_key.into_bytes()));
    let mut annotations = BTreeMap::from([(VERSION_ANNOTATION.to_owned(), i.version.to_string())]);
    if let Some(id) = i.provider_id {
        annotations.insert(PROVIDER_ID_ANNOTATION.into(), id.to_owned());
    }
    if let Some(h) = i.source_hash {
        annotations.insert(SOURCE_HASH_ANNOTATION.into(), h.to_owned());
    }
    let owner = OwnerReference {
        api_version: "herald.dev/v1alpha1".into(),
        kind: "Tenant".into(),
        name: tenant.clone(),
        uid: i.tenant.metadata.uid.clone().unwrap_or_default(),
        controller: None,
        block_owner_deletion: None,
    };
    Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(secret_name(i.channel, i.version)),
            namespace: Some(crate::controller::tenant::build::namespace_name(&tenant)),
            labels: Some(BTreeMap::from([
                (TENANT_LABEL.to_owned(), tenant),
                (BINDING_LABEL.to_owned(), binding),
                (CHANNEL_LABEL.to_owned(), i.channel.to_owned()),
                (
                    "app.kubernetes.io/managed-by".to_owned(),
                    MANAGED_BY.to_owned(),
                ),
            ])),
            annotations: Some(annotations),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        immutable: Some(true),
        type_: Some("Opaque".into()),
        data: Some(data),
        ..Default::default()
    }
}

/// What is wrong with the credential, if anything, for the CredentialCurrent condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Reason constant (ProviderFailed, CredentialSourceInvalid).
    pub reason: &'static str,
    /// A sentence, never containing a credential.
    pub message: String,
}

/// The binding that holds `binding`'s tenant and channel, when it is not `binding`
/// itself: of the bindings (`all`, the control namespace's) naming the same tenant and
/// channel and not being deleted, the oldest by creationTimestamp, then by name (both
/// stable, so every reconcile and both controllers pick the same one). Only the holder
/// delivers a credential and reaches the senders; another is a duplicate and delivers
/// nothing. A holder being deleted no longer holds the channel, so the next one takes
/// over at once (while the old one still revokes its own credentials).
pub fn held_by<'a>(
    binding: &ChannelBinding,
    all: impl IntoIterator<Item = &'a ChannelBinding>,
) -> Option<&'a ChannelBinding> {
    let first = holder(
        &binding.spec.tenant_ref.name,
        binding.spec.channel,
        binding.metadata.namespace.as_deref(),
        all,
    )?;
    (first.metadata.name != binding.metadata.name).then_some(first)
}

/// The binding that holds `tenant`'s `channel` among `all` (in `namespace`): see
/// [`held_by`]. `None` when no binding names them.
pub fn holder<'a>(
    tenant: &str,
    channel: crate::api::v1alpha1::Channel,
    namespace: Option<&str>,
    all: impl IntoIterator<Item = &'a ChannelBinding>,
) -> Option<&'a ChannelBinding> {
    all.into_iter()
        .filter(|b| {
            b.spec.tenant_ref.name == tenant
                && b.spec.channel == channel
                && b.metadata.namespace.as_deref() == namespace
                && b.metadata.deletion_timestamp.is_none()
        })
        .min_by(|a, b| {
            let key = |x: &'a ChannelBinding| {
                (
                    x.metadata.creation_timestamp.as_ref().map(|t| t.0),
                    x.metadata.name.as_deref(),
                )
            };
            key(a).cmp(&key(b))
        })
}

/// The problem of a duplicate binding: `first` holds its tenant and channel.
pub fn duplicate(b: &ChannelBinding, first: &ChannelBinding) -> Problem {
    Problem {
        reason: reason::DUPLICATE_BINDING,
        message: format!(
            "ChannelBinding {} already holds channel {} of Tenant {} (the older binding); this one delivers nothing and reaches no sender until that one is deleted",
            first.metadata.name.as_deref().unwrap_or_default(),
            crate::controller::tenant::bindings::channel_name(b),
            b.spec.tenant_ref.name,
        ),
    }
}

/// The reason a provider error shows under: the outbound guard's refusal has its own
/// (the platform's provider URL resolves to an address Herald never calls), every other
/// failure is the provider's.
pub fn provider_reason(e: &crate::provider::ProviderError) -> &'static str {
    match e {
        crate::provider::ProviderError::Refused { .. } => reason::EGRESS_REFUSED,
        _ => reason::PROVIDER_FAILED,
    }
}

/// Whether a problem is a failed provider call, retried on the provider backoff.
pub fn is_provider_call_failure(reason: &str) -> bool {
    reason == reason::PROVIDER_FAILED || reason == reason::EGRESS_REFUSED
}

/// Everything the status is computed from.
pub struct StatusInputs<'a> {
    /// The binding as read.
    pub binding: &'a ChannelBinding,
    /// The credential fields after this reconcile's effects (the rest is recomputed).
    pub state: ChannelBindingStatus,
    /// Whether the tenant exists.
    pub tenant_found: bool,
    /// The Subprocessor verdict for the tenant and channel.
    pub verdict: &'a Verdict,
    /// A credential problem found in this reconcile.
    pub problem: Option<Problem>,
    /// How long a problem Herald retries by itself reads as Reconciling before it
    /// reads as Stalled (the operator configuration's `health.stallAfterSeconds`).
    pub stall_after: SignedDuration,
}

/// Whether the binding has been converging (Reconciling=True in `current`) for longer
/// than `bound` at `now`: a retried failure past that reads as Stalled, so that Argo CD
/// and kstatus show a dependency that stays down instead of progress forever.
pub fn converging_too_long(
    current: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    bound: SignedDuration,
    now: Timestamp,
) -> bool {
    crate::conditions::find(current, types::RECONCILING)
        .filter(|c| c.status == "True")
        .and_then(|c| c.last_transition_time.0.checked_add(bound).ok())
        .is_some_and(|due| now >= due)
}

/// The binding's status.
pub fn status(i: StatusInputs<'_>, now: Timestamp) -> ChannelBindingStatus {
    let b = i.binding;
    let current = b.status.clone().unwrap_or_default();
    let name = b.metadata.name.clone().unwrap_or_default();
    let tenant = &b.spec.tenant_ref.name;
    let mut s = i.state;
    s.next_rotation = next_rotation(b, &s).map(Time);
    let suspended = b.spec.suspend == Some(true);

    let effective = if !i.tenant_found {
        Desired::no(
            types::SUBPROCESSOR_EFFECTIVE,
            reason::TENANT_NOT_FOUND,
            format!("Tenant {tenant} does not exist"),
        )
    } else if i.verdict.effective {
        Desired::yes(
            types::SUBPROCESSOR_EFFECTIVE,
            reason::RECONCILED,
            i.verdict.message.clone(),
        )
    } else {
        Desired::no(
            types::SUBPROCESSOR_EFFECTIVE,
            i.verdict.reason,
            i.verdict.message.clone(),
        )
    };

    let credential = match (
        &i.problem,
        s.credential_version,
        s.previous_credential_version,
    ) {
        // A duplicate's own version (delivered before the older binding held the
        // channel) is not what the senders use.
        (Some(p), Some(v), _) if p.reason == reason::DUPLICATE_BINDING => Desired::no(
            types::CREDENTIAL_CURRENT,
            p.reason,
            format!("{}; its version {v} is mounted nowhere", p.message),
        ),
        (Some(p), Some(v), _) => Desired::no(
            types::CREDENTIAL_CURRENT,
            p.reason,
            format!("{}; version {v} stays in use", p.message),
        ),
        (Some(p), None, _) => Desired::no(types::CREDENTIAL_CURRENT, p.reason, p.message.clone()),
        (None, None, _) => Desired::no(
            types::CREDENTIAL_CURRENT,
            reason::PENDING,
            "no credential delivered yet",
        ),
        (None, Some(v), Some(p)) => Desired::no(
            types::CREDENTIAL_CURRENT,
            reason::ROTATING,
            match &s.rolled_out_at {
                None => format!(
                    "rotating from version {p} to {v}: waiting until every sender runs on version {v}"
                ),
                Some(at) => format!(
                    "rotating from version {p} to {v}: every sender runs on version {v} since {}; version {p} is revoked after the overlap",
                    at.0
                ),
            },
        ),
        (None, Some(v), None) => Desired::yes(
            types::CREDENTIAL_CURRENT,
            reason::RECONCILED,
            match &s.next_rotation {
                Some(at) => format!("version {v} in place; next rotation at {}", at.0),
                None => format!("version {v} in place"),
            },
        ),
    };

    // Stalled: a person must change something. Reconciling: it finishes by itself.
    let stalled: Option<(&'static str, String)> = if !i.tenant_found {
        Some((
            reason::TENANT_NOT_FOUND,
            format!("waiting for Tenant {tenant}"),
        ))
    } else if !suspended && i.verdict.needs_a_person() {
        Some((i.verdict.reason, i.verdict.message.clone()))
    } else if let Some(p) = i.problem.as_ref().filter(|p| {
        p.reason == reason::CREDENTIAL_SOURCE_INVALID
            || p.reason == reason::SOURCE_NOT_OWNED_BY_TENANT
            || p.reason == reason::PROVIDER_NOT_CONFIGURED
            || p.reason == reason::DUPLICATE_BINDING
    }) {
        Some((p.reason, p.message.clone()))
    } else if let Some(p) = i.problem.as_ref().filter(|p| {
        // Past the bound, or already stalled by the same failure (it stays stalled
        // until the failure ends, rather than flapping back to Reconciling).
        !suspended
            && (converging_too_long(&current.conditions, i.stall_after, now)
                || crate::conditions::find(&current.conditions, types::STALLED)
                    .is_some_and(|c| c.status == "True" && c.reason == p.reason))
    }) {
        Some((
            p.reason,
            format!(
                "{} for more than {:#}; still retrying, but a person should look",
                p.message, i.stall_after
            ),
        ))
    } else {
        None
    };
    let converging: Option<(&'static str, String)> = if stalled.is_some() || suspended {
        None
    } else if let Some(p) = &i.problem {
        Some((p.reason, format!("{}; retrying", p.message)))
    } else if !i.verdict.effective {
        Some((i.verdict.reason, i.verdict.message.clone()))
    } else if s.previous_credential_version.is_some() || s.credential_version.is_none() {
        Some((reason::ROTATING, "rotating the credential".to_owned()))
    } else {
        None
    };

    let ready = match (&stalled, &converging) {
        (Some((r, m)), _) => Desired::no(types::READY, r, m.clone()),
        (None, Some((r, m))) => Desired::no(types::READY, r, m.clone()),
        (None, None) if suspended => Desired::yes(
            types::READY,
            reason::SUSPENDED,
            "spec.suspend is true: the channel is not handed to the senders",
        ),
        (None, None) => Desired::yes(
            types::READY,
            reason::RECONCILED,
            format!(
                "channel {name} runs on credential version {}",
                s.credential_version.unwrap_or_default()
            ),
        ),
    };
    let desired = vec![
        ready,
        crate::conditions::stalled(stalled.clone()),
        crate::conditions::reconciling(converging.clone()),
        effective,
        credential,
    ];
    s.observed_generation = b.metadata.generation;
    s.conditions = merge(&current.conditions, &desired, b.metadata.generation, now);
    s
}

/// The provider ids to revoke when the tenant is terminated: the current and previous
/// credential of `state`, and those of leftover version Secrets (`leftovers`), each once.
pub fn ids_to_revoke<'a>(
    state: &'a ChannelBindingStatus,
    leftovers: impl IntoIterator<Item = &'a str>,
) -> Vec<&'a str> {
    let mut ids: Vec<&str> = state
        .provider_credential_id
        .as_deref()
        .into_iter()
        .chain(state.previous_provider_credential_id.as_deref())
        .chain(
            state
                .unstored_credentials
                .iter()
                .map(|u| u.provider_credential_id.as_str()),
        )
        .chain(leftovers)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// The record of minted-but-unstored credentials once `minted_id` was minted for
/// `version`: it joins the list (once, however often the provider answers a retried key
/// with the same credential). Written before its Secret is created.
pub fn minted(
    mut unstored: Vec<UnstoredCredential>,
    version: i64,
    minted_id: &str,
    now: Timestamp,
) -> Vec<UnstoredCredential> {
    if !unstored
        .iter()
        .any(|u| u.provider_credential_id == minted_id)
    {
        unstored.push(UnstoredCredential {
            version,
            provider_credential_id: minted_id.to_owned(),
            minted_at: Time(now),
        });
    }
    unstored
}

/// Once the credential `stored_id` is in its Secret: it leaves the list, and every
/// other entry (minted for a retry the provider did not answer with the same
/// credential, or for a version adopted from a Secret instead) is to be revoked.
/// Returns (what stays recorded until revoked, what to revoke now).
pub fn stored(
    unstored: Vec<UnstoredCredential>,
    stored_id: Option<&str>,
) -> (Vec<UnstoredCredential>, Vec<String>) {
    let rest: Vec<UnstoredCredential> = unstored
        .into_iter()
        .filter(|u| Some(u.provider_credential_id.as_str()) != stored_id)
        .collect();
    let revoke = rest
        .iter()
        .map(|u| u.provider_credential_id.clone())
        .collect();
    (rest, revoke)
}

/// The binding's record of failed revocations after one more failed with `error` (a
/// class, never the error's text): one more attempt, made `now`.
pub fn revocation_failed(
    before: Option<StepFailure>,
    channel: &str,
    error: &str,
    now: Timestamp,
) -> StepFailure {
    StepFailure {
        step: "revocation".into(),
        target: channel.to_owned(),
        error: error.to_owned(),
        attempts: before.map_or(0, |f| f.attempts).saturating_add(1),
        last_try: Time(now),
    }
}

/// The status of a binding whose Tenant is terminated: `state` carries
/// `credentialsRevokedAt` once everything is revoked; `problem` says why it is not yet.
/// No next rotation: a terminated tenant's credential is never rotated again.
pub fn terminated_status(
    b: &ChannelBinding,
    mut state: ChannelBindingStatus,
    problem: Option<Problem>,
    now: Timestamp,
) -> ChannelBindingStatus {
    let current = b.status.clone().unwrap_or_default();
    let tenant = &b.spec.tenant_ref.name;
    state.next_rotation = None;
    let (credential, reconciling) = match (&state.credentials_revoked_at, &problem) {
        (Some(at), _) => (
            Desired::no(
                types::CREDENTIAL_CURRENT,
                reason::TENANT_TERMINATED,
                format!(
                    "Tenant {tenant} is terminated: its credentials were revoked at {}",
                    at.0
                ),
            ),
            Desired::no(
                types::RECONCILING,
                reason::RECONCILED,
                "credentials revoked",
            ),
        ),
        (None, Some(p)) => (
            Desired::no(
                types::CREDENTIAL_CURRENT,
                p.reason,
                format!("Tenant {tenant} is terminated but {}; retrying", p.message),
            ),
            Desired::yes(
                types::RECONCILING,
                p.reason,
                format!("revoking the credentials: {}", p.message),
            ),
        ),
        (None, None) => (
            Desired::no(
                types::CREDENTIAL_CURRENT,
                reason::TENANT_TERMINATED,
                format!("Tenant {tenant} is terminated: revoking its credentials"),
            ),
            Desired::yes(
                types::RECONCILING,
                reason::TENANT_TERMINATED,
                "revoking the credentials",
            ),
        ),
    };
    // Once revoked, a terminated tenant's binding is done by design (the docs keep it
    // in Git): Ready=True, so Argo CD shows Healthy and kstatus Current, not Degraded
    // or in progress forever. Until then Reconciling=True says it is revoking.
    let ready = Desired {
        type_: types::READY,
        status: state.credentials_revoked_at.is_some(),
        reason: reason::TENANT_TERMINATED,
        message: match &state.credentials_revoked_at {
            Some(_) => format!(
                "Tenant {tenant} is terminated: the channel is stopped, its credentials revoked, and it is never rotated again"
            ),
            None => format!(
                "Tenant {tenant} is terminated: the channel is stopped; revoking its credentials"
            ),
        },
    };
    let desired = vec![
        ready,
        crate::conditions::stalled(None),
        reconciling,
        Desired::no(
            types::SUBPROCESSOR_EFFECTIVE,
            reason::TENANT_TERMINATED,
            format!("Tenant {tenant} is terminated: no channel runs for it"),
        ),
        credential,
    ];
    state.observed_generation = b.metadata.generation;
    state.conditions = merge(&current.conditions, &desired, b.metadata.generation, now);
    state
}

/// The status of a binding being deleted whose credentials cannot be revoked yet
/// (`problem` says why): it stays until they are, and says how to give up instead.
pub fn deleting_status(
    b: &ChannelBinding,
    mut state: ChannelBindingStatus,
    problem: &Problem,
    now: Timestamp,
) -> ChannelBindingStatus {
    let current = b.status.clone().unwrap_or_default();
    state.next_rotation = None;
    let desired = vec![
        Desired::no(
            types::READY,
            problem.reason,
            format!(
                "being deleted, but {}; it stays until its credentials are revoked (removing the finalizer {} deletes it without revoking them)",
                problem.message,
                super::FINALIZER
            ),
        ),
        Desired::no(
            types::STALLED,
            reason::RECONCILED,
            "retrying the revocation",
        ),
        Desired::yes(
            types::RECONCILING,
            reason::DELETING,
            "revoking the credentials before the binding is deleted",
        ),
        Desired::no(
            types::SUBPROCESSOR_EFFECTIVE,
            reason::DELETING,
            "the binding is being deleted: no channel runs through it",
        ),
        Desired::no(
            types::CREDENTIAL_CURRENT,
            problem.reason,
            problem.message.clone(),
        ),
    ];
    state.observed_generation = b.metadata.generation;
    state.conditions = merge(&current.conditions, &desired, b.metadata.generation, now);
    state
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::subprocessor::effective::Verdict;
    use kube::ResourceExt;

    fn binding(status: serde_json::Value, annotations: serde_json::Value) -> ChannelBinding {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "herald.dev/v1alpha1", "kind": "ChannelBinding",
            "metadata": {"name": "acme-sms", "namespace": "herald-system", "generation": 1,
                         "uid": "u-1", "annotations": annotations},
            "spec": {"tenantRef": {"name": "acme"}, "channel": "sms",
                     "subprocessorRef": {"name": "carrier"},
                     "credential": {"secretRef": {"name": "src"}},
                     "rotation": {"intervalDays": 30, "overlapMinutes": 5}},
            "status": status,
        }))
        .unwrap()
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn ok() -> Verdict {
        Verdict {
            effective: true,
            reason: reason::RECONCILED,
            message: "ok".into(),
            recheck_at: None,
        }
    }

    #[test]
    fn a_minted_credential_is_recorded_once_and_leaves_the_record_when_stored() {
        let now = ts("2026-03-01T00:00:00Z");
        let first = minted(Vec::new(), 1, "cred-1", now);
        // The retry after a failed store gets the same credential for the same key.
        let again = minted(first.clone(), 1, "cred-1", now);
        assert_eq!(again, first);
        assert_eq!(first[0].version, 1);
        let (rest, revoke) = stored(again, Some("cred-1"));
        assert!(rest.is_empty() && revoke.is_empty(), "{rest:?} {revoke:?}");
    }

    #[test]
    fn a_credential_minted_but_not_the_one_stored_is_revoked_and_counted_until_it_is() {
        let now = ts("2026-03-01T00:00:00Z");
        // A provider that ignored the Idempotency-Key: two credentials for version 1.
        let both = minted(minted(Vec::new(), 1, "cred-1", now), 1, "cred-2", now);
        assert_eq!(both.len(), 2);
        let (rest, revoke) = stored(both, Some("cred-2"));
        assert_eq!(revoke, ["cred-1"]);
        assert_eq!(
            rest.len(),
            1,
            "stays recorded until the revocation succeeds"
        );
        // Recorded ones are revoked with the binding's others (deletion, termination).
        let state = ChannelBindingStatus {
            provider_credential_id: Some("cred-2".into()),
            unstored_credentials: rest,
            ..Default::default()
        };
        assert_eq!(ids_to_revoke(&state, []), ["cred-1", "cred-2"]);
        // A version adopted from a Secret (no provider id) leaves every record to revoke.
        let (rest, revoke) = stored(minted(Vec::new(), 3, "cred-3", now), None);
        assert_eq!((rest.len(), revoke), (1, vec!["cred-3".to_owned()]));
    }

    #[test]
    fn triggers_in_order() {
        let now = ts("2026-03-01T00:00:00Z");
        assert_eq!(
            trigger(
                &binding(serde_json::json!({}), serde_json::json!({})),
                None,
                now
            ),
            Some(Trigger::Initial)
        );
        let settled = serde_json::json!({"credentialVersion": 2, "sourceHash": "h",
            "lastRotation": "2026-02-15T00:00:00Z", "lastHandledRotateAt": "a"});
        let b = binding(
            settled.clone(),
            serde_json::json!({ROTATE_REQUESTED_ANNOTATION: "a"}),
        );
        assert_eq!(trigger(&b, Some("h"), now), None);
        assert_eq!(trigger(&b, Some("h2"), now), Some(Trigger::SourceChanged));
        assert_eq!(
            trigger(&b, Some("h"), ts("2026-03-17T00:00:00Z")),
            Some(Trigger::Scheduled)
        );
        let asked = binding(
            settled,
            serde_json::json!({ROTATE_REQUESTED_ANNOTATION: "b"}),
        );
        assert_eq!(trigger(&asked, Some("h"), now), Some(Trigger::Requested));
        let rotating = binding(
            serde_json::json!({"credentialVersion": 3, "previousCredentialVersion": 2}),
            serde_json::json!({ROTATE_REQUESTED_ANNOTATION: "c"}),
        );
        assert_eq!(
            trigger(&rotating, Some("x"), now),
            None,
            "one rotation at a time"
        );
    }

    #[test]
    fn the_previous_version_is_free_only_after_the_rollout_left_it() {
        let on = |v: i64| BTreeMap::from([("sms".to_owned(), v)]);
        assert_eq!(previous_use("sms", 1, Some(None)), PreviousUse::InUse);
        assert_eq!(
            previous_use("sms", 1, Some(Some(&on(1)))),
            PreviousUse::InUse
        );
        assert_eq!(
            previous_use("sms", 1, Some(Some(&on(2)))),
            PreviousUse::Free
        );
        assert_eq!(
            previous_use("sms", 1, Some(Some(&BTreeMap::new()))),
            PreviousUse::Free
        );
        assert_eq!(previous_use("sms", 1, None), PreviousUse::Free);
    }

    #[test]
    fn the_source_hash_is_keyed_salted_and_order_free() {
        let d = BTreeMap::from([
            ("a".to_owned(), ByteString(b"1".to_vec())),
            ("b".to_owned(), ByteString(b"2".to_vec())),
        ]);
        let h = source_hash(b"k", "u", &d);
        assert!(h.starts_with(SOURCE_HASH_PREFIX), "{h}");
        assert_eq!(h, source_hash(b"k", "u", &d.clone()));
        assert_ne!(h, source_hash(b"k", "v", &d), "salted per binding");
        assert_ne!(h, source_hash(b"other", "u", &d), "keyed");
        let moved = BTreeMap::from([
            ("a".to_owned(), ByteString(b"12".to_vec())),
            ("b".to_owned(), ByteString(b"".to_vec())),
        ]);
        assert_ne!(h, source_hash(b"k", "u", &moved));
        // Without the key, the public uid and a guessed value give another digest.
        assert!(!h.contains(&legacy_source_hash("u", &d)));
    }

    #[test]
    fn an_upgrade_replaces_the_legacy_hash_without_a_rotation() {
        let d = BTreeMap::from([("apiKey".to_owned(), ByteString(b"x".to_vec()))]);
        let (legacy, keyed) = (legacy_source_hash("u", &d), source_hash(b"k", "u", &d));
        assert_eq!(
            migrated_source_hash(Some(&legacy), &legacy, &keyed),
            Some(keyed.clone())
        );
        // A keyed hash, a changed source or none: status is left to the trigger.
        assert_eq!(migrated_source_hash(Some(&keyed), &legacy, &keyed), None);
        assert_eq!(migrated_source_hash(Some("old"), &legacy, &keyed), None);
        assert_eq!(migrated_source_hash(None, &legacy, &keyed), None);
    }

    #[test]
    fn provider_failure_keeps_the_version_and_says_why() {
        let b = binding(serde_json::json!({}), serde_json::json!({}));
        let state = ChannelBindingStatus {
            credential_version: Some(2),
            credential_secret: Some(secret_name("sms", 2)),
            last_rotation: Some(Time(ts("2026-02-01T00:00:00Z"))),
            ..Default::default()
        };
        let s = status(
            StatusInputs {
                binding: &b,
                state,
                tenant_found: true,
                verdict: &ok(),
                problem: Some(Problem {
                    reason: reason::PROVIDER_FAILED,
                    message: "provider mint answered HTTP 500".into(),
                }),
                stall_after: SignedDuration::from_mins(15),
            },
            ts("2026-03-01T00:00:00Z"),
        );
        let c = crate::conditions::find(&s.conditions, types::CREDENTIAL_CURRENT).unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", reason::PROVIDER_FAILED)
        );
        assert!(
            c.message.contains("version 2 stays in use"),
            "{}",
            c.message
        );
        assert!(crate::conditions::is_true(
            &s.conditions,
            types::RECONCILING
        ));
        assert_eq!(s.credential_version, Some(2));
        assert_eq!(s.next_rotation, Some(Time(ts("2026-03-03T00:00:00Z"))));
    }

    #[test]
    fn a_provider_failing_past_the_bound_stalls_with_its_reason_and_recovers() {
        let mut b = binding(serde_json::json!({}), serde_json::json!({}));
        let state = ChannelBindingStatus {
            credential_version: Some(2),
            ..Default::default()
        };
        let down = || Problem {
            reason: reason::PROVIDER_FAILED,
            message: "provider mint failed: connection refused".into(),
        };
        let run = |b: &ChannelBinding, problem: Option<Problem>, at: &str| {
            status(
                StatusInputs {
                    binding: b,
                    state: state.clone(),
                    tenant_found: true,
                    verdict: &ok(),
                    problem,
                    stall_after: SignedDuration::from_secs(60),
                },
                ts(at),
            )
        };
        let first = run(&b, Some(down()), "2026-03-01T00:00:00Z");
        assert!(crate::conditions::is_true(
            &first.conditions,
            types::RECONCILING
        ));
        assert!(!crate::conditions::is_true(
            &first.conditions,
            types::STALLED
        ));
        b.status = Some(first);
        // Within the bound: still converging.
        let within = run(&b, Some(down()), "2026-03-01T00:00:59Z");
        assert!(!crate::conditions::is_true(
            &within.conditions,
            types::STALLED
        ));
        // Past it: Stalled with the provider's reason, and Reconciling no more.
        let past = run(&b, Some(down()), "2026-03-01T00:01:00Z");
        let st = crate::conditions::find(&past.conditions, types::STALLED).unwrap();
        assert_eq!(
            (st.status.as_str(), st.reason.as_str()),
            ("True", reason::PROVIDER_FAILED)
        );
        assert!(st.message.contains("for more than 1m"), "{}", st.message);
        assert!(!crate::conditions::is_true(
            &past.conditions,
            types::RECONCILING
        ));
        // Still failing: it stays stalled (no flapping back to Reconciling).
        b.status = Some(past.clone());
        let still = run(&b, Some(down()), "2026-03-01T00:05:00Z");
        assert!(crate::conditions::is_true(
            &still.conditions,
            types::STALLED
        ));
        assert_eq!(still.conditions, past.conditions);
        // The provider answers again: no longer stalled.
        let back = run(&b, None, "2026-03-01T00:02:00Z");
        assert!(!crate::conditions::is_true(
            &back.conditions,
            types::STALLED
        ));
        assert!(crate::conditions::is_true(&back.conditions, types::READY));
    }

    #[test]
    fn a_source_not_owned_by_the_tenant_stalls_the_binding() {
        let b = binding(serde_json::json!({}), serde_json::json!({}));
        let s = status(
            StatusInputs {
                binding: &b,
                state: ChannelBindingStatus::default(),
                tenant_found: true,
                verdict: &ok(),
                problem: Some(Problem {
                    reason: reason::SOURCE_NOT_OWNED_BY_TENANT,
                    message: "the Secret herald-system/x has no herald.dev/tenant label".into(),
                }),
                stall_after: SignedDuration::from_mins(15),
            },
            ts("2026-03-01T00:00:00Z"),
        );
        for (t, want) in [
            (types::CREDENTIAL_CURRENT, "False"),
            (types::READY, "False"),
            (types::STALLED, "True"),
        ] {
            let c = crate::conditions::find(&s.conditions, t).unwrap();
            assert_eq!(
                (c.status.as_str(), c.reason.as_str()),
                (want, reason::SOURCE_NOT_OWNED_BY_TENANT),
                "{t}"
            );
        }
        assert!(!crate::conditions::is_true(
            &s.conditions,
            types::RECONCILING
        ));
        assert_eq!(s.credential_version, None);
    }

    #[test]
    fn a_settled_binding_is_ready_and_stable() {
        let mut b = binding(serde_json::json!({}), serde_json::json!({}));
        let state = ChannelBindingStatus {
            credential_version: Some(1),
            credential_secret: Some(secret_name("sms", 1)),
            last_rotation: Some(Time(ts("2026-02-01T00:00:00Z"))),
            ..Default::default()
        };
        let inputs = |b: &ChannelBinding, st: ChannelBindingStatus| {
            status(
                StatusInputs {
                    binding: b,
                    state: st,
                    tenant_found: true,
                    verdict: &ok(),
                    problem: None,
                    stall_after: SignedDuration::from_mins(15),
                },
                ts("2026-02-02T00:00:00Z"),
            )
        };
        let first = inputs(&b, state.clone());
        assert!(crate::conditions::is_true(&first.conditions, types::READY));
        b.status = Some(first.clone());
        assert_eq!(inputs(&b, first.clone()), first);
    }

    #[test]
    fn termination_revokes_current_previous_and_leftovers_once_each() {
        let state = ChannelBindingStatus {
            provider_credential_id: Some("c-3".into()),
            previous_provider_credential_id: Some("c-2".into()),
            ..Default::default()
        };
        assert_eq!(
            ids_to_revoke(&state, ["c-1", "c-3"]),
            vec!["c-1", "c-2", "c-3"]
        );
        assert!(ids_to_revoke(&ChannelBindingStatus::default(), []).is_empty());
    }

    #[test]
    fn a_terminated_binding_says_so_and_never_rotates_again() {
        let b = binding(
            serde_json::json!({"credentialVersion": 2, "lastRotation": "2026-01-01T00:00:00Z"}),
            serde_json::json!({}),
        );
        let now = ts("2026-03-01T00:00:00Z");
        let mut state = b.status.clone().unwrap();
        let revoking = terminated_status(
            &b,
            state.clone(),
            Some(Problem {
                reason: reason::PROVIDER_FAILED,
                message: "provider revoke answered HTTP 500".into(),
            }),
            now,
        );
        let c = crate::conditions::find(&revoking.conditions, types::CREDENTIAL_CURRENT).unwrap();
        assert_eq!(c.reason, reason::PROVIDER_FAILED);
        assert!(crate::conditions::is_true(
            &revoking.conditions,
            types::RECONCILING
        ));
        assert_eq!(revoking.credentials_revoked_at, None);

        state.credentials_revoked_at = Some(Time(now));
        let done = terminated_status(&b, state, None, now);
        let r = crate::conditions::find(&done.conditions, types::READY).unwrap();
        // Done by design: Ready (Argo CD Healthy, kstatus Current), with the reason.
        assert_eq!(
            (r.status.as_str(), r.reason.as_str()),
            ("True", reason::TENANT_TERMINATED)
        );
        assert!(!crate::conditions::is_true(
            &revoking.conditions,
            types::READY
        ));
        let c = crate::conditions::find(&done.conditions, types::CREDENTIAL_CURRENT).unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", reason::TENANT_TERMINATED)
        );
        assert!(!crate::conditions::is_true(
            &done.conditions,
            types::RECONCILING
        ));
        assert_eq!(done.next_rotation, None, "no rotation after termination");
        assert_eq!(done.credentials_revoked_at, Some(Time(now)));
        // Stable: recomputing changes nothing.
        let mut again = b.clone();
        again.status = Some(done.clone());
        assert_eq!(
            terminated_status(&again, done.clone(), None, ts("2026-04-01T00:00:00Z")),
            done
        );
    }

    #[test]
    fn an_objection_stalls_the_binding() {
        let b = binding(serde_json::json!({}), serde_json::json!({}));
        let v = Verdict {
            effective: false,
            reason: reason::OBJECTED,
            message: "Tenant acme objected".into(),
            recheck_at: None,
        };
        let s = status(
            StatusInputs {
                binding: &b,
                state: Default::default(),
                tenant_found: true,
                verdict: &v,
                problem: None,
                stall_after: SignedDuration::from_mins(15),
            },
            ts("2026-02-02T00:00:00Z"),
        );
        let c = crate::conditions::find(&s.conditions, types::SUBPROCESSOR_EFFECTIVE).unwrap();
        assert_eq!(c.reason, reason::OBJECTED);
        assert!(crate::conditions::is_true(&s.conditions, types::STALLED));
        assert!(!crate::conditions::is_true(&s.conditions, types::READY));
    }

    #[test]
    fn a_binding_held_for_revocation_says_why_and_how_to_give_up() {
        let b = binding(
            serde_json::json!({"credentialVersion": 1, "nextRotation": "2026-03-01T00:00:00Z"}),
            serde_json::json!({}),
        );
        let problem = Problem {
            reason: reason::PROVIDER_FAILED,
            message: "cannot revoke its credentials at the provider: HTTP 500".into(),
        };
        let s = deleting_status(
            &b,
            b.status.clone().unwrap(),
            &problem,
            ts("2026-02-02T00:00:00Z"),
        );
        assert_eq!(s.next_rotation, None, "a deleting binding is never rotated");
        assert_eq!(s.credential_version, Some(1), "its state is kept");
        let ready = crate::conditions::find(&s.conditions, types::READY).unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", reason::PROVIDER_FAILED)
        );
        assert!(ready.message.contains("HTTP 500"), "{}", ready.message);
        assert!(
            ready.message.contains(super::super::FINALIZER),
            "{}",
            ready.message
        );
        let reconciling = crate::conditions::find(&s.conditions, types::RECONCILING).unwrap();
        assert_eq!(
            (reconciling.status.as_str(), reconciling.reason.as_str()),
            ("True", reason::DELETING)
        );
        assert!(!crate::conditions::is_true(
            &s.conditions,
            types::SUBPROCESSOR_EFFECTIVE
        ));
    }

    fn named(name: &str, tenant: &str, channel: &str, created: &str) -> ChannelBinding {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "herald.dev/v1alpha1", "kind": "ChannelBinding",
            "metadata": {"name": name, "namespace": "herald-system", "creationTimestamp": created},
            "spec": {"tenantRef": {"name": tenant}, "channel": channel,
                     "subprocessorRef": {"name": "carrier"},
                     "credential": {"secretRef": {"name": "src"}}},
        }))
        .unwrap()
    }

    #[test]
    fn the_oldest_binding_holds_a_channel_then_the_first_by_name() {
        let old = named("zeta", "acme", "sms", "2026-01-01T00:00:00Z");
        let same_second = named("alpha", "acme", "sms", "2026-01-02T00:00:00Z");
        let later = named("beta", "acme", "sms", "2026-01-02T00:00:00Z");
        let other_channel = named("a-email", "acme", "email", "2025-01-01T00:00:00Z");
        let other_tenant = named("a-globex", "globex", "sms", "2025-01-01T00:00:00Z");
        let all = [&later, &same_second, &old, &other_channel, &other_tenant];
        let holder_of = |b: &ChannelBinding| {
            held_by(b, all.iter().copied()).and_then(|h| h.metadata.name.clone())
        };
        assert_eq!(holder_of(&old), None, "the oldest holds the channel");
        assert_eq!(holder_of(&same_second).as_deref(), Some("zeta"));
        assert_eq!(holder_of(&later).as_deref(), Some("zeta"));
        assert_eq!(holder_of(&other_channel), None, "another channel");
        assert_eq!(holder_of(&other_tenant), None, "another tenant");

        // The holder being deleted: the next oldest (by name within the second) takes over.
        let mut deleting = old.clone();
        deleting.metadata.deletion_timestamp = Some(Time(ts("2026-01-03T00:00:00Z")));
        let all = [&later, &same_second, &deleting];
        assert_eq!(
            held_by(&same_second, all.iter().copied()).map(|h| h.name_any()),
            None
        );
        assert_eq!(
            held_by(&later, all.iter().copied())
                .map(|h| h.name_any())
                .as_deref(),
            Some("alpha")
        );
    }

    #[test]
    fn a_duplicate_binding_stalls_naming_the_holder() {
        let first = named("acme-sms", "acme", "sms", "2026-01-01T00:00:00Z");
        let b = named("acme-sms-2", "acme", "sms", "2026-01-02T00:00:00Z");
        let s = status(
            StatusInputs {
                binding: &b,
                state: ChannelBindingStatus::default(),
                tenant_found: true,
                verdict: &ok(),
                problem: Some(duplicate(&b, &first)),
                stall_after: SignedDuration::from_secs(60),
            },
            ts("2026-03-01T00:00:00Z"),
        );
        for (type_, want) in [
            (types::READY, "False"),
            (types::STALLED, "True"),
            (types::CREDENTIAL_CURRENT, "False"),
            (types::RECONCILING, "False"),
        ] {
            let c = crate::conditions::find(&s.conditions, type_).unwrap();
            assert_eq!(c.status, want, "{type_}");
            if want != "False" || type_ != types::RECONCILING {
                assert_eq!(c.reason, reason::DUPLICATE_BINDING, "{type_}");
                assert!(c.message.contains("acme-sms "), "{type_}: {}", c.message);
            }
        }
        assert_eq!(s.credential_version, None);

        // One that delivered a version before (both were Ready once): not "in use".
        let s = status(
            StatusInputs {
                binding: &b,
                state: ChannelBindingStatus {
                    credential_version: Some(2),
                    ..Default::default()
                },
                tenant_found: true,
                verdict: &ok(),
                problem: Some(duplicate(&b, &first)),
                stall_after: SignedDuration::from_secs(60),
            },
            ts("2026-03-01T00:00:00Z"),
        );
        let c = crate::conditions::find(&s.conditions, types::CREDENTIAL_CURRENT).unwrap();
        assert!(
            c.message.ends_with("its version 2 is mounted nowhere"),
            "{}",
            c.message
        );
    }

    #[test]
    fn the_outbound_guards_refusal_has_its_own_reason() {
        use crate::provider::ProviderError;
        let refused = ProviderError::Refused {
            op: "mint",
            refused: crate::outbound::Refused { class: "private" },
        };
        assert_eq!(provider_reason(&refused), reason::EGRESS_REFUSED);
        for e in [
            ProviderError::Status {
                op: "mint",
                code: 500,
            },
            ProviderError::Decode { op: "revoke" },
        ] {
            assert_eq!(provider_reason(&e), reason::PROVIDER_FAILED, "{e}");
        }
        assert!(is_provider_call_failure(reason::EGRESS_REFUSED));
        assert!(is_provider_call_failure(reason::PROVIDER_FAILED));
        assert!(!is_provider_call_failure(reason::CREDENTIAL_NOT_STORED));
    }
}
