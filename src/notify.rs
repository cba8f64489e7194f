//! Signed notices to a customer's webhook: sub-processor announcements now, deletion
//! receipts later. One function, [`send_signed`], knows the wire format.
//!
//! # Wire format
//!
//! `POST <tenant.spec.notifications.webhookUrl>` with a JSON body and the headers
//!
//! - `Content-Type: application/json`
//! - `Herald-Signature: sha256=<hex>`: HMAC-SHA256 over the exact body bytes, keyed with
//!   the tenant's signing secret (`notifications.signingSecretRef`, a Secret in the
//!   operator's namespace). The customer recomputes it over the raw body and compares in
//!   constant time.
//! - `Herald-Timestamp: <unix seconds>`: when this attempt was sent.
//! - `Idempotency-Key: <hex>`: the same for every retry of one notice (for a
//!   sub-processor notice: SHA-256 of subprocessor name, material hash and tenant), so the
//!   customer can drop duplicates. Retries of an undelivered notice, also after an
//!   operator restart, carry the same key; the signature covers only the body, and a
//!   replayed body is a duplicate by its key.
//!
//! Any 2xx is delivered. Anything else is retried by the caller (the reconcile, with
//! backoff), until a 2xx.

use hmac::{Hmac, KeyInit, Mac};
use k8s_openapi::jiff::Timestamp;
use sha2::Sha256;

use crate::provider::transport_class;

/// The signature header.
pub const SIGNATURE_HEADER: &str = "Herald-Signature";
/// The timestamp header.
pub const TIMESTAMP_HEADER: &str = "Herald-Timestamp";
/// The idempotency header.
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

/// Why a notice was not delivered. Carries no body and no URL (either may hold secrets).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotifyError {
    /// The endpoint answered with something other than 2xx.
    #[error("the notification endpoint answered HTTP {0}")]
    Status(u16),
    /// No answer: timeout, refused connection, TLS failure, ….
    #[error("the notification endpoint could not be reached: {0}")]
    Transport(&'static str),
}

impl NotifyError {
    /// A short, stable description for status (`lastFailure`) and metrics.
    pub fn category(&self) -> String {
        match self {
            NotifyError::Status(code) => format!("HTTP {code}"),
            NotifyError::Transport(class) => (*class).to_owned(),
        }
    }
}

/// `sha256=<hex>` of HMAC-SHA256(`secret`, `body`): the `Herald-Signature` value.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    // HMAC takes keys of any length, so this cannot fail; an empty tag would never verify.
    let hex = match <Hmac<Sha256> as KeyInit>::new_from_slice(secret) {
        Ok(mut mac) => {
            mac.update(body);
            mac.finalize()
                .into_bytes()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        }
        Err(_) => String::new(),
    };
    format!("sha256={hex}")
}

/// POSTs `body` to `url`, signed with `secret`, once. `Ok` on any 2xx.
pub async fn send_signed(
    http: &reqwest::Client,
    url: &str,
    secret: &[u8],
    idempotency_key: &str,
    body: &[u8],
    now: Timestamp,
) -> Result<(), NotifyError> {
    let response = http
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(SIGNATURE_HEADER, signature(secret, body))
        .header(TIMESTAMP_HEADER, now.as_second().to_string())
        .header(IDEMPOTENCY_HEADER, idempotency_key)
        .body(body.to_vec())
        .send()
        .await
        .map_err(|e| NotifyError::Transport(transport_class(&e)))?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(NotifyError::Status(status.as_u16()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4231_test_case_2() {
        // RFC 4231, test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn failures_name_the_status_only() {
        assert_eq!(NotifyError::Status(503).category(), "HTTP 503");
        assert_eq!(
            NotifyError::Status(503).to_string(),
            "the notification endpoint answered HTTP 503"
        );
    }
}
