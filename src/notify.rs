//! Signed notices to a customer's webhook: sub-processor announcements and deletion
//! receipts. One function, [`send_signed`], knows the wire format: Standard Webhooks
//! (<https://www.standardwebhooks.com>), so a customer verifies with any of its libraries.
//!
//! # Wire format
//!
//! `POST <tenant.spec.notifications.webhookUrl>` with a JSON body and the headers
//!
//! - `Content-Type: application/json`
//! - `webhook-id: <hex>`: the same for every retry of one notice (a sub-processor
//!   notice: SHA-256 of subprocessor name, material hash and tenant; a receipt: its
//!   digest), so the customer drops duplicates by it. Also sent as `Idempotency-Key`.
//! - `webhook-timestamp: <unix seconds>`: when this attempt was signed.
//! - `webhook-signature: v1,<base64>`: HMAC-SHA256 over `<id>.<timestamp>.<body>`, keyed
//!   with the bytes of the tenant's signing secret (`notifications.signingSecretRef`, a
//!   value `whsec_<base64>`, the key being the base64-decoded part).
//!
//! The signature covers the timestamp, so a captured notice cannot be replayed later
//! with a fresh timestamp; receivers refuse one whose timestamp is more than 5 minutes
//! from their clock (the libraries' window). Any 2xx is delivered; anything else is
//! retried by the caller (the reconcile, with backoff), each attempt signed anew.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use k8s_openapi::jiff::Timestamp;
use sha2::Sha256;

use crate::provider::transport_class;

/// The message id header.
pub const ID_HEADER: &str = "webhook-id";
/// The timestamp header.
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
/// The signature header.
pub const SIGNATURE_HEADER: &str = "webhook-signature";
/// The idempotency header (the same value as `webhook-id`, for receivers that key on it).
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";
/// The prefix of a Standard Webhooks secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// Why a notice was not delivered. Carries no body and no URL (either may hold secrets).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotifyError {
    /// The endpoint answered with something other than 2xx.
    #[error("the notification endpoint answered HTTP {0}")]
    Status(u16),
    /// No answer: timeout, refused connection, TLS failure, ….
    #[error("the notification endpoint could not be reached: {0}")]
    Transport(&'static str),
    /// The outbound guard refused the endpoint's address (see [`crate::outbound`]).
    #[error("the notification endpoint was not contacted: {0}")]
    Refused(crate::outbound::Refused),
}

impl NotifyError {
    /// A short, stable description for status (`lastFailure`) and metrics.
    pub fn category(&self) -> String {
        match self {
            NotifyError::Status(code) => format!("HTTP {code}"),
            NotifyError::Transport(class) => (*class).to_owned(),
            NotifyError::Refused(r) => r.to_string(),
        }
    }
}

/// Why a signing secret's value cannot key a signature. Never carries the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// Not `whsec_` followed by base64.
    #[error("is not a Standard Webhooks secret (whsec_ followed by base64)")]
    NotBase64,
    /// Decodes to nothing.
    #[error("is empty")]
    Empty,
}

/// The HMAC key of a Standard Webhooks secret: the base64 after `whsec_` (the prefix
/// is optional, as in the reference libraries), decoded; surrounding whitespace (a
/// trailing newline from `kubectl create secret --from-file`) is ignored.
pub fn signing_key(secret: &[u8]) -> Result<Vec<u8>, SecretError> {
    let text = std::str::from_utf8(secret)
        .map_err(|_| SecretError::NotBase64)?
        .trim();
    let encoded = text.strip_prefix(SECRET_PREFIX).unwrap_or(text);
    let key = STANDARD
        .decode(encoded)
        .map_err(|_| SecretError::NotBase64)?;
    if key.is_empty() {
        return Err(SecretError::Empty);
    }
    Ok(key)
}

/// `v1,<base64>` of HMAC-SHA256(`key`, `<id>.<timestamp>.<body>`): the
/// `webhook-signature` value.
pub fn signature(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC takes keys of any length, so this cannot fail; an empty tag never verifies.
    let tag = match <Hmac<Sha256> as KeyInit>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(id.as_bytes());
            mac.update(b".");
            mac.update(timestamp.to_string().as_bytes());
            mac.update(b".");
            mac.update(body);
            STANDARD.encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    };
    format!("v1,{tag}")
}

/// A new Standard Webhooks secret, `whsec_<base64 of 32 bytes>`, from the OS CSPRNG;
/// an error (never a weaker key) when the OS has no entropy source.
pub fn generate_secret() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes)))
}

/// POSTs `body` to `url` as message `id`, signed with `key` (see [`signing_key`]) at
/// `now`, once. `Ok` on any 2xx.
pub async fn send_signed(
    http: &crate::outbound::HttpClient,
    url: &str,
    key: &[u8],
    id: &str,
    body: &[u8],
    now: Timestamp,
) -> Result<(), NotifyError> {
    let timestamp = now.as_second();
    let url = reqwest::Url::parse(url).map_err(|_| NotifyError::Transport("request"))?;
    let response = http
        .request(reqwest::Method::POST, url)
        .map_err(NotifyError::Refused)?
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(ID_HEADER, id)
        .header(TIMESTAMP_HEADER, timestamp.to_string())
        .header(SIGNATURE_HEADER, signature(key, id, timestamp, body))
        .header(IDEMPOTENCY_HEADER, id)
        .body(body.to_vec())
        .send()
        .await
        .map_err(|e| match crate::outbound::refused_in(&e) {
            Some(r) => NotifyError::Refused(r),
            None => NotifyError::Transport(transport_class(&e)),
        })?;
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

    fn headers(id: &str, timestamp: i64, signature: &str) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        h.insert(ID_HEADER, id.parse().unwrap());
        h.insert(TIMESTAMP_HEADER, timestamp.to_string().parse().unwrap());
        h.insert(SIGNATURE_HEADER, signature.parse().unwrap());
        h
    }

    /// The reference verifier (the Standard Webhooks project's Rust library, not
    /// Herald's code) accepts Herald's signature and refuses it outside its window.
    #[test]
    fn the_standard_webhooks_library_verifies_heralds_signature() {
        let secret = generate_secret().unwrap();
        let key = signing_key(secret.as_bytes()).unwrap();
        assert_eq!(key.len(), 32);
        let verifier = standardwebhooks::Webhook::new(&secret).unwrap();
        let (id, body) = ("msg_2b7f", br#"{"kind":"SubprocessorNotice","n":1}"#);
        let now = Timestamp::now().as_second();
        let sig = signature(&key, id, now, body);
        assert!(verifier.verify(body, &headers(id, now, &sig)).is_ok());

        // A replay 6 minutes later: refused by the 5-minute window.
        let old = now - 6 * 60;
        let sig_old = signature(&key, id, old, body);
        assert!(matches!(
            verifier.verify(body, &headers(id, old, &sig_old)),
            Err(standardwebhooks::WebhookError::TimestampTooOldError)
        ));
        // The timestamp is signed: moving it, or the id, or the body breaks the signature.
        assert!(verifier.verify(body, &headers(id, now - 1, &sig)).is_err());
        assert!(
            verifier
                .verify(body, &headers("msg_other", now, &sig))
                .is_err()
        );
        assert!(verifier.verify(b"{}", &headers(id, now, &sig)).is_err());
        // Another tenant's key does not verify.
        let other = standardwebhooks::Webhook::new(&generate_secret().unwrap()).unwrap();
        assert!(other.verify(body, &headers(id, now, &sig)).is_err());
    }

    #[test]
    fn the_spec_example_signature() {
        // The example of the Standard Webhooks specification.
        let key = signing_key(b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            signature(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn secrets_are_whsec_base64_and_never_echoed() {
        assert_eq!(signing_key(b"whsec_AAEC\n"), Ok(vec![0, 1, 2]));
        assert_eq!(signing_key(b"AAEC"), Ok(vec![0, 1, 2]));
        assert_eq!(
            signing_key(b"FAKE-hmac-key-not-base64!"),
            Err(SecretError::NotBase64)
        );
        assert_eq!(signing_key(b"whsec_"), Err(SecretError::Empty));
        assert!(!SecretError::NotBase64.to_string().contains("FAKE"));
    }

    #[test]
    fn generated_secrets_differ() {
        assert_ne!(generate_secret().unwrap(), generate_secret().unwrap());
        assert!(generate_secret().unwrap().starts_with(SECRET_PREFIX));
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
