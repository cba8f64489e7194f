//! What Argo CD and Flux show for Herald's objects, read with their own code: live
//! objects in every state of the table in docs/argocd.md (and docs/flux.md) are run
//! through e2e/health/ (Argo CD's Lua runtime on docs/argocd-health.lua, and kstatus
//! `status.Compute`), and the verdicts must be the table's, row by row.

use std::collections::BTreeMap;

use herald::api::v1alpha1::{ChannelBinding, RetentionPolicy, Subprocessor, Tenant};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::wait::await_condition;
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::channel_binding::{create_binding, create_subprocessor, create_tenant, put_secret};
use crate::common::{CONTROL_NAMESPACE, WAIT, client, operator, repo_root, unique};

/// The checker's path, built on first use (cached in ~/.cache/herald).
fn health_check() -> std::path::PathBuf {
    crate::common::e2e_tool("health")
}

/// Runs the checker on `objects`: per object, (Argo CD status, kstatus status, messages).
fn check(objects: &[Value]) -> Vec<(String, String, String)> {
    use std::io::Write;
    let mut child = std::process::Command::new(health_check())
        .arg(repo_root().join("docs/argocd-health.lua"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&serde_json::to_vec(objects).unwrap())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "health-check failed");
    let results: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    results
        .iter()
        .map(|r| {
            (
                r["argocd"]["status"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                r["kstatus"]["status"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                format!(
                    "argocd: {}; kstatus: {}",
                    r["argocd"]["message"], r["kstatus"]["message"]
                ),
            )
        })
        .collect()
}

/// The state table of `doc`: state → (Argo CD, kstatus). Rows are `| state | Herald
/// status | Argo CD | kstatus |` under the header that starts with `| State |`.
pub fn state_table(doc: &str) -> BTreeMap<String, (String, String)> {
    let text = std::fs::read_to_string(repo_root().join(doc)).unwrap();
    let mut rows = BTreeMap::new();
    let mut inside = false;
    for line in text.lines() {
        if line.starts_with("| State |") {
            inside = true;
            continue;
        }
        if !inside || line.starts_with("|---") {
            continue;
        }
        if !line.starts_with('|') {
            break;
        }
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        assert_eq!(cells.len(), 4, "{doc}: a row has 4 cells: {line}");
        rows.insert(
            cells[0].to_owned(),
            (cells[2].to_owned(), cells[3].to_owned()),
        );
    }
    assert!(!rows.is_empty(), "{doc}: no state table");
    rows
}

/// Waits until the object satisfies `f`, and returns it.
async fn wait<K>(api: Api<K>, name: &str, what: &str, f: impl Fn(&K) -> bool) -> K
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let cond = move |o: Option<&K>| o.is_some_and(&f);
    match tokio::time::timeout(WAIT, await_condition(api.clone(), name, cond)).await {
        Ok(Ok(Some(o))) => o,
        _ => panic!(
            "{name}: {what} not reached in {WAIT:?}: {:?}",
            api.get_opt(name).await
        ),
    }
}

fn cond(
    conditions: Option<&Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>>,
    type_: &str,
) -> Option<(String, String)> {
    conditions?
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone()))
}

fn tenant_is(
    type_: &'static str,
    status: &'static str,
    reason: &'static str,
) -> impl Fn(&Tenant) -> bool {
    move |t| {
        cond(t.status.as_ref().map(|s| &s.conditions), type_)
            == Some((status.into(), reason.into()))
            && t.status.as_ref().and_then(|s| s.observed_generation) == t.metadata.generation
    }
}

fn binding_is(
    type_: &'static str,
    status: &'static str,
    reason: &'static str,
) -> impl Fn(&ChannelBinding) -> bool {
    move |b| {
        cond(b.status.as_ref().map(|s| &s.conditions), type_)
            == Some((status.into(), reason.into()))
    }
}

async fn merge<K>(api: &Api<K>, name: &str, patch: Value)
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    api.patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .unwrap();
}

/// A live active tenant's status recomputed by the operator's own function with a
/// backups purge CronJob that has not succeeded for 30 days: a CronJob's creation time
/// cannot be backdated on a live cluster.
fn with_purge_overdue(live: &Tenant) -> Tenant {
    use herald::controller::tenant::{decide::decide, status};
    use k8s_openapi::jiff::{SignedDuration, Timestamp};
    let now = Timestamp::now();
    let config = herald::config::OperatorConfig::load(None).unwrap();
    let policy = herald::retention::Periods::default();
    let d = decide(live, &config, policy, true, now);
    let month_ago = now - SignedDuration::from_hours(30 * 24);
    let observed = status::Observed {
        senders: Some(status::SendersObserved {
            desired: 1,
            ready: 1,
            updated: 1,
            total: 1,
            generation_observed: true,
        }),
        purges: vec![status::PurgeObserved {
            category: herald::retention::Category::Backups,
            created: Some(month_ago),
            last_success: None,
        }],
        ..Default::default()
    };
    let mut t = live.clone();
    t.status = Some(status::compute(live, &d, &observed, now));
    t
}

#[tokio::test]
async fn argo_cd_and_kstatus_read_every_state_as_the_docs_table_says() {
    let client: Client = client().await;
    operator().await;
    let tenants: Api<Tenant> = Api::all(client.clone());
    let bindings: Api<ChannelBinding> = Api::namespaced(client.clone(), CONTROL_NAMESPACE);
    let paused = json!({"metadata": {"annotations": {"herald.dev/paused": "true"}}});

    // Tenants.
    let active = unique("h-active");
    create_tenant(&client, &active, json!({})).await;
    let suspended = unique("h-susp");
    create_tenant(
        &client,
        &suspended,
        json!({"contract": {"state": "Suspended",
        "dpa": {"reference": "DPA-E2E", "signedAt": "2026-01-01T00:00:00Z"}}}),
    )
    .await;
    let no_dpa = unique("h-nodpa");
    create_tenant(&client, &no_dpa, json!({"contract": {"state": "Active"}})).await;
    let never_built = unique("h-never");
    {
        // Paused at creation: the annotation is there before the operator ever sees it.
        let t: Tenant = serde_json::from_value(json!({
            "apiVersion": "herald.dev/v1alpha1", "kind": "Tenant",
            "metadata": {"name": never_built, "annotations": {"herald.dev/paused": "true"},
                         "labels": {crate::common::E2E_LABEL: "health"}},
            "spec": {"displayName": "never built",
                     "contract": {"state": "Active", "dpa": {"reference": "DPA-E2E", "signedAt": "2026-01-01T00:00:00Z"}},
                     "residency": {"regions": ["eu-central-1"]}, "senders": {"replicas": 1},
                     "retentionPolicyRef": {"name": "standard-eu"}, "deletionProtection": false}
        }))
        .unwrap();
        tenants.create(&Default::default(), &t).await.unwrap();
    }
    let paused_changed = unique("h-pchg");
    create_tenant(&client, &paused_changed, json!({})).await;

    // Bindings, on a Subprocessor that predates their tenants (effective at once).
    let sp = unique("h-sp");
    create_subprocessor(&client, &sp, 30).await;
    // One tenant per binding: two bindings of one tenant's channel would make all but
    // the oldest a DuplicateBinding.
    let (b_tenant, b_terminated) = (unique("h-bt"), unique("h-btt"));
    let (b_tenant_susp, b_tenant_down, b_tenant_paused) =
        (unique("h-bts"), unique("h-btd"), unique("h-btp"));
    for t in [
        &b_tenant,
        &b_terminated,
        &b_tenant_susp,
        &b_tenant_down,
        &b_tenant_paused,
    ] {
        create_tenant(&client, t, json!({})).await;
    }
    let mut made = Vec::new();
    for (prefix, tenant, extra) in [
        ("h-b-ok", &b_tenant, json!(null)),
        ("h-b-susp", &b_tenant_susp, json!({"suspend": true})),
        ("h-b-term", &b_terminated, json!(null)),
    ] {
        let (name, source) = (unique(prefix), unique(&format!("{prefix}-src")));
        put_secret(&client, &source, Some(tenant), &[("apiKey", "health-e2e")]).await;
        create_binding(
            &client,
            &name,
            tenant,
            &sp,
            json!({"secretRef": {"name": source}}),
        )
        .await;
        if !extra.is_null() {
            merge(&bindings, &name, json!({"spec": extra})).await;
        }
        made.push(name);
    }
    let [b_ok, b_susp, b_term] = [made[0].clone(), made[1].clone(), made[2].clone()];
    // A provider that keeps failing: the configured provider answers 503 for this tenant.
    let b_down = unique("h-b-down");
    crate::provider_router::router().register(
        &b_tenant_down,
        axum::Router::new().fallback(|| async { axum::http::StatusCode::SERVICE_UNAVAILABLE }),
    );
    create_binding(
        &client,
        &b_down,
        &b_tenant_down,
        &sp,
        json!({"providerApi": {"name": crate::provider_router::PROVIDER}}),
    )
    .await;

    // Paused, then their spec changed: a binding and a Subprocessor of their own.
    let b_paused = unique("h-b-paused");
    let b_paused_src = unique("h-b-paused-src");
    put_secret(
        &client,
        &b_paused_src,
        Some(&b_tenant_paused),
        &[("apiKey", "health-e2e")],
    )
    .await;
    create_binding(
        &client,
        &b_paused,
        &b_tenant_paused,
        &sp,
        json!({"secretRef": {"name": b_paused_src}}),
    )
    .await;
    let sp_paused = unique("h-sp-paused");
    create_subprocessor(&client, &sp_paused, 30).await;
    let subprocessors: Api<Subprocessor> = Api::all(client.clone());

    // Drive each into its state.
    let active_t = wait(
        tenants.clone(),
        &active,
        "Ready",
        tenant_is("Ready", "True", "Reconciled"),
    )
    .await;
    wait(
        tenants.clone(),
        &paused_changed,
        "Ready",
        tenant_is("Ready", "True", "Reconciled"),
    )
    .await;
    merge(&tenants, &paused_changed, paused.clone()).await;
    wait(
        tenants.clone(),
        &paused_changed,
        "Paused",
        tenant_is("Paused", "True", "Paused"),
    )
    .await;
    merge(
        &tenants,
        &paused_changed,
        json!({"spec": {"senders": {"replicas": 2}}}),
    )
    .await;
    wait(
        bindings.clone(),
        &b_term,
        "Ready",
        binding_is("Ready", "True", "Reconciled"),
    )
    .await;
    merge(
        &tenants,
        &b_terminated,
        crate::erasure::terminate_at(crate::erasure::days_ago(0)),
    )
    .await;

    let mut objects: Vec<(&str, Value)> = Vec::new();
    let t = |o: Tenant| serde_json::to_value(o).unwrap();
    let b = |o: ChannelBinding| serde_json::to_value(o).unwrap();
    objects.push(("Tenant: active, senders rolled out", t(active_t.clone())));
    objects.push((
        "Tenant: contract Suspended",
        t(wait(
            tenants.clone(),
            &suspended,
            "suspended",
            tenant_is("Ready", "True", "ContractSuspended"),
        )
        .await),
    ));
    objects.push((
        "Tenant: no signed DPA",
        t(wait(
            tenants.clone(),
            &no_dpa,
            "stalled",
            tenant_is("Stalled", "True", "DPAMissing"),
        )
        .await),
    ));
    objects.push((
        "Tenant: paused before it was ever built",
        t(wait(
            tenants.clone(),
            &never_built,
            "paused",
            tenant_is("Paused", "True", "Paused"),
        )
        .await),
    ));
    objects.push((
        "Tenant: paused, then its spec changed",
        t(wait(
            tenants.clone(),
            &paused_changed,
            "paused at generation 2",
            |x: &Tenant| {
                tenant_is("Paused", "True", "Paused")(x) && x.metadata.generation == Some(2)
            },
        )
        .await),
    ));
    objects.push((
        "Tenant: a retention purge overdue",
        t(with_purge_overdue(&active_t)),
    ));
    objects.push((
        "ChannelBinding: credential in place",
        b(wait(
            bindings.clone(),
            &b_ok,
            "Ready",
            binding_is("Ready", "True", "Reconciled"),
        )
        .await),
    ));
    objects.push((
        "ChannelBinding: spec.suspend",
        b(wait(
            bindings.clone(),
            &b_susp,
            "suspended",
            binding_is("Ready", "True", "Suspended"),
        )
        .await),
    ));
    objects.push((
        "ChannelBinding: its tenant terminated, credentials revoked",
        b(wait(
            bindings.clone(),
            &b_term,
            "terminated",
            |x: &ChannelBinding| {
                binding_is("Ready", "True", "TenantTerminated")(x)
                    && x.status
                        .as_ref()
                        .is_some_and(|s| s.credentials_revoked_at.is_some())
            },
        )
        .await),
    ));
    objects.push((
        "ChannelBinding: provider unreachable past the stall bound",
        b(wait(
            bindings.clone(),
            &b_down,
            "stalled",
            binding_is("Stalled", "True", "ProviderFailed"),
        )
        .await),
    ));
    objects.push((
        "Subprocessor: effective",
        serde_json::to_value(
            Api::<Subprocessor>::all(client.clone())
                .get(&sp)
                .await
                .unwrap(),
        )
        .unwrap(),
    ));
    objects.push((
        "RetentionPolicy",
        serde_json::to_value(
            Api::<RetentionPolicy>::all(client.clone())
                .get("standard-eu")
                .await
                .unwrap(),
        )
        .unwrap(),
    ));

    // Reconciled once, then paused, then a spec change Herald leaves alone.
    wait(
        bindings.clone(),
        &b_paused,
        "Ready",
        binding_is("Ready", "True", "Reconciled"),
    )
    .await;
    merge(&bindings, &b_paused, paused.clone()).await;
    merge(
        &bindings,
        &b_paused,
        json!({"spec": {"rotation": {"intervalDays": 45}}}),
    )
    .await;
    let sp_ready = |x: &Subprocessor| {
        cond(x.status.as_ref().map(|s| &s.conditions), "Ready").is_some_and(|(s, _)| s == "True")
    };
    wait(subprocessors.clone(), &sp_paused, "Ready", sp_ready).await;
    merge(&subprocessors, &sp_paused, paused.clone()).await;
    merge(
        &subprocessors,
        &sp_paused,
        json!({"spec": {"noticePeriodDays": 31}}),
    )
    .await;
    objects.push((
        "ChannelBinding: paused, then its spec changed",
        b(wait(
            bindings.clone(),
            &b_paused,
            "paused at generation 2",
            |x: &ChannelBinding| {
                binding_is("Paused", "True", "Paused")(x)
                    && x.metadata.generation == Some(2)
                    && x.status.as_ref().and_then(|s| s.observed_generation) == Some(2)
            },
        )
        .await),
    ));
    objects.push((
        "Subprocessor: paused, then its spec changed",
        serde_json::to_value(
            wait(
                subprocessors.clone(),
                &sp_paused,
                "paused at generation 2",
                |x: &Subprocessor| {
                    cond(x.status.as_ref().map(|s| &s.conditions), "Paused")
                        == Some(("True".into(), "Paused".into()))
                        && x.metadata.generation == Some(2)
                        && x.status.as_ref().and_then(|s| s.observed_generation) == Some(2)
                },
            )
            .await,
        )
        .unwrap(),
    ));

    // A BreachNotice naming a tenant without an endpoint; data-subject requests, one
    // answered, one whose subject Secret is another tenant's.
    let bn_tenant = unique("h-bn");
    create_tenant(&client, &bn_tenant, json!({})).await;
    let bn = unique("h-bn-notice");
    let notice: herald::api::v1alpha1::BreachNotice = serde_json::from_value(json!({
        "apiVersion": "herald.dev/v1alpha1", "kind": "BreachNotice",
        "metadata": {"name": bn, "namespace": CONTROL_NAMESPACE, "labels": {crate::common::E2E_LABEL: "health"}},
        "spec": {"awareAt": crate::dsr::whole_now().to_string(), "affectedTenants": {"names": [bn_tenant]},
                 "nature": "e2e health: a breach nobody can be told of",
                 "contact": {"name": "Data Protection Office", "email": "dpo@platform.example"}}
    }))
    .unwrap();
    let breaches: Api<herald::api::v1alpha1::BreachNotice> =
        Api::namespaced(client.clone(), CONTROL_NAMESPACE);
    breaches.create(&Default::default(), &notice).await.unwrap();
    objects.push((
        "BreachNotice: an affected tenant without an endpoint",
        serde_json::to_value(
            wait(
                breaches.clone(),
                &bn,
                "stalled",
                |x: &herald::api::v1alpha1::BreachNotice| {
                    cond(x.status.as_ref().map(|s| &s.conditions), "Stalled")
                        == Some(("True".into(), "NoNotificationEndpoint".into()))
                },
            )
            .await,
        )
        .unwrap(),
    ));
    let requests = crate::dsr::api(&client).await;
    let (dsr_ok, dsr_foreign) = (unique("h-dsr-ok"), unique("h-dsr-foreign"));
    for (t, owner) in [
        (&dsr_ok, dsr_ok.clone()),
        (&dsr_foreign, unique("h-dsr-other")),
    ] {
        crate::dsr::live_tenant(&client, t).await;
        let secret = format!("{t}-subject");
        crate::dsr::subject_secret(&client, &secret, &owner, t, "health-e2e-subject").await;
        requests
            .create(
                &Default::default(),
                &crate::dsr::request(t, t, "Erasure", crate::dsr::whole_now(), &secret),
            )
            .await
            .unwrap();
    }
    objects.push((
        "DataSubjectRequest: answered",
        serde_json::to_value(
            crate::dsr::wait_dsr(&client, &dsr_ok, "answered", |d| {
                crate::dsr::condition(d, "Ready") == Some(("True".into(), "Answered".into()))
            })
            .await,
        )
        .unwrap(),
    ));
    objects.push((
        "DataSubjectRequest: subject Secret of another tenant",
        serde_json::to_value(
            crate::dsr::wait_dsr(&client, &dsr_foreign, "stalled", |d| {
                crate::dsr::condition(d, "Stalled")
                    == Some(("True".into(), "SubjectSecretNotForTenant".into()))
            })
            .await,
        )
        .unwrap(),
    ));

    // The checker needs apiVersion and kind, as Argo CD and kstatus get them.
    let values: Vec<Value> = objects.iter().map(|(_, v)| v.clone()).collect();
    let verdicts = check(&values);
    let measured: BTreeMap<String, (String, String)> = objects
        .iter()
        .zip(&verdicts)
        .map(|((state, _), (argo, ks, _))| ((*state).to_owned(), (argo.clone(), ks.clone())))
        .collect();
    let why: Vec<String> = objects
        .iter()
        .zip(&verdicts)
        .map(|((state, _), (a, k, m))| format!("{state}: {a} / {k} ({m})"))
        .collect();
    for doc in ["docs/argocd.md", "docs/flux.md"] {
        assert_eq!(
            state_table(doc),
            measured,
            "{doc}'s table is not what the tools say:\n{}",
            why.join("\n")
        );
    }
}
