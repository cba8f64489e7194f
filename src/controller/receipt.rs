//! Writing a signed receipt (a deletion receipt, a fulfilment receipt): an immutable
//! ConfigMap in the control namespace holding the body, its sha256, the Ed25519
//! signature and the key that verifies it (`herald receipt verify`).
//!
//! Create-if-absent, and a receipt found at the name is trusted only when Herald can
//! show it wrote it ([`judge_existing`]): the admission policy lets no one else create a
//! receipt-named ConfigMap, but a planted one (made while the policy was absent) must
//! never be delivered as Herald's proof, nor end an erasure.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use tracing::warn;

use super::{Context, Error};
use crate::evidence::{self, SigningKey};

/// Reason of the `Stalled` condition and of events when a receipt at Herald's name is
/// not Herald's, or not the one it recorded.
pub const REASON_CONFLICT: &str = crate::api::v1alpha1::conditions::reason::RECEIPT_CONFLICT;

/// The annotation holding the digest Herald computed for a receipt it wrote (what a
/// receipt is held to when no status recorded it any more: a deleted Tenant's).
pub const DIGEST_ANNOTATION: &str = "herald.dev/receipt-sha256";

/// The signing key, generated (and checked, published) on first use in this process;
/// `run` asks for it at start, so a receipt never waits on it.
pub async fn signing_key(ctx: &Context) -> Result<&SigningKey, Error> {
    let result = ctx
        .receipt_key
        .get_or_try_init(|| evidence::store::ensure(&ctx.client, &ctx.config.control_namespace))
        .await;
    ctx.metrics.set_signing_key_usable(result.is_ok());
    result.map_err(Error::SigningKey)
}

/// Creates the receipt `name` with `labels` (its kind and whose it is), written by
/// `controller` (the metrics label); `what` names it in an error. Returns the digest
/// of the receipt that stands: `digest`, or that of the receipt Herald wrote at this
/// name in an earlier pass (a crash between the create and the status write, whose body
/// may differ in a field that moved since, such as a retry count).
pub async fn create_signed(
    ctx: &Context,
    controller: &str,
    name: &str,
    labels: Value,
    body: &str,
    digest: &str,
    what: &str,
) -> Result<String, Error> {
    let key = signing_key(ctx).await?;
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ctx.config.control_namespace);
    let cm: ConfigMap = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {DIGEST_ANNOTATION: digest}
        },
        "immutable": true,
        // The signature covers the body's bytes; keyId names the published public key
        // that verifies it.
        "data": {
            evidence::BODY_KEY: body, evidence::DIGEST_KEY: digest,
            evidence::SIGNATURE_KEY: key.sign_b64(body.as_bytes()),
            evidence::KEY_ID_KEY: key.key_id(), evidence::PUBLIC_KEY_KEY: key.public_key_b64(),
        }
    }))
    .map_err(|source| Error::Build {
        what: "receipt",
        source,
    })?;
    match api.create(&PostParams::default(), &cm).await {
        Ok(_) => {
            ctx.metrics.wrote(controller, "ConfigMap/receipt");
            Ok(digest.to_owned())
        }
        Err(kube::Error::Api(s)) if s.code == 409 => {
            let existing = api
                .get(name)
                .await
                .map_err(Error::kube(format!("get {what} {name}")))?;
            judge_existing(&data(&existing), key, None)
                .map_err(|why| conflict(ctx, controller, name, what, why))
        }
        Err(e) => Err(Error::kube(format!("create {what} {name}"))(e)),
    }
}

/// The body and digest of the stored receipt `name`, checked to be the one Herald wrote
/// and recorded (`recorded`: the digest in status): nothing else is ever delivered.
pub async fn read_own(
    ctx: &Context,
    controller: &str,
    name: &str,
    recorded: Option<&str>,
    what: &str,
) -> Result<(String, String), Error> {
    let key = signing_key(ctx).await?;
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ctx.config.control_namespace);
    let cm = api
        .get(name)
        .await
        .map_err(Error::kube(format!("get {what} {name}")))?;
    let data = data(&cm);
    let digest = judge_existing(&data, key, recorded)
        .map_err(|why| conflict(ctx, controller, name, what, why))?;
    Ok((
        data.get(evidence::BODY_KEY).cloned().unwrap_or_default(),
        digest,
    ))
}

fn data(cm: &ConfigMap) -> BTreeMap<String, String> {
    cm.data.clone().unwrap_or_default()
}

/// Counts, logs and builds the conflict error (the event and the condition are the
/// caller's: they know the object).
fn conflict(ctx: &Context, controller: &str, name: &str, what: &str, why: String) -> Error {
    ctx.metrics.receipt_conflict(controller);
    warn!(receipt = %name, reason = REASON_CONFLICT, "{what} {name} is not the one Herald wrote: {why}");
    Error::ReceiptConflict {
        name: name.to_owned(),
        why,
    }
}

/// Whether a stored receipt is Herald's: intact, signed by Herald's own key (which only
/// Herald holds: a valid signature means Herald wrote it), and, when a digest was
/// recorded, that one. Its digest, or why not. Pure.
pub fn judge_existing(
    data: &BTreeMap<String, String>,
    key: &SigningKey,
    recorded: Option<&str>,
) -> Result<String, String> {
    let get = |k: &str| data.get(k).cloned().unwrap_or_default();
    let receipt = evidence::SignedReceipt {
        body: get(evidence::BODY_KEY),
        sha256: get(evidence::DIGEST_KEY),
        signature: get(evidence::SIGNATURE_KEY),
        key_id: get(evidence::KEY_ID_KEY),
        public_key: get(evidence::PUBLIC_KEY_KEY),
    };
    let ours = BTreeMap::from([(key.key_id().to_owned(), key.public_key_b64())]);
    evidence::verify(&receipt, Some(&ours))
        .map_err(|e| format!("it does not verify with Herald's key {}: {e}", key.key_id()))?;
    match recorded {
        Some(r) if r != receipt.sha256 => Err(format!(
            "its sha256 {} is not the {r} Herald recorded",
            receipt.sha256
        )),
        _ => Ok(receipt.sha256),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::from_pkcs8(&SigningKey::generate_pkcs8().unwrap()).unwrap()
    }

    fn stored(k: &SigningKey, body: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            (evidence::BODY_KEY.into(), body.into()),
            (
                evidence::DIGEST_KEY.into(),
                crate::digest::sha256_hex(body.as_bytes()),
            ),
            (evidence::SIGNATURE_KEY.into(), k.sign_b64(body.as_bytes())),
            (evidence::KEY_ID_KEY.into(), k.key_id().into()),
            (evidence::PUBLIC_KEY_KEY.into(), k.public_key_b64()),
        ])
    }

    #[test]
    fn heralds_own_receipt_is_kept_with_its_digest() {
        let k = key();
        let data = stored(&k, r#"{"tenant":"acme","attempts":2}"#);
        let digest = data[evidence::DIGEST_KEY].clone();
        // Written by an earlier pass whose body differed: still Herald's, adopted.
        assert_eq!(judge_existing(&data, &k, None), Ok(digest.clone()));
        assert_eq!(judge_existing(&data, &k, Some(&digest)), Ok(digest));
    }

    #[test]
    fn a_planted_receipt_is_a_conflict() {
        let (herald, forger) = (key(), key());
        // Signed by a key of the forger's own: never Herald's.
        let forged = stored(&forger, r#"{"tenant":"acme"}"#);
        let why = judge_existing(&forged, &herald, None).unwrap_err();
        assert!(why.contains(herald.key_id()), "{why}");
        // Unsigned, or with a body that does not match its digest.
        let mut unsigned = stored(&herald, "{}");
        unsigned.remove(evidence::SIGNATURE_KEY);
        assert!(judge_existing(&unsigned, &herald, None).is_err());
        let mut edited = stored(&herald, r#"{"deleted":3}"#);
        edited.insert(evidence::BODY_KEY.into(), r#"{"deleted":4}"#.into());
        assert!(judge_existing(&edited, &herald, None).is_err());
        assert!(judge_existing(&BTreeMap::new(), &herald, None).is_err());
    }

    #[test]
    fn another_of_heralds_receipts_than_the_recorded_one_is_a_conflict() {
        let k = key();
        let data = stored(&k, r#"{"tenant":"acme"}"#);
        let why = judge_existing(&data, &k, Some("0123")).unwrap_err();
        assert!(why.contains("0123"), "{why}");
    }
}
