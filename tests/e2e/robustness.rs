//! No input can crash the operator: out-of-range day counts and timestamps are refused at
//! admission with a message naming the field, the extreme values that admission lets
//! through get a status with a reason, a DPA dated in the future does not count as
//! signed, and after all of it the operator process (its pid) is still the one that
//! started. A paused terminated Tenant still exports its deletion deadline, so the
//! deadline alerts fire whether or not Herald may act.

use herald::api::v1alpha1::conditions::{self as types, reason};
use herald::api::v1alpha1::{RetentionPolicy, Tenant};
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::wait::{Condition, await_condition};
use serde_json::{Value, json};

use crate::common::{E2E_LABEL, WAIT, apply_examples, client, operator, repo_root, unique};

/// The shared operator's pid, as its wrapper wrote it.
fn operator_pid() -> u32 {
    let path = repo_root().join("target/e2e-operator.pid");
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    text.trim()
        .parse()
        .unwrap_or_else(|e| panic!("pid {text:?}: {e}"))
}

/// The process is alive (and not a zombie).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().to_owned())
        })
        .is_some_and(|rest| !rest.starts_with('Z'))
}

fn tenant(name: &str, contract: Value, annotations: Value) -> Tenant {
    serde_json::from_value(json!({
        "apiVersion": "herald.dev/v1alpha1", "kind": "Tenant",
        "metadata": {"name": name, "labels": {E2E_LABEL: "robustness"}, "annotations": annotations},
        "spec": {
            "displayName": "E2E Robustness GmbH",
            "contract": contract,
            "residency": {"regions": ["eu-central-1"]},
            "retentionPolicyRef": {"name": "standard-eu"},
            "senders": {"replicas": 1},
            "deletionProtection": false
        }
    }))
    .unwrap()
}

/// A refusal by the API server (422) whose message contains `expected`.
fn refused<T: std::fmt::Debug>(result: kube::Result<T>, expected: &str) {
    match result {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 422, "{s:?}");
            assert!(
                s.message.contains(expected),
                "{:?} lacks {expected:?}",
                s.message
            );
        }
        other => panic!("expected a refusal naming {expected:?}, got {other:?}"),
    }
}

async fn wait_for(api: &Api<Tenant>, name: &str, cond: impl Condition<Tenant>, what: &str) {
    tokio::time::timeout(WAIT, await_condition(api.clone(), name, cond))
        .await
        .unwrap_or_else(|_| panic!("tenant {name}: {what} not reached within {WAIT:?}"))
        .unwrap();
}

#[tokio::test]
async fn out_of_range_numbers_and_times_are_refused_and_the_operator_stays_up() {
    let client = client().await;
    operator().await;
    apply_examples();
    let pid = operator_pid();
    assert!(alive(pid), "the operator {pid} is not running at the start");

    // The issue's crash: a records period of millions of years (a receipt's "kept
    // until" overflowed), and a terminatedAt at the end of time (the deadline did).
    let policies: Api<RetentionPolicy> = Api::all(client.clone());
    let huge: RetentionPolicy = serde_json::from_value(json!({
        "apiVersion": "herald.dev/v1alpha1", "kind": "RetentionPolicy",
        "metadata": {"name": unique("e2e-huge-records"), "labels": {E2E_LABEL: "robustness"}},
        "spec": {"deleteWithinDays": 30, "records": {"billingDays": 2_000_000_000}}
    }))
    .unwrap();
    refused(
        policies.create(&PostParams::default(), &huge).await,
        "billingDays in body should be less than or equal to 36500",
    );
    let tenants: Api<Tenant> = Api::all(client.clone());
    let dpa = json!({"reference": "DPA-E2E-1", "signedAt": "2026-01-01T00:00:00Z"});
    let end_of_time = tenant(
        &unique("e2e-end-of-time"),
        json!({"state": "Terminated", "terminatedAt": "9999-12-30T00:00:00Z", "dpa": dpa}),
        json!({}),
    );
    refused(
        tenants.create(&PostParams::default(), &end_of_time).await,
        "contract.terminatedAt must be between 2000-01-01 and 2200-01-01",
    );

    // The latest terminatedAt admission allows is handled: a status with a reason (a
    // date in the future is not acted upon, tests/e2e/guard.rs), and no overflow.
    let name = unique("e2e-late-end");
    let late = tenant(
        &name,
        json!({"state": "Terminated", "terminatedAt": "2199-12-31T23:59:59Z", "dpa": dpa}),
        json!({}),
    );
    tenants.create(&PostParams::default(), &late).await.unwrap();
    wait_for(
        &tenants,
        &name,
        crate::erasure::condition_is(types::STALLED, "True", reason::TERMINATED_AT_IN_FUTURE),
        "Stalled TerminatedAtInFuture",
    )
    .await;

    // A DPA dated in the future does not count as signed.
    let future = unique("e2e-future-dpa");
    let t = tenant(
        &future,
        json!({"state": "Active", "dpa": {"reference": "DPA-E2E-2", "signedAt": "2199-01-01T00:00:00Z"}}),
        json!({}),
    );
    tenants.create(&PostParams::default(), &t).await.unwrap();
    wait_for(
        &tenants,
        &future,
        crate::erasure::condition_is(types::DPA_SIGNED, "False", reason::DPA_SIGNED_IN_FUTURE),
        "DPASigned=False DPASignedInFuture",
    )
    .await;

    assert!(alive(pid), "the operator {pid} died");
    assert_eq!(operator_pid(), pid, "the operator was restarted");
    for n in [&name, &future] {
        tenants.delete(n, &DeleteParams::default()).await.unwrap();
    }
}

/// A pause never holds termination: a tenant terminated while paused is reconciled as
/// if it were not (`Paused=False`, `PauseNotHeld`), its deadline recorded and exported.
#[tokio::test]
async fn a_paused_terminated_tenant_is_not_held_and_keeps_its_deletion_deadline() {
    let client = client().await;
    operator().await;
    apply_examples();
    let name = unique("e2e-paused-end");
    let t = tenant(
        &name,
        json!({"state": "Terminated", "terminatedAt": "2026-11-01T00:00:00Z",
               "dpa": {"reference": "DPA-E2E-1", "signedAt": "2026-01-01T00:00:00Z"}}),
        json!({"herald.dev/paused": "true"}),
    );
    let tenants: Api<Tenant> = Api::all(client.clone());
    tenants.create(&PostParams::default(), &t).await.unwrap();
    wait_for(
        &tenants,
        &name,
        crate::erasure::condition_is(types::PAUSED, "False", reason::PAUSE_NOT_HELD),
        "Paused=False PauseNotHeld",
    )
    .await;
    let t = tenants.get(&name).await.unwrap();
    // standard-eu erases within 30 days: 2026-12-01T00:00:00Z.
    assert_eq!(
        t.status
            .and_then(|s| s.deletion_deadline)
            .map(|d| d.0.as_second()),
        Some(1796083200)
    );
    tenants
        .delete(&name, &DeleteParams::default())
        .await
        .unwrap();
}
