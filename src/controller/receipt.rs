//! Writing a signed receipt (a deletion receipt, a fulfilment receipt): an immutable
//! ConfigMap in the control namespace holding the body, its sha256, the Ed25519
//! signature and the key that verifies it (`herald receipt verify`). Create-if-absent: a
//! restart that finds it already written keeps the first (Ed25519 signatures are
//! deterministic, so a rewrite would carry the same bytes anyway).

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

use super::{Context, Error};
use crate::evidence;

/// Creates the receipt `name` with `labels` (its kind and whose it is), written by
/// `controller` (the metrics label); `what` names it in an error.
pub async fn create_signed(
    ctx: &Context,
    controller: &str,
    name: &str,
    labels: Value,
    body: &str,
    digest: &str,
    what: &str,
) -> Result<(), Error> {
    let key = ctx
        .receipt_key
        .get_or_try_init(|| evidence::store::ensure(&ctx.client, &ctx.config.control_namespace))
        .await
        .map_err(Error::SigningKey)?;
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ctx.config.control_namespace);
    let cm: ConfigMap = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {"herald.dev/receipt-sha256": digest}
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
        Ok(_) => ctx.metrics.wrote(controller, "ConfigMap/receipt"),
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => return Err(Error::kube(format!("create {what} {name}"))(e)),
    }
    Ok(())
}
