//! The operator's source-hash key: 32 bytes from the OS CSPRNG, generated once and kept
//! in the Secret [`SECRET`] in the control namespace (never labelled for a tenant, so no
//! erasure takes it), so every replica and every restart hashes alike. It keys the
//! binding's `status.sourceHash` (see [`super::decide::source_hash`]).

use std::sync::OnceLock;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta, PostParams};

use crate::controller::{Context, Error, MANAGED_BY};

/// The Secret holding the key, in the control namespace.
pub const SECRET: &str = "herald-source-hash-key";
/// Its data key.
const KEY: &str = "key";

/// Read once per process: the key never changes (a new one would look like a change of
/// every source and rotate every binding).
static CACHE: OnceLock<Vec<u8>> = OnceLock::new();

/// Why there is no key. Never carries the key.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading or creating the Secret failed.
    #[error(transparent)]
    Kube(#[from] Error),
    /// The OS has no entropy source: no key rather than a guessable one.
    #[error("the OS random source failed; no source-hash key generated")]
    Entropy,
}

/// The key: cached, else read from its Secret, else generated and stored (when two
/// replicas race, the loser reads the winner's).
pub async fn get(ctx: &Context) -> Result<Vec<u8>, KeyError> {
    if let Some(k) = CACHE.get() {
        return Ok(k.clone());
    }
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ctx.config.control_namespace);
    let key = match read(&api).await? {
        Some(k) => k,
        None => {
            let mut bytes = vec![0u8; 32];
            getrandom::fill(&mut bytes).map_err(|_| KeyError::Entropy)?;
            let secret = Secret {
                metadata: ObjectMeta {
                    name: Some(SECRET.into()),
                    labels: Some(
                        [(
                            "app.kubernetes.io/managed-by".to_owned(),
                            MANAGED_BY.to_owned(),
                        )]
                        .into(),
                    ),
                    ..Default::default()
                },
                immutable: Some(true),
                data: Some([(KEY.to_owned(), ByteString(bytes.clone()))].into()),
                ..Default::default()
            };
            match api.create(&PostParams::default(), &secret).await {
                Ok(_) => {
                    ctx.metrics.wrote("channelbinding", "Secret");
                    bytes
                }
                Err(kube::Error::Api(s)) if s.code == 409 => read(&api)
                    .await?
                    .ok_or_else(|| Error::MissingName)
                    .map_err(KeyError::Kube)?,
                Err(e) => return Err(Error::kube(format!("create Secret {SECRET}"))(e).into()),
            }
        }
    };
    Ok(CACHE.get_or_init(|| key).clone())
}

async fn read(api: &Api<Secret>) -> Result<Option<Vec<u8>>, Error> {
    Ok(api
        .get_opt(SECRET)
        .await
        .map_err(Error::kube(format!("get Secret {SECRET}")))?
        .and_then(|s| s.data)
        .and_then(|d| d.get(KEY).map(|v| v.0.clone()))
        .filter(|k| !k.is_empty()))
}
