//! The provider credential API client: mints a channel credential for a tenant and
//! revokes it again, over HTTPS (reqwest on rustls with ring), with timeouts and capped
//! exponential backoff.
//!
//! # The provider contract
//!
//! A ChannelBinding's `credential.providerApi.url` is the base URL of an API that
//! implements two calls, both authenticated with `Authorization: Bearer <token>`, the
//! token being the key `authSecretRef` names in the operator's namespace:
//!
//! - `POST {url}/credentials` with the JSON body `{"tenant": "<tenant>", "channel":
//!   "<channel>"}` and an `Idempotency-Key` header (the same for every retry of one
//!   rotation, so a retried request whose first answer was lost mints nothing twice:
//!   a provider answers a key it has seen with the credential it minted for it).
//!   Answers `201 Created` (or `200 OK`) with `{"id": "<credential id>", "secret":
//!   "<credential>"}`. The id is not secret: Herald keeps it in the binding's status to
//!   revoke the credential later. The secret goes only into the tenant's Secret.
//! - `DELETE {url}/credentials/{id}`: revokes. `204 No Content` (or any 2xx), or `404
//!   Not Found` when the credential is already gone: both mean "revoked".
//!
//! Transport errors, `429` and `5xx` are retried (three attempts in a call, 250 ms
//! doubling to at most 2 s; the reconcile retries again later with its own backoff);
//! any other status is final for that call.
//!
//! # No secret in errors
//!
//! A provider that fails may echo the request (and so the token) in its body, and
//! reqwest's errors name the URL. So [`ProviderError`] carries only the operation, the
//! HTTP status code or a transport class (`timeout`, `connect`, …), never a body or a
//! reqwest error as its source. [`Minted`]'s `Debug` redacts the secret.

use std::time::Duration;

use reqwest::StatusCode;
use serde::Deserialize;

/// Attempts per call before the error goes back to the reconcile.
const ATTEMPTS: u32 = 3;
/// The first retry's delay; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// The longest delay between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// The largest mint answer read (an id and a credential are a few hundred bytes): a
/// provider that answers more is not read further, so a broken or hostile endpoint
/// cannot make the operator hold an unbounded body in memory.
pub const MAX_MINT_BODY: usize = 64 * 1024;

/// The delay before attempt `n` (1-based; attempt 1 has none): capped exponential.
pub fn backoff(attempt: u32) -> Duration {
    let doublings = attempt.saturating_sub(2).min(16);
    FIRST_BACKOFF
        .saturating_mul(1u32 << doublings)
        .min(MAX_BACKOFF)
}

/// A freshly minted credential.
#[derive(Clone, PartialEq, Eq)]
pub struct Minted {
    /// The provider's id of the credential (not secret).
    pub id: String,
    /// The credential itself: only ever written into the tenant's Secret.
    pub secret: String,
}

impl std::fmt::Debug for Minted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Minted")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// What went wrong talking to the provider. Carries no body and no URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// The provider answered with an unexpected status.
    #[error("provider {op} answered HTTP {code}")]
    Status {
        /// `mint` or `revoke`.
        op: &'static str,
        /// The HTTP status code.
        code: u16,
    },
    /// No answer: timeout, refused connection, TLS failure, ….
    #[error("provider {op} failed: {class}")]
    Transport {
        /// `mint` or `revoke`.
        op: &'static str,
        /// `timeout`, `connect`, `request` or `body`.
        class: &'static str,
    },
    /// The outbound guard refused the provider's address (see [`crate::outbound`]):
    /// nothing was sent.
    #[error("provider {op} not contacted: {refused}")]
    Refused {
        /// `mint` or `revoke`.
        op: &'static str,
        /// The refused address's class.
        refused: crate::outbound::Refused,
    },
    /// The answer was not the contract's JSON.
    #[error("provider {op} answered with a body that is not the expected JSON")]
    Decode {
        /// `mint` or `revoke`.
        op: &'static str,
    },
    /// The answer's body is larger than the contract's answer can be: not read further.
    #[error(
        "provider {op} answered with a body over {limit} bytes (the limit of an answer); not read further"
    )]
    TooLarge {
        /// `mint`.
        op: &'static str,
        /// The limit, in bytes.
        limit: usize,
    },
}

impl ProviderError {
    /// A short, stable label value for metrics and condition messages.
    pub fn category(&self) -> &'static str {
        match self {
            ProviderError::Status { code, .. } if *code == 401 || *code == 403 => "unauthorized",
            ProviderError::Status { code, .. } if *code >= 500 => "server_error",
            ProviderError::Status { .. } => "refused",
            ProviderError::Transport { class, .. } => class,
            ProviderError::Decode { .. } => "decode",
            ProviderError::TooLarge { .. } => "too_large",
            ProviderError::Refused { .. } => "egress_refused",
        }
    }

    fn retryable(&self) -> bool {
        match self {
            ProviderError::Status { code, .. } => *code == 429 || *code >= 500,
            ProviderError::Transport { .. } => true,
            ProviderError::Decode { .. }
            | ProviderError::TooLarge { .. }
            | ProviderError::Refused { .. } => false,
        }
    }
}

/// Classifies a reqwest error without keeping it (its text names the URL).
pub fn transport_class(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else if e.is_body() || e.is_decode() {
        "body"
    } else {
        "request"
    }
}

#[derive(Deserialize)]
struct MintAnswer {
    id: String,
    secret: String,
}

/// The provider API client. Cheap to clone: it shares the connection pool.
#[derive(Clone)]
pub struct ProviderClient {
    http: crate::outbound::HttpClient,
}

/// The error of a failed send: the guard's refusal, or the transport class.
fn send_error(op: &'static str, e: &reqwest::Error) -> ProviderError {
    match crate::outbound::refused_in(e) {
        Some(refused) => ProviderError::Refused { op, refused },
        None => ProviderError::Transport {
            op,
            class: transport_class(e),
        },
    }
}

impl ProviderClient {
    /// A client on `http`, the guarded client of [`crate::outbound`].
    pub fn new(http: crate::outbound::HttpClient) -> Self {
        Self { http }
    }

    /// Mints a credential for `tenant`'s `channel`. `idempotency_key` must be the same
    /// for every retry of one rotation.
    pub async fn mint(
        &self,
        base_url: &str,
        token: &str,
        tenant: &str,
        channel: &str,
        idempotency_key: &str,
    ) -> Result<Minted, ProviderError> {
        const OP: &str = "mint";
        let url = reqwest::Url::parse(&format!("{}/credentials", base_url.trim_end_matches('/')))
            .map_err(|_| ProviderError::Transport {
            op: OP,
            class: "request",
        })?;
        let body = serde_json::json!({"tenant": tenant, "channel": channel});
        with_retries(|| async {
            let response = self
                .http
                .request(reqwest::Method::POST, url.clone())
                .map_err(|refused| ProviderError::Refused { op: OP, refused })?
                .bearer_auth(token)
                .header("Idempotency-Key", idempotency_key)
                .json(&body)
                .send()
                .await
                .map_err(|e| send_error(OP, &e))?;
            let status = response.status();
            if status != StatusCode::CREATED && status != StatusCode::OK {
                return Err(ProviderError::Status {
                    op: OP,
                    code: status.as_u16(),
                });
            }
            let bytes = read_bounded(OP, response, MAX_MINT_BODY).await?;
            let answer: MintAnswer =
                serde_json::from_slice(&bytes).map_err(|_| ProviderError::Decode { op: OP })?;
            if answer.id.is_empty() || answer.secret.is_empty() {
                return Err(ProviderError::Decode { op: OP });
            }
            Ok(Minted {
                id: answer.id,
                secret: answer.secret,
            })
        })
        .await
    }

    /// Revokes the credential `id`. Already gone (404) counts as revoked.
    pub async fn revoke(&self, base_url: &str, token: &str, id: &str) -> Result<(), ProviderError> {
        const OP: &str = "revoke";
        let mut url = reqwest::Url::parse(base_url).map_err(|_| ProviderError::Transport {
            op: OP,
            class: "request",
        })?;
        // Path segments are percent-encoded: an id cannot walk to another path.
        url.path_segments_mut()
            .map_err(|_| ProviderError::Transport {
                op: OP,
                class: "request",
            })?
            .pop_if_empty()
            .push("credentials")
            .push(id);
        with_retries(|| async {
            let response = self
                .http
                .request(reqwest::Method::DELETE, url.clone())
                .map_err(|refused| ProviderError::Refused { op: OP, refused })?
                .bearer_auth(token)
                .send()
                .await
                .map_err(|e| send_error(OP, &e))?;
            let status = response.status();
            if status.is_success() || status == StatusCode::NOT_FOUND {
                Ok(())
            } else {
                Err(ProviderError::Status {
                    op: OP,
                    code: status.as_u16(),
                })
            }
        })
        .await
    }
}

/// The body of `response`, or [`ProviderError::TooLarge`] as soon as it is known to be
/// over `limit` bytes: from its Content-Length before anything is read, else while
/// reading, chunk by chunk (a chunked answer announces no length).
async fn read_bounded(
    op: &'static str,
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, ProviderError> {
    let too_large = ProviderError::TooLarge { op, limit };
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(too_large);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| ProviderError::Transport {
            op,
            class: transport_class(&e),
        })?
    {
        if body.len() + chunk.len() > limit {
            return Err(too_large);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

async fn with_retries<T, F, Fut>(mut call: F) -> Result<T, ProviderError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ProviderError>>,
{
    let mut attempt = 1;
    loop {
        match call().await {
            Ok(v) => return Ok(v),
            Err(e) if e.retryable() && attempt < ATTEMPTS => {
                attempt += 1;
                tokio::time::sleep(backoff(attempt)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_millis(250));
        assert_eq!(backoff(2), Duration::from_millis(250));
        assert_eq!(backoff(3), Duration::from_millis(500));
        assert_eq!(backoff(5), Duration::from_secs(2));
        assert_eq!(backoff(100), MAX_BACKOFF);
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let m = Minted {
            id: "cred-1".into(),
            secret: "s3cr3t-value".into(),
        };
        let text = format!("{m:?}");
        assert!(
            text.contains("cred-1") && !text.contains("s3cr3t"),
            "{text}"
        );
    }

    #[test]
    fn errors_say_the_status_not_the_body() {
        let e = ProviderError::Status {
            op: "mint",
            code: 500,
        };
        assert_eq!(e.to_string(), "provider mint answered HTTP 500");
        assert_eq!(e.category(), "server_error");
        assert!(e.retryable());
        assert!(
            !ProviderError::Status {
                op: "mint",
                code: 400
            }
            .retryable()
        );
    }

    /// A loopback provider answering every request with `body`, announced with a
    /// Content-Length or chunked; counts the requests it answered.
    async fn answering(body: Vec<u8>, chunked: bool) -> (String, Arc<AtomicUsize>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let seen = Arc::new(AtomicUsize::new(0));
        let counter = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                let body = body.clone();
                tokio::spawn(async move {
                    // The request (headers and the small JSON body fit one read).
                    let mut buf = vec![0u8; 16 * 1024];
                    let _ = stream.read(&mut buf).await;
                    let mut answer = Vec::new();
                    if chunked {
                        answer.extend_from_slice(
                            b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n",
                        );
                        for part in body.chunks(8 * 1024) {
                            answer.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
                            answer.extend_from_slice(part);
                            answer.extend_from_slice(b"\r\n");
                        }
                        answer.extend_from_slice(b"0\r\n\r\n");
                    } else {
                        answer.extend_from_slice(
                            format!(
                                "HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                                body.len()
                            )
                            .as_bytes(),
                        );
                        answer.extend_from_slice(&body);
                    }
                    let _ = stream.write_all(&answer).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        (url, seen)
    }

    fn client() -> ProviderClient {
        ProviderClient::new(
            crate::outbound::HttpClient::new(crate::outbound::Egress {
                allow_loopback: true,
            })
            .unwrap(),
        )
    }

    /// A JSON answer of exactly `size` bytes, with the credential padded to fit.
    fn answer_of(size: usize) -> Vec<u8> {
        let frame = r#"{"id":"cred-1","secret":""}"#.len();
        let secret = "s".repeat(size - frame);
        let body = format!(r#"{{"id":"cred-1","secret":"{secret}"}}"#).into_bytes();
        assert_eq!(body.len(), size);
        body
    }

    #[tokio::test]
    async fn a_mint_answer_over_64_kib_is_an_error_whether_announced_or_chunked() {
        for chunked in [false, true] {
            let (url, seen) = answering(answer_of(MAX_MINT_BODY + 1), chunked).await;
            let e = client()
                .mint(&url, "token", "acme", "sms", "key-1")
                .await
                .unwrap_err();
            assert_eq!(
                e,
                ProviderError::TooLarge {
                    op: "mint",
                    limit: MAX_MINT_BODY
                },
                "chunked: {chunked}"
            );
            assert_eq!(e.category(), "too_large");
            assert_eq!(
                e.to_string(),
                "provider mint answered with a body over 65536 bytes (the limit of an answer); not read further"
            );
            // Final, not retried: the provider answered once.
            assert_eq!(seen.load(Ordering::SeqCst), 1, "chunked: {chunked}");
        }
    }

    #[tokio::test]
    async fn a_mint_answer_of_exactly_64_kib_is_read() {
        for chunked in [false, true] {
            let (url, _) = answering(answer_of(MAX_MINT_BODY), chunked).await;
            let minted = client()
                .mint(&url, "token", "acme", "sms", "key-1")
                .await
                .unwrap_or_else(|e| panic!("chunked {chunked}: {e}"));
            assert_eq!(minted.id, "cred-1");
            assert_eq!(minted.secret.len(), MAX_MINT_BODY - 27);
        }
    }
}
