//! Evidence signing: deletion receipts signed with an Ed25519 key Herald generates once,
//! and their offline verification (`herald receipt verify`).
//!
//! A receipt's `sha256` shows that its bytes are intact; only a signature shows who
//! wrote them. The key pair is generated from the OS CSPRNG (ring's `SystemRandom`), its
//! private half kept in a Secret of the control namespace ([`store`]), its public half
//! published under a `keyId` (the first 16 hex digits of the public key's SHA-256) in a
//! ConfigMap an auditor copies once and keeps. Everything in this module is pure: it signs
//! and checks bytes; [`store`] does the API calls.

pub mod store;

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

/// Data key of the receipt body in a receipt ConfigMap (the signed bytes).
pub const BODY_KEY: &str = "receipt.json";
/// Data key of the body's SHA-256 (hex).
pub const DIGEST_KEY: &str = "sha256";
/// Data key of the Ed25519 signature over the body (base64).
pub const SIGNATURE_KEY: &str = "signature";
/// Data key naming the signing key ([`SigningKey::key_id`]).
pub const KEY_ID_KEY: &str = "keyId";
/// Data key of the signer's public key (base64), so a receipt is self-describing; who
/// may sign is decided by the published keys an auditor trusts, never by this copy.
pub const PUBLIC_KEY_KEY: &str = "publicKey";

/// An Ed25519 signing key and its id.
pub struct SigningKey {
    pair: Ed25519KeyPair,
    key_id: String,
}

impl std::fmt::Debug for SigningKey {
    // Never print key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// Why a key could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the OS random number generator failed; no signing key was generated")]
    Random,
    #[error("the stored signing key is not an Ed25519 PKCS#8 document")]
    Rejected,
}

impl SigningKey {
    /// A new key pair as a PKCS#8 document (what [`store`] keeps in the Secret).
    pub fn generate_pkcs8() -> Result<Vec<u8>, KeyError> {
        let rng = ring::rand::SystemRandom::new();
        Ed25519KeyPair::generate_pkcs8(&rng)
            .map(|doc| doc.as_ref().to_vec())
            .map_err(|_| KeyError::Random)
    }

    /// The key stored as `pkcs8`.
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, KeyError> {
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8).map_err(|_| KeyError::Rejected)?;
        let key_id = key_id(pair.public_key().as_ref());
        Ok(Self { pair, key_id })
    }

    /// The id receipts name their signer by.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The public key, base64.
    pub fn public_key_b64(&self) -> String {
        B64.encode(self.pair.public_key().as_ref())
    }

    /// The signature over `body`, base64.
    pub fn sign_b64(&self, body: &[u8]) -> String {
        B64.encode(self.pair.sign(body).as_ref())
    }
}

/// The id of a public key: the first 16 hex digits of its SHA-256.
pub fn key_id(public_key: &[u8]) -> String {
    let mut id = crate::digest::sha256_hex(public_key);
    id.truncate(16);
    id
}

/// The parts of a signed receipt.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SignedReceipt {
    /// The receipt's bytes.
    pub body: String,
    /// Their SHA-256 as recorded.
    pub sha256: String,
    /// The signature as recorded (base64).
    pub signature: String,
    /// The signer as recorded.
    pub key_id: String,
    /// The signer's public key as recorded (base64); may be empty.
    pub public_key: String,
}

/// What a successful verification established.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// The key that signed.
    pub key_id: String,
    /// Whether that key came from the trusted keys given, not from the receipt itself.
    pub trusted_key: bool,
}

/// Why a receipt does not verify. Each says what is wrong in words an auditor reads.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("the file is not a receipt: {0}")]
    NotAReceipt(String),
    #[error("the receipt has no {0} (it was written before receipts were signed, or edited)")]
    Missing(&'static str),
    #[error("the receipt's bytes do not match its sha256: it was changed after it was written")]
    DigestMismatch,
    #[error("the signature is not valid base64")]
    SignatureEncoding,
    #[error("the public key for {0} is not a valid base64 Ed25519 key")]
    KeyEncoding(String),
    #[error("the receipt is signed by key {0}, which is not among the trusted public keys given")]
    UnknownKey(String),
    #[error("the receipt names key {named} but carries the public key of {actual}")]
    KeyIdMismatch { named: String, actual: String },
    #[error(
        "the signature does not verify with key {0}: the receipt was changed or not signed by it"
    )]
    BadSignature(String),
    #[error(
        "the receipt's schema {0:?} is not one this verifier knows (herald.dev/deletion-receipt/v1, herald.dev/fulfilment-receipt/v1, herald.dev/breach-receipt/v1): use a Herald version that does"
    )]
    UnknownSchema(String),
}

/// The schema of deletion receipts.
pub const DELETION_SCHEMA: &str = "herald.dev/deletion-receipt/v1";
/// The schema of data-subject requests' fulfilment receipts.
pub const FULFILMENT_SCHEMA: &str = "herald.dev/fulfilment-receipt/v1";
/// The schema of breach receipts: which tenants acknowledged a breach's notice, when.
pub const BREACH_SCHEMA: &str = "herald.dev/breach-receipt/v1";

/// The outcome of a data-subject request's receipt when the request was deleted before
/// it was answered (its Job and subject copy removed, nothing answered).
pub const WITHDRAWN: &str = "Withdrawn";

/// What a receipt says, in the words `herald receipt verify` prints: which kind of
/// receipt it is, whose, its outcome and its deadline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// "deletion receipt", "fulfilment receipt", "withdrawal receipt" or "breach receipt".
    pub kind: &'static str,
    /// The tenant it is for (a breach receipt: the tenants it records, the first named).
    pub tenant: String,
    /// Whose it is, as printed: `tenant <t>`, or `breach <b>, tenants <…>`.
    pub whose: String,
    /// What was done: "erased, …" or the request's answer.
    pub outcome: String,
    /// The deadline it was held to, and whether it was met.
    pub deadline: String,
}

/// The [`Summary`] of a receipt body, refusing a schema this version does not know
/// (a verifier that guessed would vouch for fields it cannot read). Pure.
pub fn summarize(body: &str) -> Result<Summary, VerifyError> {
    let doc: serde_json::Value = serde_json::from_str(body)
        .map_err(|e| VerifyError::NotAReceipt(format!("its body is not JSON: {e}")))?;
    let text = |k: &str| {
        doc.get(k)
            .and_then(|v| v.as_str())
            .unwrap_or("?")
            .to_owned()
    };
    let met = match doc.get("metDeadline").and_then(serde_json::Value::as_bool) {
        Some(true) => "met",
        Some(false) => "missed",
        None => "?",
    };
    let deadline = format!("{} ({met})", text("deadline"));
    let schema = doc
        .get("schema")
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    match schema {
        DELETION_SCHEMA => {
            let count = |k: &str| {
                doc.get(k)
                    .and_then(serde_json::Value::as_array)
                    .map_or(0, Vec::len)
            };
            let mut outcome = "erased".to_owned();
            match count("foundNotErased") {
                0 => {}
                n => outcome.push_str(&format!(", {n} found and not erased")),
            }
            match count("failedExternalSteps") {
                0 => {}
                n => outcome.push_str(&format!(", {n} external steps failing")),
            }
            Ok(Summary {
                kind: "deletion receipt",
                tenant: text("tenant"),
                whose: format!("tenant {}", text("tenant")),
                outcome,
                deadline,
            })
        }
        FULFILMENT_SCHEMA => Ok(Summary {
            // A request deleted before it was answered leaves a receipt of the same
            // schema whose outcome is `Withdrawn`: named for what it proves.
            kind: if text("outcome") == WITHDRAWN {
                "withdrawal receipt"
            } else {
                "fulfilment receipt"
            },
            tenant: text("tenant"),
            whose: format!("tenant {}", text("tenant")),
            outcome: format!(
                "{} ({} request {})",
                text("outcome"),
                text("right"),
                text("request")
            ),
            deadline,
        }),
        BREACH_SCHEMA => {
            let tenants: Vec<&str> = doc
                .get("notified")
                .and_then(serde_json::Value::as_array)
                .map(|rs| rs.iter().filter_map(|r| r.get(0)?.as_str()).collect())
                .unwrap_or_default();
            const NAMED: usize = 5;
            let mut named = tenants
                .iter()
                .take(NAMED)
                .copied()
                .collect::<Vec<_>>()
                .join(", ");
            if tenants.len() > NAMED {
                named.push_str(&format!(" and {} more", tenants.len() - NAMED));
            }
            let late = doc.get("late").and_then(serde_json::Value::as_u64);
            let deadline = match (met, late) {
                ("missed", Some(n)) => format!("{} (missed by {n})", text("deadline")),
                _ => deadline,
            };
            Ok(Summary {
                kind: "breach receipt",
                tenant: tenants
                    .first()
                    .map_or_else(|| "?".to_owned(), |t| (*t).to_owned()),
                whose: format!("breach {}, tenants {named}", text("breach")),
                outcome: format!(
                    "notice acknowledged by {} tenant{}",
                    tenants.len(),
                    if tenants.len() == 1 { "" } else { "s" }
                ),
                deadline,
            })
        }
        other => Err(VerifyError::UnknownSchema(other.to_owned())),
    }
}

/// Verifies `receipt` against `trusted` public keys (keyId → base64), or, when none are
/// given, against the public key the receipt carries (integrity and a consistent signer,
/// but not who the signer is: [`Verified::trusted_key`] says which).
pub fn verify(
    receipt: &SignedReceipt,
    trusted: Option<&BTreeMap<String, String>>,
) -> Result<Verified, VerifyError> {
    for (value, what) in [
        (&receipt.body, BODY_KEY),
        (&receipt.sha256, DIGEST_KEY),
        (&receipt.signature, SIGNATURE_KEY),
        (&receipt.key_id, KEY_ID_KEY),
    ] {
        if value.is_empty() {
            return Err(VerifyError::Missing(what));
        }
    }
    if crate::digest::sha256_hex(receipt.body.as_bytes()) != receipt.sha256 {
        return Err(VerifyError::DigestMismatch);
    }
    let signature = B64
        .decode(receipt.signature.trim())
        .map_err(|_| VerifyError::SignatureEncoding)?;
    let (key_b64, trusted_key) = match trusted {
        Some(keys) => match keys.get(&receipt.key_id) {
            Some(k) => (k.as_str(), true),
            None => return Err(VerifyError::UnknownKey(receipt.key_id.clone())),
        },
        None if receipt.public_key.is_empty() => return Err(VerifyError::Missing(PUBLIC_KEY_KEY)),
        None => (receipt.public_key.as_str(), false),
    };
    let key = B64
        .decode(key_b64.trim())
        .ok()
        .filter(|k| k.len() == 32)
        .ok_or_else(|| VerifyError::KeyEncoding(receipt.key_id.clone()))?;
    let actual = key_id(&key);
    if actual != receipt.key_id {
        return Err(VerifyError::KeyIdMismatch {
            named: receipt.key_id.clone(),
            actual,
        });
    }
    UnparsedPublicKey::new(&ED25519, &key)
        .verify(receipt.body.as_bytes(), &signature)
        .map_err(|_| VerifyError::BadSignature(receipt.key_id.clone()))?;
    Ok(Verified {
        key_id: actual,
        trusted_key,
    })
}

/// A URL as evidence may keep it: scheme, host, port and path, without the userinfo
/// (`user:password@`), the query string or the fragment. Receipts are immutable and
/// kept for years, and a pre-signed upload URL carries its credential in the query
/// (`X-Amz-Signature=…`, `sig=…`): written as given, it would become a secret nobody
/// may delete. A path is kept (it says where the data went); a credential in the path
/// is the one thing this cannot tell apart, so the docs ask for tokens in the query or
/// the auth Secret. Pure; never fails: a string that is no URL loses the same parts.
pub fn url_for_evidence(url: &str) -> String {
    let url = url.trim();
    // The query and the fragment end the URL wherever they start.
    let end = url.find(['?', '#']).unwrap_or(url.len());
    let url = &url[..end];
    let (scheme, rest) = match url.find("://") {
        Some(i) => (&url[..i + 3], &url[i + 3..]),
        None => ("", url),
    };
    // The authority runs to the first '/'; its userinfo to its last '@' (a password
    // may hold an unescaped '@').
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    format!("{scheme}{host}{path}")
}

/// A minimal view of a ConfigMap document (YAML or JSON, as `kubectl get -o` prints it).
#[derive(serde::Deserialize)]
struct ConfigMapDoc {
    kind: Option<String>,
    #[serde(default)]
    data: BTreeMap<String, String>,
}

fn parse_configmap(text: &str) -> Result<BTreeMap<String, String>, VerifyError> {
    // serde_yaml reads JSON too: `kubectl get -o json` and `-o yaml` both work.
    let doc: ConfigMapDoc =
        serde_yaml::from_str(text).map_err(|e| VerifyError::NotAReceipt(e.to_string()))?;
    match doc.kind.as_deref() {
        Some("ConfigMap") | None => Ok(doc.data),
        Some(other) => Err(VerifyError::NotAReceipt(format!(
            "a {other}, not a ConfigMap"
        ))),
    }
}

/// A receipt from its ConfigMap as `kubectl get cm <receipt> -o yaml` (or `-o json`)
/// prints it.
pub fn parse_receipt(text: &str) -> Result<SignedReceipt, VerifyError> {
    let data = parse_configmap(text)?;
    let get = |k: &str| data.get(k).cloned().unwrap_or_default();
    Ok(SignedReceipt {
        body: get(BODY_KEY),
        sha256: get(DIGEST_KEY),
        signature: get(SIGNATURE_KEY),
        key_id: get(KEY_ID_KEY),
        public_key: get(PUBLIC_KEY_KEY),
    })
}

/// Trusted public keys: the published ConfigMap (`kubectl get cm
/// herald-receipt-public-keys -o yaml`), or one base64 key alone on a line.
pub fn parse_public_keys(text: &str) -> Result<BTreeMap<String, String>, VerifyError> {
    let trimmed = text.trim();
    if let Ok(raw) = B64.decode(trimmed)
        && raw.len() == 32
    {
        return Ok(BTreeMap::from([(key_id(&raw), trimmed.to_owned())]));
    }
    let keys = parse_configmap(text)?;
    if keys.is_empty() {
        return Err(VerifyError::NotAReceipt(
            "the public key file holds no keys".into(),
        ));
    }
    Ok(keys)
}

/// `herald receipt verify`: the receipt document and, optionally, the trusted keys'
/// document, to a one-line report of what was established.
pub fn verify_documents(receipt: &str, public_keys: Option<&str>) -> Result<String, VerifyError> {
    let receipt = parse_receipt(receipt)?;
    let trusted = public_keys.map(parse_public_keys).transpose()?;
    let v = verify(&receipt, trusted.as_ref())?;
    // Read only once the bytes are proven intact: what is printed is what was signed.
    let sum = summarize(&receipt.body)?;
    let what = format!(
        "{}, outcome {}, deadline {}, sha256 {}",
        sum.whose, sum.outcome, sum.deadline, receipt.sha256
    );
    Ok(if v.trusted_key {
        format!(
            "{} verifies: {what}, signed by trusted key {}",
            sum.kind, v.key_id
        )
    } else {
        format!(
            "{} is intact and signed by the key it carries ({}): {what}; \
             pass --public-key with the platform's published keys to check who signed it",
            sum.kind, v.key_id
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::from_pkcs8(&SigningKey::generate_pkcs8().unwrap()).unwrap()
    }

    fn signed(k: &SigningKey, body: &str) -> SignedReceipt {
        SignedReceipt {
            body: body.into(),
            sha256: crate::digest::sha256_hex(body.as_bytes()),
            signature: k.sign_b64(body.as_bytes()),
            key_id: k.key_id().into(),
            public_key: k.public_key_b64(),
        }
    }

    fn trusted(k: &SigningKey) -> BTreeMap<String, String> {
        BTreeMap::from([(k.key_id().to_owned(), k.public_key_b64())])
    }

    #[test]
    fn a_signed_receipt_verifies_with_the_trusted_key() {
        let k = key();
        let r = signed(&k, r#"{"tenant":"acme"}"#);
        let v = verify(&r, Some(&trusted(&k))).unwrap();
        assert_eq!(v.key_id, k.key_id());
        assert!(v.trusted_key);
        // Without trusted keys only the carried key is used, and that is said.
        assert!(!verify(&r, None).unwrap().trusted_key);
    }

    #[test]
    fn a_changed_byte_is_refused_even_with_a_recomputed_digest() {
        let k = key();
        let mut r = signed(&k, r#"{"tenant":"acme","deleted":3}"#);
        r.body = r.body.replace('3', "4");
        assert_eq!(
            verify(&r, Some(&trusted(&k))),
            Err(VerifyError::DigestMismatch)
        );
        // Whoever changes the body can recompute the digest, not the signature.
        r.sha256 = crate::digest::sha256_hex(r.body.as_bytes());
        assert_eq!(
            verify(&r, Some(&trusted(&k))),
            Err(VerifyError::BadSignature(k.key_id().into()))
        );
    }

    #[test]
    fn a_receipt_signed_by_another_key_is_refused() {
        let (platform, forger) = (key(), key());
        let forged = signed(&forger, r#"{"tenant":"acme"}"#);
        assert_eq!(
            verify(&forged, Some(&trusted(&platform))),
            Err(VerifyError::UnknownKey(forger.key_id().into()))
        );
        // Claiming the platform's key id with the forger's signature fails too.
        let mut claimed = forged.clone();
        claimed.key_id = platform.key_id().into();
        assert_eq!(
            verify(&claimed, Some(&trusted(&platform))),
            Err(VerifyError::BadSignature(platform.key_id().into()))
        );
        // And a carried key that does not match the named id is called out.
        assert!(matches!(
            verify(&claimed, None),
            Err(VerifyError::KeyIdMismatch { .. })
        ));
    }

    #[test]
    fn missing_parts_and_garbage_are_explained_not_panicked_on() {
        let k = key();
        let mut r = signed(&k, "{}");
        r.signature.clear();
        assert_eq!(verify(&r, None), Err(VerifyError::Missing(SIGNATURE_KEY)));
        let mut r = signed(&k, "{}");
        r.signature = "not base64!".into();
        assert_eq!(verify(&r, None), Err(VerifyError::SignatureEncoding));
        let mut keys = trusted(&k);
        keys.insert(k.key_id().into(), "AAAA".into());
        assert!(matches!(
            verify(&signed(&k, "{}"), Some(&keys)),
            Err(VerifyError::KeyEncoding(_))
        ));
        assert!(SigningKey::from_pkcs8(b"not a key").is_err());
        assert!(parse_receipt("kind: Secret\ndata: {}\n").is_err());
        assert!(parse_receipt(": : :").is_err());
    }

    #[test]
    fn receipts_and_keys_parse_from_kubectl_output() {
        let k = key();
        let r = signed(&k, "{\"a\": 1}\n");
        let cm = serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "deletion-receipt-acme-1234"},
            "data": {
                BODY_KEY: r.body, DIGEST_KEY: r.sha256, SIGNATURE_KEY: r.signature,
                KEY_ID_KEY: r.key_id, PUBLIC_KEY_KEY: r.public_key,
            }
        });
        let json = serde_json::to_string(&cm).unwrap();
        let yaml = serde_yaml::to_string(&cm).unwrap();
        assert_eq!(parse_receipt(&json).unwrap(), r);
        assert_eq!(parse_receipt(&yaml).unwrap(), r);
        let published = format!(
            "apiVersion: v1\nkind: ConfigMap\ndata:\n  {}: {}\n",
            k.key_id(),
            k.public_key_b64()
        );
        assert_eq!(parse_public_keys(&published).unwrap(), trusted(&k));
        assert_eq!(
            parse_public_keys(&format!("{}\n", k.public_key_b64())).unwrap(),
            trusted(&k)
        );
    }

    #[test]
    fn the_verifier_names_the_kind_of_receipt_and_refuses_unknown_schemas() {
        let k = key();
        let keys = format!("{}\n", k.public_key_b64());
        let doc = |body: &str| {
            let r = signed(&k, body);
            serde_json::json!({"kind": "ConfigMap", "data": {
                BODY_KEY: r.body, DIGEST_KEY: r.sha256, SIGNATURE_KEY: r.signature,
                KEY_ID_KEY: r.key_id, PUBLIC_KEY_KEY: r.public_key,
            }})
            .to_string()
        };
        let deletion = doc(&serde_json::json!({
            "schema": DELETION_SCHEMA, "tenant": "acme", "deadline": "2026-12-01T00:00:00Z",
            "metDeadline": true, "foundNotErased": [{"kind": "Secret"}], "failedExternalSteps": [],
        })
        .to_string());
        let out = verify_documents(&deletion, Some(&keys)).unwrap();
        assert!(
            out.starts_with("deletion receipt verifies: tenant acme,"),
            "{out}"
        );
        assert!(
            out.contains("outcome erased, 1 found and not erased"),
            "{out}"
        );
        assert!(out.contains("deadline 2026-12-01T00:00:00Z (met)"), "{out}");
        let fulfilment = doc(&serde_json::json!({
            "schema": FULFILMENT_SCHEMA, "tenant": "acme", "request": "r1", "right": "Erasure",
            "outcome": "NothingHeld", "deadline": "2027-01-01T00:00:00Z", "metDeadline": false,
        })
        .to_string());
        let out = verify_documents(&fulfilment, None).unwrap();
        assert!(out.starts_with("fulfilment receipt is intact"), "{out}");
        assert!(
            out.contains("outcome NothingHeld (Erasure request r1)"),
            "{out}"
        );
        assert!(out.contains("(missed)"), "{out}");
        let withdrawn = doc(&serde_json::json!({
            "schema": FULFILMENT_SCHEMA, "tenant": "acme", "request": "r2", "right": "Access",
            "outcome": WITHDRAWN, "deadline": "2027-01-01T00:00:00Z", "metDeadline": true,
        })
        .to_string());
        let out = verify_documents(&withdrawn, Some(&keys)).unwrap();
        assert!(
            out.starts_with(
                "withdrawal receipt verifies: tenant acme, outcome Withdrawn (Access request r2)"
            ),
            "{out}"
        );
        // Signed, intact, but of a schema this version cannot read: refused.
        let future = doc(r#"{"schema":"herald.dev/deletion-receipt/v9","tenant":"acme"}"#);
        assert_eq!(
            verify_documents(&future, Some(&keys)),
            Err(VerifyError::UnknownSchema(
                "herald.dev/deletion-receipt/v9".into()
            ))
        );
        assert!(matches!(
            verify_documents(&doc("not json"), Some(&keys)),
            Err(VerifyError::NotAReceipt(_))
        ));
        let breach = doc(&serde_json::json!({
            "schema": BREACH_SCHEMA, "breach": "b1", "deadline": "2026-03-04T08:00:00Z",
            "metDeadline": false, "late": 1,
            "notified": [["acme", "1234abcd", 3, 7], ["globex", "5678abcd", 3, 172801]],
        })
        .to_string());
        let out = verify_documents(&breach, Some(&keys)).unwrap();
        assert!(
            out.starts_with("breach receipt verifies: breach b1, tenants acme, globex,"),
            "{out}"
        );
        assert!(
            out.contains("outcome notice acknowledged by 2 tenants,"),
            "{out}"
        );
        assert!(out.contains("2026-03-04T08:00:00Z (missed by 1)"), "{out}");
    }

    #[test]
    fn urls_in_evidence_keep_no_credentials() {
        for (given, kept) in [
            ("https://x.example/up", "https://x.example/up"),
            ("https://x.example:8443/a/b", "https://x.example:8443/a/b"),
            (
                "https://bucket.s3.example/k?X-Amz-Signature=abc&X-Amz-Credential=AKIA",
                "https://bucket.s3.example/k",
            ),
            ("https://x.example/up#token=abc", "https://x.example/up"),
            ("https://x.example/up?a=1#f", "https://x.example/up"),
            ("https://user:pw@x.example/up", "https://x.example/up"),
            (
                "HTTPS://user:p@ss@x.example:99/up?q",
                "HTTPS://x.example:99/up",
            ),
            ("https://user@x.example", "https://x.example"),
            ("https://x.example?sig=1", "https://x.example"),
            ("https://x.example/p@th", "https://x.example/p@th"),
            ("  https://x.example/up \n", "https://x.example/up"),
            (
                "http://127.0.0.1:9/dsr-export",
                "http://127.0.0.1:9/dsr-export",
            ),
            ("not a url?secret", "not a url"),
            ("u:p@host/path?q", "host/path"),
            ("", ""),
            ("?only-a-query", ""),
        ] {
            assert_eq!(url_for_evidence(given), kept, "{given}");
        }
    }

    #[test]
    fn the_key_never_prints() {
        let k = key();
        let printed = format!("{k:?}");
        assert!(printed.contains(k.key_id()));
        assert!(!printed.contains(&k.public_key_b64()));
    }
}
