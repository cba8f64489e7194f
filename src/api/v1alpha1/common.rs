//! Pieces the kinds share: references by name, the DPA record, the CEL rules for outbound
//! URLs, names, printable text and image references, the EEA and the ISO country codes.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::KubeSchema;
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
///
/// The one rule every URL field uses. A scheme is case-insensitive and `url()` lower-cases
/// it, so `HTTPS://user:pw@host/` is an https URL: every pattern below is anchored on a
/// scheme of either case (`(?i)`), or such a URL would pass the scheme test and skip the
/// userinfo, address and port tests.
pub const HTTPS_URL_RULE: &str = "isURL(self) && (url(self).getScheme() == 'https' || \
     (url(self).getScheme() == 'http' && url(self).getHostname() in ['127.0.0.1', '::1', 'localhost'])) && \
     !self.matches('(?i)^[a-z][a-z0-9+.-]*://[^/?#@]*@') && \
     (!self.matches('(?i)^[a-z][a-z0-9+.-]*://(\\\\[|[0-9.]+([:/?#]|$))') || url(self).getHostname() in ['127.0.0.1', '::1']) && \
     !self.matches('(?i)^[a-z][a-z0-9+.-]*://[^/?#\\\\[\\\\]]*:(0*|0[0-9]*|[0-9]{6,}|6553[6-9]|655[4-9][0-9]|65[6-9][0-9]{2}|6[6-9][0-9]{3}|[7-9][0-9]{4})([/?#]|$)')";

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
    cel_list(&EEA_COUNTRIES)
}

/// `['A', 'B', …]`: a CEL list literal of `items`.
fn cel_list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|c| format!("'{c}'")).collect();
    format!("[{}]", quoted.join(", "))
}

/// Every officially assigned ISO 3166-1 alpha-2 code (249), alphabetically: the one list
/// country codes are checked against at admission ([`iso_country_rule`]). The same set
/// as the tz database's `iso3166.tab`. `UK` and `EL` are not in it (the ISO codes are
/// `GB` and `GR`), nor are reserved codes such as `EU` or `XK`.
#[rustfmt::skip] // one line per initial letter
pub const ISO_3166_ALPHA2: [&str; 249] = [
    "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW", "AX", "AZ",
    "BA", "BB", "BD", "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ", "BR", "BS", "BT", "BV", "BW", "BY", "BZ",
    "CA", "CC", "CD", "CF", "CG", "CH", "CI", "CK", "CL", "CM", "CN", "CO", "CR", "CU", "CV", "CW", "CX", "CY", "CZ",
    "DE", "DJ", "DK", "DM", "DO", "DZ",
    "EC", "EE", "EG", "EH", "ER", "ES", "ET",
    "FI", "FJ", "FK", "FM", "FO", "FR",
    "GA", "GB", "GD", "GE", "GF", "GG", "GH", "GI", "GL", "GM", "GN", "GP", "GQ", "GR", "GS", "GT", "GU", "GW", "GY",
    "HK", "HM", "HN", "HR", "HT", "HU",
    "ID", "IE", "IL", "IM", "IN", "IO", "IQ", "IR", "IS", "IT",
    "JE", "JM", "JO", "JP",
    "KE", "KG", "KH", "KI", "KM", "KN", "KP", "KR", "KW", "KY", "KZ",
    "LA", "LB", "LC", "LI", "LK", "LR", "LS", "LT", "LU", "LV", "LY",
    "MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK", "ML", "MM", "MN", "MO", "MP", "MQ", "MR", "MS", "MT", "MU", "MV", "MW", "MX", "MY", "MZ",
    "NA", "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP", "NR", "NU", "NZ",
    "OM",
    "PA", "PE", "PF", "PG", "PH", "PK", "PL", "PM", "PN", "PR", "PS", "PT", "PW", "PY",
    "QA",
    "RE", "RO", "RS", "RU", "RW",
    "SA", "SB", "SC", "SD", "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS", "ST", "SV", "SX", "SY", "SZ",
    "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO", "TR", "TT", "TV", "TW", "TZ",
    "UA", "UG", "UM", "US", "UY", "UZ",
    "VA", "VC", "VE", "VG", "VI", "VN", "VU",
    "WF", "WS",
    "YE", "YT",
    "ZA", "ZM", "ZW",
];

/// CEL on a list of country codes: each is in [`ISO_3166_ALPHA2`] (generated from it, so
/// the rule and the constant cannot drift apart).
pub fn iso_country_rule() -> String {
    format!("self.all(c, c in {})", cel_list(&ISO_3166_ALPHA2))
}

/// CEL: `self.name` is a DNS-1123 subdomain, what the name of a Kubernetes object (a
/// Secret, a cluster-scoped Herald object) must be; the schema bounds the length. No
/// backslash in the pattern, so it reads the same in Rust, CEL and RE2.
pub const NAME_IS_SUBDOMAIN_RULE: &str =
    "self.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')";

/// What a refusal of [`NAME_IS_SUBDOMAIN_RULE`] says.
pub const NAME_IS_SUBDOMAIN_MESSAGE: &str = "name must be the name of a Kubernetes object: a DNS-1123 subdomain (lowercase letters, digits, '-' and '.', starting and ending with a letter or digit)";

/// CEL: the string has no control character (C0, DEL, C1), no line or paragraph
/// separator and no bidirectional override or isolate (which make a name read as
/// another in a notice or a terminal). Letters of any script, accents and emoji pass.
pub const PRINTABLE_RULE: &str =
    r"!self.matches('[\\p{Cc}\\p{Zl}\\p{Zp}\\x{202A}-\\x{202E}\\x{2066}-\\x{2069}]')";

/// What a refusal of [`PRINTABLE_RULE`] says, after the field's name.
pub const PRINTABLE_MESSAGE: &str = "must be printable: no control characters (newline, tab, escape, …), line separators or bidirectional overrides";

/// CEL: a container image reference close to the distribution reference grammar (the
/// one container runtimes parse): an optional registry host (with port), lowercase path
/// components separated by `.`, `_`, `__` or dashes, an optional tag of at most 128
/// characters and an optional digest (`@sha256:<hex>`). The schema bounds the length.
/// No IPv6 registry literal. Character classes instead of backslashes, so it reads the
/// same in Rust, CEL and RE2.
pub const IMAGE_RULE: &str = "self.matches('^([a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?([.][a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?)*(:[0-9]+)?/)?[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*(/[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*)*(:[a-zA-Z0-9_][a-zA-Z0-9_.-]{0,127})?(@[A-Za-z][A-Za-z0-9]*([-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?$')";

/// A reference to another object by name: a cluster-scoped Herald object, or an object in
/// the referring object's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[x_kube(validation = Rule::new(NAME_IS_SUBDOMAIN_RULE).message(NAME_IS_SUBDOMAIN_MESSAGE))]
pub struct ObjectRef {
    /// Name of the referenced object.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// A reference to one key of a Secret. Where the reference is used says which namespace
/// the Secret is read from.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[x_kube(
    validation = Rule::new(NAME_IS_SUBDOMAIN_RULE).message(NAME_IS_SUBDOMAIN_MESSAGE),
    validation = Rule::new("self.key.matches('^[-._a-zA-Z0-9]+$')")
        .message("key must be a key of a Secret's data: letters, digits, '-', '_' and '.' only"),
)]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key within the Secret's data.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// A signed data processing agreement (Art. 28 GDPR): which document, and since when.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Dpa {
    /// Identifier of the signed agreement in the contract system, e.g. `DPA-2026-0142`.
    /// Herald records it in notices and deletion receipts; it never reads the document.
    #[schemars(length(min = 1, max = 128))]
    #[x_kube(validation = Rule::new(PRINTABLE_RULE).message(format!("dpa.reference {PRINTABLE_MESSAGE}").as_str()))]
    pub reference: String,
    /// When the agreement was signed (RFC 3339, e.g. `2026-01-15T09:00:00Z`).
    #[x_kube(validation = Rule::new("self >= timestamp('2000-01-01T00:00:00Z') && self < timestamp('2200-01-01T00:00:00Z')")
        .message("dpa.signedAt must be between 2000-01-01 and 2200-01-01"))]
    pub signed_at: Time,
}
