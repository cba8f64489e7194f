//! The pure part of a breach's receipts: the proof that each tenant was told, kept as
//! evidence that outlives the Tenant (whose `status.breachNotices` goes with it).
//!
//! A breach receipt is an immutable ConfigMap in the control namespace, signed like a
//! deletion receipt (same key, same `herald-evidence-protection` policy: its name and
//! its `herald.dev/receipt-for` label make it evidence), holding one compact record per
//! tenant that acknowledged a notice: `[tenant, uid8, firstSent, firstAcknowledged]`,
//! the two times in seconds after awareAt, so that 10,000 tenants fit in a few hundred
//! kilobytes over a handful of objects (see the test that measures it). A record is
//! final once written (a first acknowledgement never changes), so receipts are only
//! ever added: each holds the records not yet in an earlier one, up to
//! [`MAX_PER_RECEIPT`].
//!
//! A receipt's name is derived from the tenants it records, not from a counter: two
//! writers (a restart between the create and the status write, two shards) that write
//! the same records write the same name, and a name never holds other records.

use std::collections::HashSet;

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;
use serde_json::{Value, json};

use crate::api::v1alpha1::{BreachNotice, BreachTenantNotice, Tenant};
use crate::evidence::BREACH_SCHEMA;

/// Records per receipt: 1,000 records of the longest tenant names (253 characters) stay
/// far below a ConfigMap's 1 MiB; of usual names, about 35 KiB.
pub const MAX_PER_RECEIPT: usize = 1000;
/// While notices are still going out, records wait at most this long to be written (a
/// breach of 10,000 tenants writes a receipt a minute, not one per reconcile).
pub const WRITE_AFTER: SignedDuration = SignedDuration::from_secs(60);
/// `app.kubernetes.io/component` of breach receipts.
pub const COMPONENT: &str = "breach-receipt";
/// The label naming the breach's uid: how its receipts are listed.
pub const BREACH_UID_LABEL: &str = "herald.dev/breach-uid";
/// Name prefix of breach receipts (the evidence policy knows it).
pub const NAME_PREFIX: &str = "breach-receipt-";
/// The columns of a record, as the receipt names them.
pub const COLUMNS: [&str; 4] = [
    "tenant",
    "tenantUid8",
    "firstSentSecondsAfterAwareAt",
    "firstAcknowledgedSecondsAfterAwareAt",
];

/// One tenant's record: who acknowledged, and when the first notice was sent and first
/// acknowledged, in seconds after awareAt.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    pub tenant: String,
    /// The first 8 hex digits of the Tenant's uid, as its deletion receipt's name carries
    /// them: a tenant deleted and created again under its name is told apart.
    pub uid8: String,
    pub sent: i64,
    pub acknowledged: i64,
}

/// The first 8 hex digits of a uid (dashes removed).
pub fn uid8(uid: &str) -> String {
    uid.chars().filter(|c| *c != '-').take(8).collect()
}

/// The records to write: tenants among `tenants` that acknowledged a notice of the
/// breach (`records`), that are not yet `written`, and that this process delivers to
/// (`ours`, when sharded). Sorted by tenant.
pub fn unwritten(
    bn: &BreachNotice,
    records: &[BreachTenantNotice],
    tenants: &[Tenant],
    written: &HashSet<String>,
    ours: Option<&HashSet<String>>,
) -> Vec<Entry> {
    let aware = bn.spec.aware_at.0;
    let mut out: Vec<Entry> = records
        .iter()
        .filter(|r| !written.contains(&r.tenant))
        .filter(|r| ours.is_none_or(|o| o.contains(&r.tenant)))
        .filter_map(|r| {
            let acked = r.first_acknowledged_at.as_ref()?.0;
            let sent = r.first_sent_at.as_ref().map_or(acked, |t| t.0);
            let tenant = tenants.iter().find(|t| t.name_any() == r.tenant)?;
            Some(Entry {
                tenant: r.tenant.clone(),
                uid8: uid8(tenant.metadata.uid.as_deref().unwrap_or_default()),
                sent: seconds_after(aware, sent),
                acknowledged: seconds_after(aware, acked),
            })
        })
        .collect();
    out.sort();
    out
}

fn seconds_after(from: Timestamp, at: Timestamp) -> i64 {
    at.as_second().saturating_sub(from.as_second())
}

/// Whether the `pending` records are to be written now: all of them once no notice is
/// in flight, a full receipt's worth, or once they waited [`WRITE_AFTER`] since `since`
/// (the last receipt written, or the first notice).
pub fn due(pending: usize, in_flight: bool, since: Option<Timestamp>, now: Timestamp) -> bool {
    pending > 0
        && (!in_flight
            || pending >= MAX_PER_RECEIPT
            || since.is_none_or(|s| now.duration_since(s) >= WRITE_AFTER))
}

/// A receipt to write: its name, body and the body's SHA-256.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    pub name: String,
    pub body: String,
    pub digest: String,
    pub tenants: Vec<String>,
}

/// The receipts that record `entries` (sorted), [`MAX_PER_RECEIPT`] each, written at
/// `now`.
pub fn receipts(
    bn: &BreachNotice,
    entries: &[Entry],
    now: Timestamp,
) -> Result<Vec<Receipt>, serde_json::Error> {
    entries
        .chunks(MAX_PER_RECEIPT)
        .map(|part| {
            let body = body(bn, part, now)?;
            Ok(Receipt {
                name: name(bn, part),
                digest: crate::digest::sha256_hex(body.as_bytes()),
                body,
                tenants: part.iter().map(|e| e.tenant.clone()).collect(),
            })
        })
        .collect()
}

/// `breach-receipt-<breach>-<breach uid8>-<digest of the tenants recorded>`, within a
/// ConfigMap name's 253 characters.
pub fn name(bn: &BreachNotice, part: &[Entry]) -> String {
    let who: String = part
        .iter()
        .map(|e| format!("{}/{}\n", e.tenant, e.uid8))
        .collect();
    let mut digest = crate::digest::sha256_hex(who.as_bytes());
    digest.truncate(10);
    let breach: String = bn.name_any().chars().take(200).collect();
    let breach = breach.trim_end_matches(['-', '.']);
    format!(
        "{NAME_PREFIX}{breach}-{}-{digest}",
        uid8(bn.uid().as_deref().unwrap_or("nouid"))
    )
}

/// The receipt's body: compact JSON (one short array per tenant).
pub fn body(
    bn: &BreachNotice,
    part: &[Entry],
    now: Timestamp,
) -> Result<String, serde_json::Error> {
    let deadline = super::decide::deadline(bn);
    let deadline_after = seconds_after(bn.spec.aware_at.0, deadline);
    let notified: Vec<Value> = part
        .iter()
        .map(|e| json!([e.tenant, e.uid8, e.sent, e.acknowledged]))
        .collect();
    serde_json::to_string(&json!({
        "schema": BREACH_SCHEMA,
        "breach": bn.name_any(),
        "namespace": bn.namespace().unwrap_or_default(),
        "breachUid": bn.uid().unwrap_or_default(),
        "supplementOf": bn.spec.supplement_of,
        "awareAt": bn.spec.aware_at.0.to_string(),
        "deadline": deadline.to_string(),
        "metDeadline": part.iter().all(|e| e.acknowledged <= deadline_after),
        "late": part.iter().filter(|e| e.acknowledged > deadline_after).count(),
        "writtenAt": Timestamp::from_second(now.as_second()).unwrap_or(now).to_string(),
        "operatorVersion": crate::VERSION,
        "columns": COLUMNS,
        "notified": notified,
    }))
}

/// The tenants a stored receipt body records (to know what is written after a
/// restart). Pure.
pub fn tenants_of(body: &str) -> Result<Vec<String>, String> {
    let doc: Value = serde_json::from_str(body).map_err(|e| format!("not JSON: {e}"))?;
    if doc.get("schema").and_then(Value::as_str) != Some(BREACH_SCHEMA) {
        return Err(format!("its schema is not {BREACH_SCHEMA}"));
    }
    doc.get("notified")
        .and_then(Value::as_array)
        .ok_or_else(|| "it has no notified records".to_owned())?
        .iter()
        .map(|r| {
            r.get(0)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| "a record names no tenant".to_owned())
        })
        .collect()
}

/// The value of `herald.dev/receipt-for` (what makes it evidence to the policy): the
/// breach's name when it fits a label value, else its start and a digest.
pub fn receipt_for(bn: &BreachNotice) -> String {
    let name = bn.name_any();
    if name.len() <= 63 {
        return name;
    }
    let mut digest = crate::digest::sha256_hex(name.as_bytes());
    digest.truncate(8);
    let start: String = name.chars().take(54).collect();
    format!("{}-{digest}", start.trim_end_matches(['-', '.']))
}

/// The labels of a breach's receipts.
pub fn labels(bn: &BreachNotice) -> Value {
    json!({
        crate::controller::tenant::erasure::RECEIPT_FOR_LABEL: receipt_for(bn),
        BREACH_UID_LABEL: bn.uid().unwrap_or_default(),
        "app.kubernetes.io/managed-by": "herald",
        "app.kubernetes.io/component": COMPONENT,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::breach::decide::tests::breach;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn tenant(name: &str, uid: &str) -> Tenant {
        let mut t: Tenant = serde_json::from_value(json!({
            "apiVersion": "herald.dev/v1alpha1", "kind": "Tenant",
            "metadata": {"name": name},
            "spec": {"displayName": name, "contract": {"state": "Active"},
                     "residency": {"regions": ["eu-central-1"]}, "retentionPolicyRef": {"name": "p"}}
        }))
        .unwrap();
        t.metadata.uid = Some(uid.into());
        t
    }

    fn acked(tenant: &str, sent: &str, ack: Option<&str>) -> BreachTenantNotice {
        BreachTenantNotice {
            breach: "b1".into(),
            tenant: tenant.into(),
            generation: 1,
            first_sent_at: Some(Time(ts(sent))),
            first_acknowledged_at: ack.map(|a| Time(ts(a))),
            ..Default::default()
        }
    }

    #[test]
    fn only_acknowledged_unwritten_tenants_of_this_shard_that_exist_are_recorded() {
        let b = breach(json!({"allTenants": true}), 1);
        let tenants = vec![
            tenant("a", "1b2c3d4e-0000"),
            tenant("b", "22222222-1111"),
            tenant("c", "33333333"),
        ];
        let records = vec![
            acked("b", "2026-03-02T08:00:05Z", Some("2026-03-02T08:00:07Z")),
            acked("a", "2026-03-02T08:00:05Z", Some("2026-03-04T09:00:00Z")),
            acked("c", "2026-03-02T08:00:05Z", None),
            acked("gone", "2026-03-02T08:00:05Z", Some("2026-03-02T08:00:06Z")),
        ];
        let none = HashSet::new();
        let all = unwritten(&b, &records, &tenants, &none, None);
        assert_eq!(
            all,
            vec![
                Entry {
                    tenant: "a".into(),
                    uid8: "1b2c3d4e".into(),
                    sent: 5,
                    acknowledged: 49 * 3600
                },
                Entry {
                    tenant: "b".into(),
                    uid8: "22222222".into(),
                    sent: 5,
                    acknowledged: 7
                },
            ]
        );
        let written = HashSet::from(["a".to_owned()]);
        assert_eq!(
            unwritten(&b, &records, &tenants, &written, None).len(),
            1,
            "a is written"
        );
        let ours = HashSet::from(["a".to_owned()]);
        assert_eq!(
            unwritten(&b, &records, &tenants, &none, Some(&ours)).len(),
            1,
            "b is another shard's"
        );
    }

    #[test]
    fn records_are_written_when_nothing_is_in_flight_a_receipt_is_full_or_they_waited() {
        let t0 = ts("2026-03-02T08:00:00Z");
        let later = |s| t0.checked_add(SignedDuration::from_secs(s)).unwrap();
        assert!(!due(0, false, None, t0), "nothing to write");
        assert!(due(1, false, Some(t0), t0), "nothing in flight");
        assert!(!due(10, true, Some(t0), later(59)));
        assert!(due(10, true, Some(t0), later(60)), "waited a minute");
        assert!(due(MAX_PER_RECEIPT, true, Some(t0), t0), "a full receipt");
    }

    #[test]
    fn a_receipt_is_named_by_its_tenants_and_says_which_met_the_deadline() {
        let b = breach(json!({"allTenants": true}), 1);
        let e = |t: &str, ack| Entry {
            tenant: t.into(),
            uid8: "1234abcd".into(),
            sent: 3,
            acknowledged: ack,
        };
        let now = ts("2026-03-04T09:00:00.5Z");
        let rs = receipts(&b, &[e("a", 7), e("b", 48 * 3600 + 1)], now).unwrap();
        assert_eq!(rs.len(), 1);
        let r = &rs[0];
        assert!(r.name.starts_with("breach-receipt-b1-u1-"), "{}", r.name);
        assert_eq!(r.digest, crate::digest::sha256_hex(r.body.as_bytes()));
        let doc: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(doc["schema"], BREACH_SCHEMA);
        assert_eq!(doc["metDeadline"], false);
        assert_eq!(doc["late"], 1);
        assert_eq!(doc["writtenAt"], "2026-03-04T09:00:00Z");
        assert_eq!(doc["notified"][0], json!(["a", "1234abcd", 3, 7]));
        assert_eq!(tenants_of(&r.body).unwrap(), vec!["a", "b"]);
        // Same tenants, same name (a second writer finds the first's); others, another.
        let again = receipts(&b, &[e("a", 9), e("b", 9)], now).unwrap();
        assert_eq!(again[0].name, r.name);
        assert_ne!(receipts(&b, &[e("a", 7)], now).unwrap()[0].name, r.name);
        assert!(tenants_of("{}").is_err());
        assert!(tenants_of("not json").is_err());
        // A long breach name still makes a valid ConfigMap name and label value.
        let mut long = b.clone();
        long.metadata.name = Some("x".repeat(253));
        let n = name(&long, &[e("a", 1)]);
        assert!(n.len() <= 253, "{}", n.len());
        assert!(receipt_for(&long).len() <= 63);
    }

    /// The size of the evidence of a breach that affects 10,000 tenants, measured:
    /// `cargo test --lib breach_receipts_of_10000 -- --nocapture` prints it.
    #[test]
    fn breach_receipts_of_10000_tenants_stay_small() {
        let b = breach(json!({"allTenants": true}), 1);
        // Names as a platform gives them (`customer-name-1234`, 18 characters).
        let entries: Vec<Entry> = (0..10_000)
            .map(|i| Entry {
                tenant: format!("customer-name-{i:04}"),
                uid8: format!("{:08x}", i * 7919),
                sent: 2 + i as i64 / 32 * 5,
                acknowledged: 3 + i as i64 / 32 * 5,
            })
            .collect();
        let rs = receipts(&b, &entries, ts("2026-03-02T09:00:00Z")).unwrap();
        let key = crate::evidence::SigningKey::from_pkcs8(
            &crate::evidence::SigningKey::generate_pkcs8().unwrap(),
        )
        .unwrap();
        // The ConfigMap as it is stored, signature and key included.
        let sizes: Vec<usize> = rs
            .iter()
            .map(|r| {
                serde_json::to_vec(&json!({
                    "apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": r.name, "labels": labels(&b),
                                 "annotations": {"herald.dev/receipt-sha256": r.digest}},
                    "immutable": true,
                    "data": {"receipt.json": r.body, "sha256": r.digest,
                             "signature": key.sign_b64(r.body.as_bytes()),
                             "keyId": key.key_id(), "publicKey": key.public_key_b64()}
                }))
                .unwrap()
                .len()
            })
            .collect();
        let total: usize = sizes.iter().sum();
        println!(
            "10,000 tenants: {} breach receipts, {total} bytes in all, the largest {} bytes",
            rs.len(),
            sizes.iter().max().unwrap()
        );
        assert_eq!(rs.len(), 10);
        assert!(total < 512 * 1024, "{total} bytes");
        assert!(sizes.iter().all(|s| *s < 100 * 1024), "{sizes:?}");
        // The longest names the API allows still fit one ConfigMap (1 MiB).
        let longest: Vec<Entry> = (0..MAX_PER_RECEIPT)
            .map(|i| Entry {
                tenant: format!("{i:04}{}", "x".repeat(249)),
                uid8: "ffffffff".into(),
                sent: 172_800,
                acknowledged: 172_800,
            })
            .collect();
        let r = &receipts(&b, &longest, ts("2026-03-02T09:00:00Z")).unwrap()[0];
        assert!(r.body.len() < 512 * 1024, "{}", r.body.len());
    }
}
