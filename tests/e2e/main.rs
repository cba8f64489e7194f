//! End-to-end tests against a real control plane (`make e2e` brings up the local one
//! from `e2e/cluster/`, or point KUBECONFIG at any cluster). Built only with the `e2e`
//! feature; once built, an unreachable cluster fails every test, it never skips.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step must fail the test loudly

mod api;
mod audit;
mod breach;
mod breach_records;
mod channel_binding;
mod chart;
mod common;
mod dsr;
mod erasure;
mod erasure_held;
mod evidence;
mod guard;
mod health;
mod identity;
mod leader;
mod network;
mod provider_router;
mod rbac;
mod restart;
mod retention;
mod robustness;
mod shard;
mod smoke;
mod subprocessor;
mod tenant;
mod tour;
