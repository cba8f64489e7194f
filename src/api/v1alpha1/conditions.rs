//! Condition types and reasons of every Herald kind: the vocabulary that status, events,
//! alerts and `kubectl wait --for=condition=…` share, so it lives in one place.
//!
//! Types are CamelCase nouns or adjectives that read as a yes/no question ("is it
//! `Ready`?"); reasons are CamelCase and say why, in a word a runbook can index. A unit
//! test checks both against the format the API server enforces for `metav1.Condition`.

// ---- Condition types ----------------------------------------------------------------

/// The summary of every other condition: `True` when the object is fully reconciled and
/// doing what its spec asks. kstatus readers (Argo CD, Flux, `kubectl wait`) read this one.
pub const READY: &str = "Ready";
/// Tenant: a signed DPA is on record. Without it no sender runs (no DPA, no processing).
pub const DPA_SIGNED: &str = "DPASigned";
/// Tenant: every allowed region is in the region catalog and permitted for the tenant, and
/// no pod of the tenant runs on a node outside them.
pub const RESIDENCY_COMPLIANT: &str = "ResidencyCompliant";
/// Tenant: the referenced RetentionPolicy exists and its periods were handed to the stack.
pub const RETENTION_APPLIED: &str = "RetentionApplied";
/// Tenant: every purge CronJob of a category the stack purges by age (message content,
/// delivery metadata, SMS/voice traffic, backups, logs) has succeeded within that
/// category's retention period. Not part of Ready: a failing purge is the platform's to
/// fix (alert on `herald_purge_overdue`), not something the tenant's manifest can change.
pub const PURGES_CURRENT: &str = "PurgesCurrent";
/// Tenant: the senders run with the desired replicas (`False` while suspended or terminated).
pub const SENDERS_AVAILABLE: &str = "SendersAvailable";
/// Tenant: after termination, everything of the tenant is erased and verified gone.
pub const ERASED: &str = "Erased";
/// ChannelBinding: the current credential version is in place and not due for rotation.
pub const CREDENTIAL_CURRENT: &str = "CredentialCurrent";
/// ChannelBinding: the referenced Subprocessor is effective for the binding's tenant.
/// Subprocessor: it is effective for every tenant it affects.
pub const SUBPROCESSOR_EFFECTIVE: &str = "SubprocessorEffective";
/// Subprocessor: every affected tenant has been sent the notice of this version.
pub const NOTICES_DELIVERED: &str = "NoticesDelivered";

/// kstatus: the operator is still converging (a rollout, a correction) and will finish
/// by itself. `False` once converged.
pub const RECONCILING: &str = "Reconciling";
/// kstatus: progress needs a person to change something (a DPA, a region, a missing
/// reference). `False` while nothing blocks.
pub const STALLED: &str = "Stalled";
/// The pause annotation (`herald.dev/paused`) is set: the operator leaves the object
/// alone. Absent otherwise.
pub const PAUSED: &str = "Paused";

/// Tenant: the signed deletion receipt was acknowledged by the customer's endpoint.
pub const RECEIPT_DELIVERED: &str = "ReceiptDelivered";
/// Tenant: the erasure deadline has passed and erasure is not verified complete.
pub const DELETION_OVERDUE: &str = "DeletionOverdue";
/// Tenant: every Secret it names (notifications.signingSecretRef,
/// onTermination.export.authSecretRef) carries `herald.dev/tenant=<tenant>`; one that
/// does not is never read (no notice or receipt is signed with it).
pub const SECRETS_OWNED: &str = "SecretsOwned";
/// Tenant: an erasure step keeps failing and is retried (abnormal-true, absent or False
/// while none is). Reason `PurgeFailing`: the purge Job failed, the receipt waits for it
/// (the data may still exist). `RevocationFailing`, `ReceiptDeliveryFailing`: erasure did
/// not wait for them; see status.erasure.failingSteps.
pub const ERASURE_STEP_FAILING: &str = "ErasureStepFailing";
/// BreachNotice: every affected tenant acknowledged the latest notice (the initial one
/// or the latest follow-up). `False` names the tenants not told yet and why.
pub const TENANTS_NOTIFIED: &str = "TenantsNotified";

/// DataSubjectRequest: its extension counts (judged once, when Herald first saw it).
/// Absent while there is no extension.
pub const EXTENSION_ACCEPTED: &str = "ExtensionAccepted";

/// Every condition type above, for tests and for code that iterates over them.
pub const TYPES: &[&str] = &[
    READY,
    DPA_SIGNED,
    RESIDENCY_COMPLIANT,
    RETENTION_APPLIED,
    PURGES_CURRENT,
    SENDERS_AVAILABLE,
    ERASED,
    CREDENTIAL_CURRENT,
    SUBPROCESSOR_EFFECTIVE,
    NOTICES_DELIVERED,
    RECONCILING,
    STALLED,
    PAUSED,
    DELETION_OVERDUE,
    RECEIPT_DELIVERED,
    SECRETS_OWNED,
    ERASURE_STEP_FAILING,
    TENANTS_NOTIFIED,
    EXTENSION_ACCEPTED,
];

/// Why a condition has its status. Stable: alerts and runbooks match on these.
pub mod reason {
    /// Everything the condition checks holds.
    pub const RECONCILED: &str = "Reconciled";
    /// The operator has not finished its first pass over the object.
    pub const PENDING: &str = "Pending";
    /// The object carries the pause annotation; the operator leaves it alone.
    pub const PAUSED: &str = "Paused";
    /// Work is in progress and will finish by itself (a rollout, a correction).
    pub const PROGRESSING: &str = "Progressing";
    /// Tenant: `spec.contract.dpa` names a signed DPA.
    pub const DPA_ON_RECORD: &str = "DPAOnRecord";
    /// Tenant: `spec.contract.dpa` is missing.
    pub const DPA_MISSING: &str = "DPAMissing";
    /// Tenant: a region is in the catalog but outside the EEA and not opted in
    /// (`allowAdequacy`), or in a country without an adequacy decision.
    pub const REGION_NOT_ALLOWED: &str = "RegionNotAllowed";
    /// Tenant: a pod ran on a node outside the allowed regions and was evicted.
    pub const POD_EVICTED: &str = "PodEvicted";
    /// Tenant: the referenced RetentionPolicy does not exist.
    pub const RETENTION_POLICY_NOT_FOUND: &str = "RetentionPolicyNotFound";
    /// Tenant: the RetentionPolicy asks for a period longer than the platform's; the
    /// platform's period applies for that category.
    pub const RETENTION_LONGER_THAN_PLATFORM: &str = "RetentionLongerThanPlatform";
    /// Tenant: a category's purge has not succeeded within its retention period.
    pub const PURGE_OVERDUE: &str = "PurgeOverdue";
    /// ChannelBinding: the binding's Tenant is terminated; its credentials are revoked
    /// and it is never rotated again.
    pub const TENANT_TERMINATED: &str = "TenantTerminated";
    /// Tenant: the contract is suspended, so no sender runs.
    pub const CONTRACT_SUSPENDED: &str = "ContractSuspended";
    /// Tenant: the contract is terminated; erasure runs or has run.
    pub const CONTRACT_TERMINATED: &str = "ContractTerminated";
    /// Tenant: erasure is in progress and the deadline has not passed.
    pub const ERASURE_IN_PROGRESS: &str = "ErasureInProgress";
    /// Tenant: terminated; erasure is scheduled before the deadline.
    pub const ERASURE_SCHEDULED: &str = "ErasureScheduled";
    /// Tenant: a namespace named `tenant-<name>` exists that Herald did not create (no
    /// `app.kubernetes.io/managed-by: herald` label and owner reference to this Tenant):
    /// Herald never adopts it, writes nothing in it and never deletes it.
    pub const NAMESPACE_NOT_OWNED: &str = "NamespaceNotOwned";
    /// Tenant: erasure found objects labelled for the tenant that it does not delete
    /// (a Namespace other than the tenant's own, any other cluster-scoped object, an
    /// object outside the configured `erasure.scope`): they
    /// are listed in the receipt's `foundNotErased`, for a person to decide.
    pub const OUTSIDE_ERASURE_SCOPE: &str = "OutsideErasureScope";
    /// Tenant: erased, verified, receipt written.
    pub const ERASED: &str = "Erased";
    /// Tenant: the customer acknowledged the deletion receipt.
    pub const DELIVERED: &str = "Delivered";
    /// Tenant: the deletion receipt's delivery is retried.
    pub const DELIVERY_PENDING: &str = "DeliveryPending";
    /// Tenant: no notification endpoint to deliver the receipt to.
    pub const NO_NOTIFICATION_ENDPOINT: &str = "NoNotificationEndpoint";
    /// Tenant: the deadline has not passed.
    pub const WITHIN_DEADLINE: &str = "WithinDeadline";
    /// Tenant: the erasure deadline passed before erasure was verified.
    pub const ERASURE_OVERDUE: &str = "ErasureOverdue";
    /// ChannelBinding: the referenced Tenant does not exist. DataSubjectRequest
    /// (`Stalled`): its Tenant does not exist and no deletion receipt signed by Herald
    /// shows it was erased (a typo, or the request applied before the Tenant); the
    /// subject Secret is kept and not read.
    pub const TENANT_NOT_FOUND: &str = "TenantNotFound";
    /// ChannelBinding: the referenced Subprocessor does not exist.
    pub const SUBPROCESSOR_NOT_FOUND: &str = "SubprocessorNotFound";
    /// ChannelBinding: the Subprocessor does not carry the binding's channel.
    pub const CHANNEL_NOT_CARRIED: &str = "ChannelNotCarried";
    /// The Subprocessor's notice period for the tenant has not passed yet.
    pub const NOTICE_PERIOD_RUNNING: &str = "NoticePeriodRunning";
    /// The tenant objected to the Subprocessor.
    pub const OBJECTED: &str = "Objected";
    /// ChannelBinding: the credential source (Secret or provider) is missing or unusable.
    pub const CREDENTIAL_SOURCE_INVALID: &str = "CredentialSourceInvalid";
    /// ChannelBinding: a rotation is in progress (new version rolling out).
    pub const ROTATING: &str = "Rotating";
    /// ChannelBinding: the provider refused or failed; the previous credential stays in use.
    pub const PROVIDER_FAILED: &str = "ProviderFailed";
    /// ChannelBinding: the tenant namespace refused the new credential Secret; nothing
    /// is minted until it accepts one, and the previous credential stays in use.
    pub const CREDENTIAL_NOT_STORED: &str = "CredentialNotStored";
    /// ChannelBinding: `spec.suspend` is true.
    pub const SUSPENDED: &str = "Suspended";
    /// ChannelBinding: being deleted; its credentials are revoked before it goes.
    pub const DELETING: &str = "Deleting";
    /// ChannelBinding (event): its credentials were revoked at the provider (tenant
    /// terminated, or the binding deleted).
    pub const CREDENTIALS_REVOKED: &str = "CredentialsRevoked";
    /// Subprocessor: a notice could not be delivered to a tenant's endpoint (retried).
    pub const NOTICE_FAILED: &str = "NoticeFailed";
    /// The Subprocessor's safeguard does not cover its locations (e.g. Adequacy claimed
    /// for a country without an adequacy decision in the region catalog).
    pub const SAFEGUARD_INSUFFICIENT: &str = "SafeguardInsufficient";
    /// The tenant has not yet received the notice of the Subprocessor's current terms.
    pub const NOTICE_PENDING: &str = "NoticePending";
    /// The tenant has no spec.notifications, so it cannot be notified and a new or
    /// changed Subprocessor never becomes effective for it.
    pub const NOTIFICATIONS_MISSING: &str = "NotificationsMissing";
    /// A Secret read on a tenant's behalf (a binding's source, the tenant's signing
    /// secret or export token) is not labelled `herald.dev/tenant=<tenant>`: nothing is
    /// copied, signed or sent with it until it is.
    pub const SOURCE_NOT_OWNED_BY_TENANT: &str = "SourceNotOwnedByTenant";
    /// A time computed from the spec (e.g. terminatedAt plus the erasure period) is
    /// outside the representable range.
    pub const TIME_OUT_OF_RANGE: &str = "TimeOutOfRange";
    /// The DPA's signedAt lies in the future: not signed yet.
    pub const DPA_SIGNED_IN_FUTURE: &str = "DPASignedInFuture";
    /// Tenant (`Paused=False`): the pause annotation is set, but the tenant is
    /// terminated, deleted, suspended, without a signed DPA or with a refused region,
    /// and a pause never holds termination, erasure or the gates that stop senders.
    pub const PAUSE_NOT_HELD: &str = "PauseNotHeld";
    /// Tenant (the export's outcome, an event), DataSubjectRequest (Stalled): the
    /// destination a data-plane Job would send the data to (the tenant's export URL)
    /// resolves to no address the outbound guard permits (private, link-local, loopback,
    /// documentation, …, or nothing): no Job is created.
    pub const DESTINATION_REFUSED: &str = "DestinationRefused";
    /// Tenant (Stalled): `spec.contract.terminatedAt` lies more than the allowed clock
    /// skew in the future. Herald does not act on it (senders keep their state, no
    /// erasure is scheduled from it) and it may be corrected until Herald accepts a date.
    pub const TERMINATED_AT_IN_FUTURE: &str = "TerminatedAtInFuture";
    /// ErasureStepFailing: the purge Job failed and is run again; the receipt waits.
    pub const PURGE_FAILING: &str = "PurgeFailing";
    /// ErasureStepFailing: a channel's credentials cannot be revoked at its provider
    /// (retried; erasure did not wait).
    pub const REVOCATION_FAILING: &str = "RevocationFailing";
    /// ErasureStepFailing: the customer's endpoint does not acknowledge the receipt
    /// (retried; erasure did not wait).
    pub const RECEIPT_DELIVERY_FAILING: &str = "ReceiptDeliveryFailing";
    /// A ChannelBinding names a provider (credential.providerApi.name) the operator
    /// configuration does not have: nothing is minted, revoked or sent anywhere.
    pub const PROVIDER_NOT_CONFIGURED: &str = "ProviderNotConfigured";
    /// ChannelBinding: an older binding holds the same tenant and channel; this one
    /// delivers nothing until that one is deleted.
    pub const DUPLICATE_BINDING: &str = "DuplicateBinding";
    /// The outbound guard refused the address a provider's or a tenant's endpoint
    /// resolved to (not global unicast): nothing was sent there.
    pub const EGRESS_REFUSED: &str = "EgressRefused";
    /// Tenant (`Erased`): erased, but kinds of the erasure scope could not be listed
    /// (the operator's RBAC), so nothing of them was verified: the receipt lists them
    /// in `unverifiedKinds`.
    pub const KINDS_UNVERIFIED: &str = "KindsUnverified";
    /// Tenant (`notErased`): erasure asked the API to delete an object in its scope and
    /// was refused (an admission policy, RBAC): recorded, not retried, a person must act.
    pub const DELETION_REFUSED: &str = "DeletionRefused";
    /// Tenant (`notErased`): an object in erasure's scope (or the tenant namespace) was
    /// still there `erasure.stuckAfterSeconds` after its deletion, held by a finalizer.
    pub const DELETION_STUCK: &str = "DeletionStuck";
    /// Tenant (`Erased`): erased by the deadline with a receipt, but objects it could
    /// not delete (`DeletionRefused`, `DeletionStuck`) remain: a person must delete them.
    pub const OBJECTS_HELD: &str = "ObjectsHeld";
    /// Tenant (event): objects labelled for the erased tenant appeared after its receipt
    /// (e.g. re-applied by a GitOps tool) and were deleted again.
    pub const ERASED_AGAIN: &str = "ErasedAgain";
    /// BreachNotice: an affected tenant's endpoint failed several attempts in a row (it
    /// is retried; the tenant is named so that a person can call them).
    pub const NOTICE_FAILING: &str = "NoticeFailing";
    /// BreachNotice: its affectedTenants selector matches no Tenant.
    pub const NO_TENANTS_AFFECTED: &str = "NoTenantsAffected";
    /// DataSubjectRequest: its subjectSecretRef names a Secret not labelled for the
    /// request's tenant (it is not read; nothing runs).
    pub const SUBJECT_SECRET_NOT_FOR_TENANT: &str = "SubjectSecretNotForTenant";
    /// DataSubjectRequest: the subject Secret does not exist or has no key `subject`.
    pub const SUBJECT_SECRET_MISSING: &str = "SubjectSecretMissing";
    /// DataSubjectRequest: an access or portability request for a tenant without an
    /// export endpoint (onTermination.export.url): there is nowhere to deliver the data.
    pub const NO_EXPORT_ENDPOINT: &str = "NoExportEndpoint";
    /// DataSubjectRequest: its Job failed without an answer (an exit code the image
    /// contract does not give, out of retries); it is run again.
    pub const DSR_JOB_FAILED: &str = "DsrJobFailed";
    /// DataSubjectRequest: answered, the receipt written and delivered, the subject
    /// Secret deleted.
    pub const ANSWERED: &str = "Answered";
    /// DataSubjectRequest: answered, the receipt written; the tenant's endpoint has not
    /// acknowledged it yet (retried).
    pub const RECEIPT_DELIVERY_PENDING: &str = "ReceiptDeliveryPending";
    /// DataSubjectRequest (`Stalled`): its subjectSecretRef names a Secret that is not
    /// a subject Secret (label `herald.dev/data-subject-request=<request>`, key
    /// `subject`): Herald leaves it alone, neither reads its value nor deletes it.
    pub const NOT_A_SUBJECT_SECRET: &str = "NotASubjectSecret";
    /// DataSubjectRequest (`ExtensionAccepted=False`): the extension first appeared
    /// after the first month ended; the deadline stays receivedAt + 1 month.
    pub const EXTENSION_TOO_LATE: &str = "ExtensionTooLate";
    /// DataSubjectRequest (`ExtensionAccepted=True`): the extension appeared, and the
    /// data subject was told of it, within the first month.
    pub const EXTENSION_WITHIN_FIRST_MONTH: &str = "ExtensionWithinFirstMonth";
    /// DataSubjectRequest (`Stalled`): receivedAt is more than 5 minutes in the future;
    /// no deadline is counted from it.
    pub const RECEIVED_AT_IN_FUTURE: &str = "ReceivedAtInFuture";
    /// Tenant (`Reconciling`): a step of its erasure failed with an error and is retried;
    /// the message names the step (`status.erasure.step`) and the error.
    pub const ERASURE_STEP_ERROR: &str = "ErasureStepError";
    /// Tenant, DataSubjectRequest (`Stalled`): a receipt at Herald's name is not the one
    /// Herald wrote (not signed by its key, or not the digest it recorded); it is never
    /// delivered and the erasure or answer is not claimed with it.
    pub const RECEIPT_CONFLICT: &str = "ReceiptConflict";
    /// Tenant, DataSubjectRequest (`Stalled`): the receipt signing key Secret cannot be
    /// read by the operator, so no receipt can be signed.
    pub const SIGNING_KEY_UNREADABLE: &str = "SigningKeyUnreadable";
    /// Tenant, DataSubjectRequest (`Stalled`): the signing key Secret holds no usable
    /// Ed25519 key.
    pub const SIGNING_KEY_UNUSABLE: &str = "SigningKeyUnusable";
    /// Tenant, DataSubjectRequest (`Stalled`): the signing key Secret was not generated
    /// by Herald (no marker); nothing is signed with it.
    pub const SIGNING_KEY_NOT_HERALDS: &str = "SigningKeyNotHeralds";
    /// Tenant, DataSubjectRequest (`Stalled`): the published keys hold another public
    /// key under Herald's key id.
    pub const PUBLISHED_KEY_MISMATCH: &str = "PublishedKeyMismatch";
    /// BreachNotice (`Stalled`): spec.authorityNotifiedAt lies more than 5 minutes in the
    /// future; the authority's 72-hour deadline stays exported and alerted on.
    pub const AUTHORITY_NOTIFIED_AT_IN_FUTURE: &str = "AuthorityNotifiedAtInFuture";
    /// BreachNotice (`Stalled`): spec.supplementOf names no BreachNotice of the control
    /// namespace (its notices are sent all the same).
    pub const SUPPLEMENT_OF_NOT_FOUND: &str = "SupplementOfNotFound";
    /// BreachNotice (`Stalled`): affectedTenants.selector selects a label outside
    /// `platform.herald.dev/` (admission refuses that; one admitted before is not used).
    pub const SELECTOR_NOT_PLATFORM_OWNED: &str = "SelectorNotPlatformOwned";

    /// Every reason above, for tests and for code that iterates over them.
    pub const ALL: &[&str] = &[
        RECONCILED,
        PROGRESSING,
        DPA_ON_RECORD,
        PENDING,
        PAUSED,
        DPA_MISSING,
        REGION_NOT_ALLOWED,
        POD_EVICTED,
        RETENTION_POLICY_NOT_FOUND,
        RETENTION_LONGER_THAN_PLATFORM,
        PURGE_OVERDUE,
        TENANT_TERMINATED,
        CONTRACT_SUSPENDED,
        CONTRACT_TERMINATED,
        ERASURE_IN_PROGRESS,
        ERASURE_SCHEDULED,
        NAMESPACE_NOT_OWNED,
        OUTSIDE_ERASURE_SCOPE,
        ERASED,
        WITHIN_DEADLINE,
        DELIVERED,
        DELIVERY_PENDING,
        NO_NOTIFICATION_ENDPOINT,
        ERASURE_OVERDUE,
        TENANT_NOT_FOUND,
        SUBPROCESSOR_NOT_FOUND,
        CHANNEL_NOT_CARRIED,
        NOTICE_PERIOD_RUNNING,
        OBJECTED,
        CREDENTIAL_SOURCE_INVALID,
        ROTATING,
        PROVIDER_FAILED,
        CREDENTIAL_NOT_STORED,
        SUSPENDED,
        DELETING,
        CREDENTIALS_REVOKED,
        NOTICE_FAILED,
        SAFEGUARD_INSUFFICIENT,
        NOTICE_PENDING,
        NOTIFICATIONS_MISSING,
        SOURCE_NOT_OWNED_BY_TENANT,
        TIME_OUT_OF_RANGE,
        DPA_SIGNED_IN_FUTURE,
        PAUSE_NOT_HELD,
        TERMINATED_AT_IN_FUTURE,
        DESTINATION_REFUSED,
        PURGE_FAILING,
        REVOCATION_FAILING,
        RECEIPT_DELIVERY_FAILING,
        PROVIDER_NOT_CONFIGURED,
        DUPLICATE_BINDING,
        EGRESS_REFUSED,
        KINDS_UNVERIFIED,
        DELETION_REFUSED,
        DELETION_STUCK,
        OBJECTS_HELD,
        ERASED_AGAIN,
        NOTICE_FAILING,
        NO_TENANTS_AFFECTED,
        SUBJECT_SECRET_NOT_FOR_TENANT,
        SUBJECT_SECRET_MISSING,
        NO_EXPORT_ENDPOINT,
        DSR_JOB_FAILED,
        ANSWERED,
        RECEIPT_DELIVERY_PENDING,
        NOT_A_SUBJECT_SECRET,
        EXTENSION_TOO_LATE,
        EXTENSION_WITHIN_FIRST_MONTH,
        RECEIVED_AT_IN_FUTURE,
        ERASURE_STEP_ERROR,
        RECEIPT_CONFLICT,
        SIGNING_KEY_UNREADABLE,
        SIGNING_KEY_UNUSABLE,
        SIGNING_KEY_NOT_HERALDS,
        PUBLISHED_KEY_MISMATCH,
        AUTHORITY_NOTIFIED_AT_IN_FUTURE,
        SUPPLEMENT_OF_NOT_FOUND,
        SELECTOR_NOT_PLATFORM_OWNED,
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The API server's rule for `metav1.Condition.reason` (and, without the domain prefix,
    /// for `type`): CamelCase letters, digits and `_`, starting with a letter.
    fn is_camel_case_name(s: &str) -> bool {
        let mut chars = s.chars();
        chars.next().is_some_and(|c| c.is_ascii_uppercase())
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
            && s.len() <= 316
    }

    #[test]
    fn types_and_reasons_have_the_condition_format_and_are_unique() {
        for list in [TYPES, reason::ALL] {
            for name in list {
                assert!(
                    is_camel_case_name(name),
                    "{name} is not a CamelCase condition name"
                );
            }
            let unique: std::collections::BTreeSet<_> = list.iter().collect();
            assert_eq!(unique.len(), list.len(), "duplicate name in {list:?}");
        }
    }

    #[test]
    fn docs_conditions_md_documents_every_type_and_reason() {
        let doc = include_str!("../../../docs/conditions.md");
        for name in TYPES.iter().chain(reason::ALL) {
            assert!(
                doc.contains(&format!("`{name}`")),
                "docs/conditions.md lacks `{name}`"
            );
        }
    }
}
