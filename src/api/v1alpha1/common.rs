//! Pieces the kinds share: references by name, the DPA record, the CEL rule for outbound
//! URLs, and the EEA.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The DNS-1123 label pattern: what a namespace name (and so `tenant-<name>`) and a
/// region label value must match.
pub const DNS_LABEL: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";

/// CEL: the string is a URL Herald may send to: `https://` (plain `http://` only for the
/// loopback hosts `127.0.0.1`, `::1` and `localhost`: the e2e tests and local
/// development run receivers there, and loopback traffic never crosses a network, so the
/// promise of encryption in transit (C8) still holds), no userinfo (`user:pw@` would go
/// to the host as credentials), no IP literal but loopback, and a port (if any) in
/// 1–65535. Regular expressions rather than `ip()`/`cidr()` on the host: those cost more
/// than the API server's CEL budget allows on a 2048-byte string, and a customer
/// endpoint is a name. So this is stricter than "global unicast only": no IP literal at
/// all. Names are checked when the operator connects (src/outbound.rs: only global
/// unicast addresses; loopback only with `--allow-loopback-egress`).
pub const HTTPS_URL_RULE: &str = "isURL(self) && (url(self).getScheme() == 'https' || \
     (url(self).getScheme() == 'http' && url(self).getHostname() in ['127.0.0.1', '::1', 'localhost'])) && \
     !self.matches('^[a-z]+://[^/?#@]*@') && \
     (!self.matches('^[a-z]+://(\\\\[|[0-9.]+([:/?#]|$))') || url(self).getHostname() in ['127.0.0.1', '::1']) && \
     !self.matches('^[a-z]+://[^/?#\\\\[\\\\]]*:(0*|0[0-9]*|[0-9]{6,}|6553[6-9]|655[4-9][0-9]|65[6-9][0-9]{2}|6[6-9][0-9]{3}|[7-9][0-9]{4})([/?#]|$)')";

/// The EEA by ISO 3166-1 alpha-2 code: the 27 EU member states plus Iceland, Liechtenstein
/// and Norway. Greece is `GR` here (ISO), not `EL` (the EU's own abbreviation).
#[rustfmt::skip] // one line per group: the EU, then the three EEA-only states
pub const EEA_COUNTRIES: [&str; 30] = [
    "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE",
    "IT", "LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE",
    "IS", "LI", "NO",
];

/// The EEA as a CEL list literal (`['AT', 'BE', …]`), built from [`EEA_COUNTRIES`] so the
/// admission rule and the Rust constant cannot drift apart.
pub fn eea_cel_list() -> String {
    let quoted: Vec<String> = EEA_COUNTRIES.iter().map(|c| format!("'{c}'")).collect();
    format!("[{}]", quoted.join(", "))
}

/// A reference to another object by name: a cluster-scoped Herald object, or an object in
/// the referring object's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct ObjectRef {
    /// Name of the referenced object.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// A reference to one key of a Secret. Where the reference is used says which namespace
/// the Secret is read from.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key within the Secret's data.
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}

/// A signed data processing agreement (Art. 28 GDPR): which document, and since when.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Dpa {
    /// Identifier of the signed agreement in the contract system, e.g. `DPA-2026-0142`.
    /// Herald records it in notices and deletion receipts; it never reads the document.
    #[schemars(length(min = 1, max = 128))]
    pub reference: String,
    /// When the agreement was signed (RFC 3339, e.g. `2026-01-15T09:00:00Z`).
    #[x_kube(validation = Rule::new("self >= timestamp('2000-01-01T00:00:00Z') && self < timestamp('2200-01-01T00:00:00Z')")
        .message("dpa.signedAt must be between 2000-01-01 and 2200-01-01"))]
    pub signed_at: Time,
}
