//! Herald: a Kubernetes operator that runs each tenant's messaging stack and enforces,
//! in the cluster, what an EU messaging platform promises its customers as a GDPR
//! processor (EU residency, credential rotation, announced sub-processors, retention,
//! erasure within 30 days of termination, with proof).
//!
//! Module map:
//! - [`api`]: the CRD types (`herald.dev/v1alpha1`), the single source of `crds/`.
//! - [`crdgen`]: renders the CRDs as YAML (`herald crds`); [`apiref`] the API reference.
//! - [`conditions`]: merging status conditions the way kstatus readers expect.
//! - [`config`]: the operator's configuration file.
//! - [`regions`]: the region catalog and the residency decision.
//! - [`controller`]: the reconcilers and what they share.
//! - [`digest`]: SHA-256 hex digests.
//! - [`evidence`]: signing deletion receipts, and verifying them offline.
//! - [`retention`]: retention periods as the stack applies them.
//! - [`preflight`]: checks at start-up that the cluster serves Herald's API.
//! - [`server`]: `/healthz`, `/readyz` and `/metrics`.
//! - [`metrics`]: the Prometheus registry and Herald's metric families.
//! - [`provider`]: the provider credential API client (mint, revoke).
//! - [`notify`]: signed notices to customers' webhooks.
//! - [`telemetry`]: structured logging.
//! - [`run`]: `herald run`, the operator process.

pub mod api;
pub mod apiref;
pub mod conditions;
pub mod config;
pub mod controller;
pub mod crdgen;
pub mod digest;
pub mod evidence;
pub mod leader;
pub mod metrics;
pub mod notify;
pub mod outbound;
pub mod preflight;
pub mod provider;
pub mod regions;
pub mod retention;
pub mod run;
pub mod server;
pub mod telemetry;

/// The operator's version, stamped into metrics and (later) deletion receipts.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// An error and its causes on one line (`a: b: c`), for logs and conditions.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
