//! Whether a Subprocessor is effective for a tenant: the one rule both the Subprocessor
//! controller (its `effective` count) and the ChannelBinding controller (whether the
//! channel reaches the senders) apply. Pure: the Subprocessor, the tenant, the region
//! catalog and the time in, a verdict with a reason out.

use k8s_openapi::jiff::{SignedDuration, Timestamp};

use crate::api::v1alpha1::conditions::reason;
use crate::api::v1alpha1::{
    Channel, EEA_COUNTRIES, Safeguard, Subprocessor, SubprocessorNotice, SubprocessorSpec, Tenant,
};
use crate::regions::{RegionCatalog, TransferStatus};

/// The notice period when `noticePeriodDays` is unset.
pub const DEFAULT_NOTICE_PERIOD_DAYS: i32 = 30;

/// The outcome for one tenant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Effective: the tenant's data may flow through it.
    pub effective: bool,
    /// A condition reason constant.
    pub reason: &'static str,
    /// A sentence for a person.
    pub message: String,
    /// When the verdict may change by the passing of time alone (a notice period's end).
    pub recheck_at: Option<Timestamp>,
}

impl Verdict {
    fn yes(message: impl Into<String>) -> Self {
        Self {
            effective: true,
            reason: reason::RECONCILED,
            message: message.into(),
            recheck_at: None,
        }
    }

    fn no(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            effective: false,
            reason,
            message: message.into(),
            recheck_at: None,
        }
    }

    /// Blocked for a reason only a person can change (as opposed to a notice on its way
    /// or a notice period that ends by itself).
    pub fn needs_a_person(&self) -> bool {
        !self.effective
            && !matches!(
                self.reason,
                reason::NOTICE_PERIOD_RUNNING
                    | reason::NOTICE_PENDING
                    | reason::NOTICE_FAILED
                    | reason::EGRESS_REFUSED
            )
    }
}

/// The reason an undelivered notice shows under, from its persisted `lastFailure`: the
/// outbound guard's refusal (the endpoint resolves to an address Herald never calls)
/// has its own, every other failure is the endpoint's.
pub fn notice_failure_reason(last_failure: &str) -> &'static str {
    if last_failure.starts_with(crate::outbound::REFUSED_PREFIX) {
        reason::EGRESS_REFUSED
    } else {
        reason::NOTICE_FAILED
    }
}

/// The notice period in days.
pub fn notice_period_days(spec: &SubprocessorSpec) -> i32 {
    spec.notice_period_days
        .unwrap_or(DEFAULT_NOTICE_PERIOD_DAYS)
        .max(1)
}

/// The notice period as a duration.
pub fn notice_period(spec: &SubprocessorSpec) -> SignedDuration {
    SignedDuration::from_hours(i64::from(notice_period_days(spec)) * 24)
}

/// The API's spelling of a channel (`whatsapp`, `google-business-messages`, …).
pub fn channel_str(c: Channel) -> String {
    serde_json::to_value(c)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// SHA-256 over the material terms customers are told about: sorted locations, the
/// safeguard, the purpose, sorted channels. The legal name, the DPA reference and the
/// notice period are not material (a rename or a re-signed DPA is no new processing).
pub fn material_hash(spec: &SubprocessorSpec) -> String {
    let mut locations = spec.locations.clone();
    locations.sort();
    locations.dedup();
    let mut channels: Vec<String> = spec.channels.iter().copied().map(channel_str).collect();
    channels.sort();
    channels.dedup();
    let doc = serde_json::json!({
        "locations": locations,
        "safeguard": spec.safeguard,
        "purpose": spec.purpose,
        "channels": channels,
    });
    crate::digest::sha256_hex(doc.to_string().as_bytes())
}

/// Checks that the safeguard covers every location. Admission already refuses EEA with
/// a non-EEA location and SCC/BCR without a TIA; this repeats those (the CRD may be an
/// older version) and adds what needs the region catalog: an Adequacy claim holds only
/// for countries the catalog lists as having an adequacy decision.
pub fn safeguard_fits(spec: &SubprocessorSpec, catalog: &RegionCatalog) -> Result<(), String> {
    let outside: Vec<&str> = spec
        .locations
        .iter()
        .map(String::as_str)
        .filter(|c| !EEA_COUNTRIES.contains(c))
        .collect();
    match spec.safeguard {
        Safeguard::Eea if outside.is_empty() => Ok(()),
        Safeguard::Eea => Err(format!(
            "safeguard EEA does not cover {}: outside the EEA",
            outside.join(", ")
        )),
        Safeguard::Adequacy => {
            let without: Vec<&str> = outside
                .into_iter()
                .filter(|c| {
                    !catalog
                        .0
                        .values()
                        .any(|r| r.country == *c && r.status == TransferStatus::Adequacy)
                })
                .collect();
            if without.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "safeguard Adequacy does not cover {}: the region catalog records no adequacy decision for it; use SCC with a transfer impact assessment",
                    without.join(", ")
                ))
            }
        }
        Safeguard::Scc | Safeguard::Bcr => {
            if spec
                .transfer_impact_assessment_ref
                .as_deref()
                .is_some_and(|t| !t.is_empty())
            {
                Ok(())
            } else {
                Err("safeguard SCC or BCR needs transferImpactAssessmentRef".to_owned())
            }
        }
    }
}

/// When the Subprocessor's current terms took effect: the recorded time if status holds
/// the current hash; the creation time if Herald never recorded a hash; otherwise the
/// change is not recorded yet, so it happened just now (`now`).
pub fn material_changed_at(sp: &Subprocessor, now: Timestamp) -> Timestamp {
    let hash = material_hash(&sp.spec);
    let status = sp.status.as_ref();
    match status.and_then(|s| s.material_hash.as_deref()) {
        Some(h) if h == hash => status
            .and_then(|s| s.material_changed_at.as_ref())
            .map(|t| t.0)
            .unwrap_or(now),
        Some(_) => now,
        None => sp
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0)
            .unwrap_or(now),
    }
}

/// Whether `tenant` must be notified of `sp`'s current terms before they apply to it:
/// the terms took effect after the tenant started using the platform (its creation).
pub fn notice_required(sp: &Subprocessor, tenant: &Tenant, now: Timestamp) -> bool {
    let started = tenant
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0)
        .unwrap_or(now);
    material_changed_at(sp, now) > started
}

/// Whether `tenant` objected to the Subprocessor named `name`.
pub fn objected(tenant: &Tenant, name: &str) -> bool {
    tenant
        .spec
        .subprocessor_objections
        .iter()
        .any(|o| o.name == name)
}

/// The verdict for `tenant` (and, for a ChannelBinding, its `channel`).
pub fn verdict(
    sp: Option<&Subprocessor>,
    sp_name: &str,
    tenant: &Tenant,
    channel: Option<Channel>,
    catalog: &RegionCatalog,
    now: Timestamp,
) -> Verdict {
    let Some(sp) = sp.filter(|s| s.metadata.deletion_timestamp.is_none()) else {
        return Verdict::no(
            reason::SUBPROCESSOR_NOT_FOUND,
            format!("Subprocessor {sp_name} does not exist"),
        );
    };
    if let Err(why) = safeguard_fits(&sp.spec, catalog) {
        return Verdict::no(
            reason::SAFEGUARD_INSUFFICIENT,
            format!("Subprocessor {sp_name}: {why}"),
        );
    }
    if let Some(c) = channel
        && !sp.spec.channels.contains(&c)
    {
        return Verdict::no(
            reason::CHANNEL_NOT_CARRIED,
            format!(
                "Subprocessor {sp_name} does not carry the channel {}",
                channel_str(c)
            ),
        );
    }
    let tenant_name = tenant.metadata.name.as_deref().unwrap_or_default();
    if objected(tenant, sp_name) {
        return Verdict::no(
            reason::OBJECTED,
            format!("Tenant {tenant_name} objected to Subprocessor {sp_name}"),
        );
    }
    if !notice_required(sp, tenant, now) {
        return Verdict::yes(format!(
            "Subprocessor {sp_name} is effective for Tenant {tenant_name}: its terms predate the tenant"
        ));
    }
    if tenant.spec.notifications.is_none() {
        return Verdict::no(
            reason::NOTIFICATIONS_MISSING,
            format!(
                "Subprocessor {sp_name} is new or changed and Tenant {tenant_name} has no spec.notifications to be told: it cannot become effective"
            ),
        );
    }
    let hash = material_hash(&sp.spec);
    let record = notice_record(tenant, sp_name).filter(|n| n.material_hash == hash);
    match record.and_then(|n| Some((n.delivered_at.as_ref()?, n.objection_window_ends.as_ref()?))) {
        Some((_, ends)) if now >= ends.0 => Verdict::yes(format!(
            "Subprocessor {sp_name} is effective for Tenant {tenant_name}: notified, and the objection window ended at {}",
            ends.0
        )),
        Some((delivered, ends)) => Verdict {
            recheck_at: Some(ends.0),
            ..Verdict::no(
                reason::NOTICE_PERIOD_RUNNING,
                format!(
                    "Tenant {tenant_name} was notified of Subprocessor {sp_name} at {}; it may object until {}",
                    delivered.0, ends.0
                ),
            )
        },
        None => match record.and_then(|n| n.last_failure.as_deref()) {
            Some(failure) => Verdict::no(
                notice_failure_reason(failure),
                format!(
                    "the notice of Subprocessor {sp_name} to Tenant {tenant_name} is not delivered yet ({failure}); retrying"
                ),
            ),
            None => Verdict::no(
                reason::NOTICE_PENDING,
                format!("Tenant {tenant_name} has not been notified of Subprocessor {sp_name} yet"),
            ),
        },
    }
}

/// The tenant's record of the notices of `sp_name` (kept in the Tenant's status).
pub fn notice_record<'a>(tenant: &'a Tenant, sp_name: &str) -> Option<&'a SubprocessorNotice> {
    tenant
        .status
        .as_ref()?
        .subprocessor_notices
        .iter()
        .find(|n| n.subprocessor == sp_name)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::OperatorConfig;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    pub fn sp(yaml_spec: &str, created: &str) -> Subprocessor {
        let mut s: Subprocessor = serde_yaml::from_str(&format!(
            "apiVersion: herald.dev/v1alpha1\nkind: Subprocessor\nmetadata: {{name: carrier, creationTimestamp: \"{created}\"}}\nspec:\n{yaml_spec}"
        ))
        .unwrap();
        s.status = None;
        s
    }

    pub const SMS: &str = "  legalName: Carrier AB\n  category: CommunicationChannel\n  purpose: SMS\n  locations: [SE, DE]\n  safeguard: EEA\n  dpa: {reference: D, signedAt: \"2024-01-01T00:00:00Z\"}\n  channels: [sms]\n  noticePeriodDays: 30\n";

    pub fn tenant(created: &str, objections: &[&str], notifications: bool) -> Tenant {
        let mut t: Tenant = serde_json::from_value(serde_json::json!({
            "apiVersion": "herald.dev/v1alpha1", "kind": "Tenant",
            "metadata": {"name": "acme", "creationTimestamp": created},
            "spec": {
                "displayName": "Acme", "contract": {"state": "Active"},
                "residency": {"regions": ["eu-central-1"]},
                "retentionPolicyRef": {"name": "p"},
                "subprocessorObjections": objections.iter().map(|o| serde_json::json!({"name": o})).collect::<Vec<_>>(),
            }
        }))
        .unwrap();
        if notifications {
            t.spec.notifications = Some(
                serde_json::from_value(serde_json::json!({
                    "webhookUrl": "https://acme.example/hook",
                    "signingSecretRef": {"name": "n", "key": "k"}
                }))
                .unwrap(),
            );
        }
        t
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn catalog() -> RegionCatalog {
        OperatorConfig::load(None).unwrap().regions
    }

    fn v(s: &Subprocessor, t: &Tenant, now: &str) -> Verdict {
        verdict(
            Some(s),
            "carrier",
            t,
            Some(Channel::Sms),
            &catalog(),
            ts(now),
        )
    }

    #[test]
    fn an_old_subprocessor_is_effective_for_a_newer_tenant() {
        let s = sp(SMS, "2025-01-01T00:00:00Z");
        let t = tenant("2026-01-01T00:00:00Z", &[], false);
        assert!(v(&s, &t, "2026-02-01T00:00:00Z").effective);
    }

    #[test]
    fn a_newer_subprocessor_waits_for_notice_and_period() {
        let mut s = sp(SMS, "2026-03-01T00:00:00Z");
        let mut t = tenant("2026-01-01T00:00:00Z", &[], true);
        assert_eq!(
            v(&s, &t, "2026-03-02T00:00:00Z").reason,
            reason::NOTICE_PENDING
        );
        let status = s.status.get_or_insert_default();
        status.material_hash = Some(material_hash(&s.spec));
        status.material_changed_at = Some(Time(ts("2026-03-01T00:00:00Z")));
        t.status.get_or_insert_default().subprocessor_notices = vec![SubprocessorNotice {
            subprocessor: "carrier".into(),
            material_hash: material_hash(&s.spec),
            idempotency_key: "k".into(),
            sent_at: Some(Time(ts("2026-03-01T00:01:00Z"))),
            delivered_at: Some(Time(ts("2026-03-01T00:01:00Z"))),
            objection_window_ends: Some(Time(ts("2026-03-31T00:01:00Z"))),
            ..SubprocessorNotice::default()
        }];
        let running = v(&s, &t, "2026-03-02T00:00:00Z");
        assert_eq!(running.reason, reason::NOTICE_PERIOD_RUNNING);
        assert_eq!(running.recheck_at, Some(ts("2026-03-31T00:01:00Z")));
        assert!(!running.needs_a_person());
        assert!(v(&s, &t, "2026-03-31T00:01:00Z").effective);
        // A material change makes the old notice not count.
        s.spec.locations.push("US".into());
        s.spec.safeguard = Safeguard::Scc;
        s.spec.transfer_impact_assessment_ref = Some("TIA".into());
        assert_eq!(
            v(&s, &t, "2026-04-02T00:00:00Z").reason,
            reason::NOTICE_PENDING
        );
    }

    #[test]
    fn objection_missing_channel_and_safeguard_block() {
        let s = sp(SMS, "2025-01-01T00:00:00Z");
        let t = tenant("2026-01-01T00:00:00Z", &["carrier"], false);
        let o = v(&s, &t, "2026-02-01T00:00:00Z");
        assert_eq!(o.reason, reason::OBJECTED);
        assert!(o.needs_a_person());
        let t = tenant("2026-01-01T00:00:00Z", &[], false);
        let email = verdict(
            Some(&s),
            "carrier",
            &t,
            Some(Channel::Email),
            &catalog(),
            ts("2026-02-01T00:00:00Z"),
        );
        assert_eq!(email.reason, reason::CHANNEL_NOT_CARRIED);
        let adequacy = sp(
            &SMS.replace("[SE, DE]", "[SE, US]")
                .replace("EEA", "Adequacy"),
            "2025-01-01T00:00:00Z",
        );
        assert_eq!(
            v(&adequacy, &t, "2026-02-01T00:00:00Z").reason,
            reason::SAFEGUARD_INSUFFICIENT
        );
        let swiss = sp(
            &SMS.replace("[SE, DE]", "[SE, CH]")
                .replace("EEA", "Adequacy"),
            "2025-01-01T00:00:00Z",
        );
        assert!(v(&swiss, &t, "2026-02-01T00:00:00Z").effective);
        let gone = verdict(
            None,
            "carrier",
            &t,
            None,
            &catalog(),
            ts("2026-02-01T00:00:00Z"),
        );
        assert_eq!(gone.reason, reason::SUBPROCESSOR_NOT_FOUND);
    }

    #[test]
    fn the_material_hash_ignores_order_and_immaterial_fields() {
        let a = sp(SMS, "2025-01-01T00:00:00Z");
        let mut b = a.clone();
        b.spec.locations.reverse();
        b.spec.legal_name = "Renamed AB".into();
        b.spec.notice_period_days = Some(60);
        assert_eq!(material_hash(&a.spec), material_hash(&b.spec));
        b.spec.purpose = "SMS and voice".into();
        assert_ne!(material_hash(&a.spec), material_hash(&b.spec));
    }
}
