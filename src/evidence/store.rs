//! Where the receipt signing key lives: generated once into a Secret of the control
//! namespace, its public half published in a ConfigMap beside the receipts.
//!
//! Create-if-absent on both, so two replicas starting at once (or a restart) end with one
//! key: the loser of the create reads the winner's. The key is never replaced by Herald:
//! receipts already written name it, and the admission policy
//! (`deploy/admission/receipt-protection.yaml`) refuses changes to published keys.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};

use super::{KeyError, SigningKey};

/// The Secret (control namespace) holding the private key.
pub const KEY_SECRET: &str = "herald-receipt-signing-key";
/// Its data key: the PKCS#8 document.
pub const KEY_SECRET_KEY: &str = "ed25519.pkcs8";
/// The ConfigMap (control namespace) publishing keyId → public key (base64).
pub const PUBLIC_KEYS: &str = "herald-receipt-public-keys";

/// Why the signing key is not available.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("Kubernetes API request failed: {action}")]
    Kube {
        action: &'static str,
        #[source]
        source: kube::Error,
    },
    #[error("the signing key cannot be used")]
    Key(#[source] KeyError),
    #[error("the Secret {KEY_SECRET} has no key {KEY_SECRET_KEY}")]
    Empty,
}

fn kube(action: &'static str) -> impl FnOnce(kube::Error) -> StoreError {
    move |source| StoreError::Kube { action, source }
}

/// The receipt signing key of namespace `ns`, generated on first use, and published.
pub async fn ensure(client: &kube::Client, ns: &str) -> Result<SigningKey, StoreError> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let pkcs8 = match secrets
        .get_opt(KEY_SECRET)
        .await
        .map_err(kube("get the receipt signing key"))?
    {
        Some(s) => stored(&s)?,
        None => {
            let pkcs8 = SigningKey::generate_pkcs8().map_err(StoreError::Key)?;
            let secret = Secret {
                metadata: kube::api::ObjectMeta {
                    name: Some(KEY_SECRET.into()),
                    labels: Some(BTreeMap::from([
                        ("app.kubernetes.io/managed-by".into(), "herald".into()),
                        (
                            "app.kubernetes.io/component".into(),
                            "receipt-signing-key".into(),
                        ),
                    ])),
                    ..Default::default()
                },
                immutable: Some(true),
                data: Some(BTreeMap::from([(
                    KEY_SECRET_KEY.into(),
                    ByteString(pkcs8.clone()),
                )])),
                ..Default::default()
            };
            match secrets.create(&PostParams::default(), &secret).await {
                Ok(_) => pkcs8,
                // Another replica won the race: use its key.
                Err(kube::Error::Api(s)) if s.code == 409 => stored(
                    &secrets
                        .get(KEY_SECRET)
                        .await
                        .map_err(kube("get the receipt signing key"))?,
                )?,
                Err(e) => return Err(kube("create the receipt signing key")(e)),
            }
        }
    };
    let key = SigningKey::from_pkcs8(&pkcs8).map_err(StoreError::Key)?;
    publish(client, ns, &key).await?;
    Ok(key)
}

fn stored(secret: &Secret) -> Result<Vec<u8>, StoreError> {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(KEY_SECRET_KEY))
        .map(|b| b.0.clone())
        .ok_or(StoreError::Empty)
}

/// Adds the key to the published keys unless it is there (a merge patch adds one entry
/// and keeps the others: keys of earlier receipts stay published).
async fn publish(client: &kube::Client, ns: &str, key: &SigningKey) -> Result<(), StoreError> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let current = api
        .get_opt(PUBLIC_KEYS)
        .await
        .map_err(kube("get the published receipt keys"))?;
    let public = key.public_key_b64();
    match current {
        Some(cm) => {
            if cm.data.as_ref().and_then(|d| d.get(key.key_id())) == Some(&public) {
                return Ok(());
            }
            let patch = serde_json::json!({"data": {key.key_id(): public}});
            api.patch(PUBLIC_KEYS, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(kube("publish the receipt public key"))?;
        }
        None => {
            let cm = ConfigMap {
                metadata: kube::api::ObjectMeta {
                    name: Some(PUBLIC_KEYS.into()),
                    labels: Some(BTreeMap::from([
                        ("app.kubernetes.io/managed-by".into(), "herald".into()),
                        (
                            "app.kubernetes.io/component".into(),
                            "receipt-public-keys".into(),
                        ),
                    ])),
                    ..Default::default()
                },
                data: Some(BTreeMap::from([(key.key_id().to_owned(), public)])),
                ..Default::default()
            };
            match api.create(&PostParams::default(), &cm).await {
                Ok(_) => {}
                // Created meanwhile by another replica with the same key (there is one).
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => return Err(kube("publish the receipt public key")(e)),
            }
        }
    }
    Ok(())
}
