//! ChannelBinding end to end: credentials delivered as immutable versioned Secrets and
//! mounted into the senders, rotated on source change and on request, revoked at the
//! provider only after the senders rolled, kept when the provider is down, and never
//! leaked into logs, events, status or metrics. The provider is a local HTTP server.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use herald::api::v1alpha1::{ChannelBinding, Subprocessor, Tenant};
use herald::controller::tenant::bindings::rolled_out_versions;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Event, Secret};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::await_condition;
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use crate::common::{
    CONTROL_NAMESPACE, E2E_LABEL, WAIT, apply_manifests, client, operator, repo_root, unique,
};
use crate::provider_router;

/// The condition of `type_` on a binding: (status, reason).
pub fn condition(b: &ChannelBinding, type_: &str) -> Option<(String, String)> {
    b.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone()))
}

/// Waits until the binding satisfies `f`, failing with its last status.
pub async fn wait_binding(
    client: &Client,
    name: &str,
    what: &str,
    f: impl Fn(&ChannelBinding) -> bool,
) -> ChannelBinding {
    let api: Api<ChannelBinding> = Api::namespaced(client.clone(), CONTROL_NAMESPACE);
    let cond = move |b: Option<&ChannelBinding>| b.is_some_and(&f);
    match tokio::time::timeout(WAIT, await_condition(api.clone(), name, cond)).await {
        Ok(Ok(Some(b))) => b,
        _ => {
            let now = api.get_opt(name).await.ok().flatten();
            panic!(
                "binding {name}: {what} not reached in {WAIT:?}; status: {}",
                serde_json::to_string_pretty(&now.and_then(|b| b.status)).unwrap()
            )
        }
    }
}

/// Waits until the tenant's sender Deployment is rolled out with `channel` at `version`
/// (`None`: without the channel).
pub async fn wait_rolled_out(client: &Client, tenant: &str, channel: &str, version: Option<i64>) {
    let api: Api<Deployment> = Api::namespaced(client.clone(), &format!("tenant-{tenant}"));
    let channel = channel.to_owned();
    let cond = move |d: Option<&Deployment>| {
        d.and_then(rolled_out_versions)
            .is_some_and(|v| v.get(&channel).copied() == version)
    };
    tokio::time::timeout(WAIT, await_condition(api, "herald-sender", cond))
        .await
        .unwrap_or_else(|_| panic!("tenant-{tenant}: senders not rolled out with {version:?}"))
        .unwrap();
}

/// The retention policies the tenants reference (examples/20), applied once per call.
pub fn apply_retention_policies() {
    apply_manifests(&repo_root().join("examples/20-retention-policies.yaml"));
}

/// Creates an active tenant with one sender, labelled for cleanup; `extra` is merged
/// into its spec.
pub async fn create_tenant(client: &Client, name: &str, extra: Value) -> Tenant {
    apply_retention_policies();
    let mut spec = json!({
        "displayName": name,
        "contract": {"state": "Active", "dpa": {"reference": "DPA-E2E", "signedAt": "2026-01-01T00:00:00Z"}},
        "residency": {"regions": ["eu-central-1"]},
        "senders": {"replicas": 1},
        "retentionPolicyRef": {"name": "standard-eu"},
        "deletionProtection": false,
    });
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    let t: Tenant = serde_json::from_value(json!({
        "apiVersion": "herald.dev/v1alpha1", "kind": "Tenant",
        "metadata": {"name": name, "labels": {E2E_LABEL: "channel-binding"}},
        "spec": spec,
    }))
    .unwrap();
    Api::<Tenant>::all(client.clone())
        .create(&PostParams::default(), &t)
        .await
        .unwrap()
}

/// Creates an EEA SMS carrier.
pub async fn create_subprocessor(client: &Client, name: &str, notice_days: i32) -> Subprocessor {
    let sp: Subprocessor = serde_json::from_value(json!({
        "apiVersion": "herald.dev/v1alpha1", "kind": "Subprocessor",
        "metadata": {"name": name, "labels": {E2E_LABEL: "channel-binding"}},
        "spec": {"legalName": "E2E Carrier AB", "category": "CommunicationChannel",
                 "purpose": "SMS termination in the EEA", "locations": ["SE", "DE"], "safeguard": "EEA",
                 "dpa": {"reference": "SUB-E2E", "signedAt": "2026-01-01T00:00:00Z"},
                 "channels": ["sms"], "noticePeriodDays": notice_days}
    }))
    .unwrap();
    Api::<Subprocessor>::all(client.clone())
        .create(&PostParams::default(), &sp)
        .await
        .unwrap()
}

/// Creates (or replaces) a Secret in the control namespace, labelled for `owner` (the
/// tenant it is read for; `None` for the platform's provider token).
pub async fn put_secret(client: &Client, name: &str, owner: Option<&str>, data: &[(&str, &str)]) {
    let data: BTreeMap<&str, &str> = data.iter().copied().collect();
    let mut labels = json!({E2E_LABEL: "channel-binding"});
    if let Some(tenant) = owner {
        labels["herald.dev/tenant"] = json!(tenant);
    }
    let s: Secret = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "stringData": data,
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), CONTROL_NAMESPACE)
        .patch(
            name,
            &PatchParams::apply("herald-e2e").force(),
            &Patch::Apply(&s),
        )
        .await
        .unwrap();
}

/// Creates an SMS ChannelBinding with `credential` as its source and no overlap.
pub async fn create_binding(
    client: &Client,
    name: &str,
    tenant: &str,
    sp: &str,
    credential: Value,
) {
    let b: ChannelBinding = serde_json::from_value(json!({
        "apiVersion": "herald.dev/v1alpha1", "kind": "ChannelBinding",
        "metadata": {"name": name, "namespace": CONTROL_NAMESPACE, "labels": {E2E_LABEL: "channel-binding"}},
        "spec": {"tenantRef": {"name": tenant}, "channel": "sms", "subprocessorRef": {"name": sp},
                 "credential": credential, "rotation": {"intervalDays": 30, "overlapMinutes": 0}}
    }))
    .unwrap();
    Api::<ChannelBinding>::namespaced(client.clone(), CONTROL_NAMESPACE)
        .create(&PostParams::default(), &b)
        .await
        .unwrap();
}

/// Asks for a rotation with the annotation.
async fn request_rotation(client: &Client, name: &str, value: &str) {
    Api::<ChannelBinding>::namespaced(client.clone(), CONTROL_NAMESPACE)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"annotations": {"herald.dev/rotate-requested-at": value}}}),
            ),
        )
        .await
        .unwrap();
}

fn version_is(v: i64) -> impl Fn(&ChannelBinding) -> bool {
    move |b| {
        b.status.as_ref().is_some_and(|s| {
            s.credential_version == Some(v) && s.previous_credential_version.is_none()
        }) && condition(b, "Ready").is_some_and(|(s, _)| s == "True")
    }
}

/// Everything an observer could see of the binding: its status, its events, the
/// operator's log and metrics. None of it may contain a credential.
async fn assert_no_leak(client: &Client, binding: &str, values: &[&str]) {
    let op = operator().await;
    let b = Api::<ChannelBinding>::namespaced(client.clone(), CONTROL_NAMESPACE)
        .get(binding)
        .await
        .unwrap();
    let status = serde_json::to_string(&b.status).unwrap();
    // Events are published after the status that reports the same news: wait for the
    // first one (a watch sees it at once, or as soon as it is created).
    let events_api = Api::<Event>::namespaced(client.clone(), CONTROL_NAMESPACE);
    let involved = format!("involvedObject.name={binding}");
    {
        use futures::{StreamExt, TryStreamExt};
        use kube::runtime::{WatchStreamExt, watcher};
        let mut first = watcher(
            events_api.clone(),
            watcher::Config::default().fields(&involved),
        )
        .applied_objects()
        .boxed();
        let seen = tokio::time::timeout(WAIT, first.try_next()).await;
        assert!(
            matches!(seen, Ok(Ok(Some(_)))),
            "the binding has no events: {seen:?}"
        );
    }
    let events = events_api
        .list(&ListParams::default().fields(&involved))
        .await
        .unwrap();
    assert!(!events.items.is_empty(), "the binding has events");
    let events = serde_json::to_string(&events.items).unwrap();
    let log = op.log();
    let metrics = op.metrics().await;
    for v in values {
        for (what, text) in [
            ("status", &status),
            ("events", &events),
            ("operator log", &log),
            ("metrics", &metrics),
        ] {
            assert!(
                !text.contains(v),
                "a credential value appears in the {what}"
            );
        }
    }
}

/// The data of a credential Secret in the tenant namespace.
async fn secret_data(
    client: &Client,
    tenant: &str,
    name: &str,
) -> Option<(Secret, BTreeMap<String, String>)> {
    let s = Api::<Secret>::namespaced(client.clone(), &format!("tenant-{tenant}"))
        .get_opt(name)
        .await
        .unwrap()?;
    let data = s
        .data
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8(v.0).unwrap()))
        .collect();
    Some((s, data))
}

#[tokio::test]
async fn a_secret_sourced_credential_is_versioned_mounted_and_rolled_on_change() {
    let client = client().await;
    operator().await;
    let (tenant, sp, binding, source) = (
        unique("cb-sec"),
        unique("cb-sec-sp"),
        unique("cb-sec-b"),
        unique("cb-sec-src"),
    );
    // The Subprocessor predates the tenant: effective at once, no notice owed.
    create_subprocessor(&client, &sp, 30).await;
    create_tenant(&client, &tenant, json!({})).await;
    let first = format!("first-{}", unique("value"));
    put_secret(&client, &source, Some(&tenant), &[("apiKey", &first)]).await;
    create_binding(
        &client,
        &binding,
        &tenant,
        &sp,
        json!({"secretRef": {"name": source}}),
    )
    .await;

    let b = wait_binding(&client, &binding, "version 1 Ready", version_is(1)).await;
    assert_eq!(
        b.status.as_ref().unwrap().credential_secret.as_deref(),
        Some("herald-cred-sms-v1")
    );
    let (secret, data) = secret_data(&client, &tenant, "herald-cred-sms-v1")
        .await
        .expect("v1 Secret");
    assert_eq!(secret.immutable, Some(true));
    assert_eq!(data.get("apiKey"), Some(&first));
    let webhook_key = data
        .get("webhook-signing-key")
        .cloned()
        .expect("operator-generated webhook key");
    assert_eq!(webhook_key.len(), 64);
    assert_eq!(secret.labels().get("herald.dev/tenant"), Some(&tenant));
    assert_eq!(
        secret.labels().get("herald.dev/channel-binding"),
        Some(&binding)
    );
    wait_rolled_out(&client, &tenant, "sms", Some(1)).await;

    // A new value in the source: version 2, the senders roll, version 1 goes.
    let second = format!("second-{}", unique("value"));
    put_secret(&client, &source, Some(&tenant), &[("apiKey", &second)]).await;
    wait_binding(&client, &binding, "version 2 Ready", version_is(2)).await;
    wait_rolled_out(&client, &tenant, "sms", Some(2)).await;
    let (_, data2) = secret_data(&client, &tenant, "herald-cred-sms-v2")
        .await
        .expect("v2 Secret");
    assert_eq!(data2.get("apiKey"), Some(&second));
    assert_ne!(
        data2.get("webhook-signing-key"),
        Some(&webhook_key),
        "a new version has a new webhook key"
    );
    assert!(
        secret_data(&client, &tenant, "herald-cred-sms-v1")
            .await
            .is_none(),
        "v1 deleted after the rollout"
    );

    let webhook_key2 = data2["webhook-signing-key"].clone();
    assert_no_leak(
        &client,
        &binding,
        &[&first, &second, &webhook_key, &webhook_key2],
    )
    .await;
    let metrics = operator().await.metrics().await;
    assert!(
        metrics.contains(&format!(
            "herald_credential_next_rotation_timestamp_seconds{{binding=\"{binding}\""
        )),
        "next-rotation gauge missing"
    );
}

/// One call the fake provider received, with what the senders ran at that moment.
#[derive(Clone, Debug)]
enum Call {
    Mint {
        id: String,
    },
    Revoke {
        id: String,
        senders: Option<BTreeMap<String, i64>>,
    },
}

/// A fake provider credential API (the contract in src/provider.rs) behind the platform's
/// one configured provider, the loopback [`provider_router`]: it serves one tenant's
/// calls. It mints ids `<tenant>.cred-<n>` (so the router can route a revoke back) and
/// records them as `cred-<n>`.
/// Like the contract says, a retried Idempotency-Key is answered with the credential
/// first minted for it (counted in `replays`, not in `calls`). With `hold` set, a mint
/// request waits (after `arrived` is notified) until `release` is notified.
struct FakeProvider {
    calls: Arc<Mutex<Vec<Call>>>,
    down: Arc<AtomicBool>,
    secrets: Arc<Mutex<Vec<String>>>,
    replays: Arc<AtomicU32>,
    hold: Arc<AtomicBool>,
    arrived: Arc<tokio::sync::Notify>,
    release: Arc<tokio::sync::Notify>,
}

#[derive(Clone)]
struct ProviderState {
    calls: Arc<Mutex<Vec<Call>>>,
    down: Arc<AtomicBool>,
    secrets: Arc<Mutex<Vec<String>>>,
    next: Arc<AtomicU32>,
    by_key: Arc<Mutex<BTreeMap<String, (String, String)>>>,
    replays: Arc<AtomicU32>,
    hold: Arc<AtomicBool>,
    arrived: Arc<tokio::sync::Notify>,
    release: Arc<tokio::sync::Notify>,
    token: String,
    client: Client,
    tenant: String,
}

impl FakeProvider {
    fn start(client: Client, tenant: &str) -> Self {
        let state = ProviderState {
            calls: Arc::default(),
            down: Arc::default(),
            secrets: Arc::default(),
            next: Arc::default(),
            by_key: Arc::default(),
            replays: Arc::default(),
            hold: Arc::default(),
            arrived: Arc::default(),
            release: Arc::default(),
            token: provider_router::router().token.clone(),
            client,
            tenant: tenant.to_owned(),
        };
        let app = axum::Router::new()
            .route("/credentials", axum::routing::post(mint))
            .route("/credentials/{id}", axum::routing::delete(revoke))
            .with_state(state.clone());
        provider_router::router().register(tenant, app);
        Self {
            calls: state.calls,
            down: state.down,
            secrets: state.secrets,
            replays: state.replays,
            hold: state.hold,
            arrived: state.arrived,
            release: state.release,
        }
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
}

fn authorized(state: &ProviderState, headers: &axum::http::HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok())
        == Some(&format!("Bearer {}", state.token))
}

async fn mint(
    State(state): State<ProviderState>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> (StatusCode, String) {
    if state.down.load(Ordering::SeqCst) {
        return (StatusCode::INTERNAL_SERVER_ERROR, "provider down".into());
    }
    if !authorized(&state, &headers) {
        return (StatusCode::UNAUTHORIZED, String::new());
    }
    let req: Value = serde_json::from_slice(&body).unwrap_or_default();
    assert_eq!(req["tenant"], state.tenant.as_str());
    assert_eq!(req["channel"], "sms");
    if state.hold.load(Ordering::SeqCst) {
        state.arrived.notify_one();
        state.release.notified().await;
    }
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(!key.is_empty(), "mint without an Idempotency-Key");
    if let Some((id, secret)) = state.by_key.lock().unwrap().get(&key).cloned() {
        state.replays.fetch_add(1, Ordering::SeqCst);
        return (
            StatusCode::CREATED,
            json!({"id": format!("{}.{id}", state.tenant), "secret": secret}).to_string(),
        );
    }
    let n = state.next.fetch_add(1, Ordering::SeqCst) + 1;
    let id = format!("cred-{n}");
    let secret = format!("minted-{}", unique("secret"));
    state.secrets.lock().unwrap().push(secret.clone());
    state
        .by_key
        .lock()
        .unwrap()
        .insert(key, (id.clone(), secret.clone()));
    state
        .calls
        .lock()
        .unwrap()
        .push(Call::Mint { id: id.clone() });
    (
        StatusCode::CREATED,
        json!({"id": format!("{}.{id}", state.tenant), "secret": secret}).to_string(),
    )
}

async fn revoke(
    State(state): State<ProviderState>,
    headers: axum::http::HeaderMap,
    Path(id): Path<String>,
) -> StatusCode {
    let id = id
        .strip_prefix(&format!("{}.", state.tenant))
        .unwrap_or(&id)
        .to_owned();
    if state.down.load(Ordering::SeqCst) {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    if !authorized(&state, &headers) {
        return StatusCode::UNAUTHORIZED;
    }
    // What the senders run at the moment of the revocation: the proof of the order.
    let senders =
        Api::<Deployment>::namespaced(state.client.clone(), &format!("tenant-{}", state.tenant))
            .get_opt("herald-sender")
            .await
            .ok()
            .flatten()
            .and_then(|d| rolled_out_versions(&d));
    state
        .calls
        .lock()
        .unwrap()
        .push(Call::Revoke { id, senders });
    StatusCode::NO_CONTENT
}

/// A new tenant with one SMS binding whose credential a [`FakeProvider`] mints through
/// the configured provider (names from `prefix`): (tenant, binding, provider, the
/// platform's provider token).
async fn provider_binding(client: &Client, prefix: &str) -> (String, String, FakeProvider, String) {
    let (tenant, sp, binding) = (
        unique(prefix),
        unique(&format!("{prefix}-sp")),
        unique(&format!("{prefix}-b")),
    );
    create_subprocessor(client, &sp, 30).await;
    create_tenant(client, &tenant, json!({})).await;
    let provider = FakeProvider::start(client.clone(), &tenant);
    create_binding(
        client,
        &binding,
        &tenant,
        &sp,
        json!({"providerApi": {"name": provider_router::PROVIDER}}),
    )
    .await;
    (
        tenant,
        binding,
        provider,
        provider_router::router().token.clone(),
    )
}

#[tokio::test]
async fn a_provider_credential_rotates_on_request_and_survives_a_provider_outage() {
    let client = client().await;
    operator().await;
    let (tenant, binding, provider, token) = provider_binding(&client, "cb-prov").await;

    let b = wait_binding(&client, &binding, "version 1 Ready", version_is(1)).await;
    assert_eq!(
        b.status.as_ref().unwrap().provider_credential_id,
        Some(format!("{tenant}.cred-1"))
    );
    wait_rolled_out(&client, &tenant, "sms", Some(1)).await;

    // Rotation on request: mint, roll, and only then revoke.
    request_rotation(&client, &binding, "first").await;
    let b = wait_binding(&client, &binding, "version 2 Ready", version_is(2)).await;
    assert_eq!(
        b.status.as_ref().unwrap().last_handled_rotate_at.as_deref(),
        Some("first")
    );
    let calls = provider.calls();
    let revoke_at = calls
        .iter()
        .position(|c| matches!(c, Call::Revoke { id, .. } if id == "cred-1"))
        .unwrap_or_else(|| panic!("cred-1 not revoked: {calls:?}"));
    let mint_at = calls
        .iter()
        .position(|c| matches!(c, Call::Mint { id } if id == "cred-2"))
        .unwrap();
    assert!(mint_at < revoke_at, "{calls:?}");
    match &calls[revoke_at] {
        Call::Revoke { senders, .. } => assert_eq!(
            senders.as_ref().and_then(|v| v.get("sms")).copied(),
            Some(2),
            "revoked before every sender ran on version 2: {calls:?}"
        ),
        Call::Mint { .. } => unreachable!(),
    }
    assert!(
        secret_data(&client, &tenant, "herald-cred-sms-v1")
            .await
            .is_none(),
        "v1 Secret deleted"
    );

    // The provider is down: the rotation waits, version 2 stays, the condition says why.
    provider.down.store(true, Ordering::SeqCst);
    request_rotation(&client, &binding, "second").await;
    let b = wait_binding(
        &client,
        &binding,
        "CredentialCurrent=False ProviderFailed",
        |b| condition(b, "CredentialCurrent") == Some(("False".into(), "ProviderFailed".into())),
    )
    .await;
    assert_eq!(b.status.as_ref().unwrap().credential_version, Some(2));
    wait_rolled_out(&client, &tenant, "sms", Some(2)).await;
    assert!(
        secret_data(&client, &tenant, "herald-cred-sms-v2")
            .await
            .is_some()
    );

    // The provider is back: the rotation completes by itself.
    provider.down.store(false, Ordering::SeqCst);
    let b = wait_binding(&client, &binding, "version 3 Ready", version_is(3)).await;
    assert_eq!(
        b.status.as_ref().unwrap().last_handled_rotate_at.as_deref(),
        Some("second")
    );
    assert!(
        provider.calls().iter().any(
            |c| matches!(c, Call::Revoke { id, senders } if id == "cred-2"
            && senders.as_ref().and_then(|v| v.get("sms")).copied() == Some(3))
        ),
        "{:?}",
        provider.calls()
    );

    let mut values: Vec<String> = provider.secrets.lock().unwrap().clone();
    values.push(token.clone());
    let refs: Vec<&str> = values.iter().map(String::as_str).collect();
    assert_no_leak(&client, &binding, &refs).await;
    let metrics = operator().await.metrics().await;
    assert!(
        metrics.contains("herald_rotations_total{result=\"failed\"}"),
        "failed rotations counted"
    );
    assert!(metrics.contains("herald_rotations_total{result=\"completed\"}"));
}

/// A tenant namespace that refuses the credential Secret (here a quota; in CI it was
/// the RoleBinding not yet honoured) gets nothing minted: the provider sees no call
/// until the Secret can be stored, and then exactly one mint.
#[tokio::test]
async fn no_credential_is_minted_while_the_tenant_namespace_refuses_its_secret() {
    let client = client().await;
    operator().await;
    let (tenant, sp, binding) = (
        unique("cb-nostore"),
        unique("cb-nostore-sp"),
        unique("cb-nostore-b"),
    );
    create_subprocessor(&client, &sp, 30).await;
    create_tenant(&client, &tenant, json!({})).await;
    let ns = format!("tenant-{tenant}");
    wait_namespace(&client, &ns).await;
    deny_secrets(&client, &ns).await;
    let provider = FakeProvider::start(client.clone(), &tenant);
    create_binding(
        &client,
        &binding,
        &tenant,
        &sp,
        json!({"providerApi": {"name": provider_router::PROVIDER}}),
    )
    .await;
    let b = wait_binding(
        &client,
        &binding,
        "CredentialCurrent=False CredentialNotStored",
        |b| condition(b, "CredentialCurrent").map(|(_, r)| r) == Some("CredentialNotStored".into()),
    )
    .await;
    assert_eq!(b.status.as_ref().unwrap().credential_version, None);
    assert!(
        provider.calls().is_empty(),
        "minted while the Secret could not be stored: {:?}",
        provider.calls()
    );

    allow_secrets(&client, &ns).await;
    let b = wait_binding(&client, &binding, "version 1 Ready", version_is(1)).await;
    assert_eq!(
        b.status.as_ref().unwrap().provider_credential_id,
        Some(format!("{tenant}.cred-1")),
        "the first credential the provider minted is version 1"
    );
    assert_eq!(
        provider.calls().len(),
        1,
        "one mint, nothing revoked: {:?}",
        provider.calls()
    );
}

/// A binding whose first credential was minted while its tenant namespace stopped
/// accepting Secrets: the mint is held at the provider until a quota of no Secrets is
/// in place (after Herald's dry run passed), so the Secret create fails after the mint.
/// Returns once the binding says CredentialNotStored: (tenant, binding, provider).
async fn minted_but_not_stored(client: &Client, prefix: &str) -> (String, String, FakeProvider) {
    let (tenant, sp, binding) = (
        unique(prefix),
        unique(&format!("{prefix}-sp")),
        unique(&format!("{prefix}-b")),
    );
    create_subprocessor(client, &sp, 30).await;
    create_tenant(client, &tenant, json!({})).await;
    let ns = format!("tenant-{tenant}");
    wait_namespace(client, &ns).await;
    let provider = FakeProvider::start(client.clone(), &tenant);
    provider.hold.store(true, Ordering::SeqCst);
    create_binding(
        client,
        &binding,
        &tenant,
        &sp,
        json!({"providerApi": {"name": provider_router::PROVIDER}}),
    )
    .await;
    tokio::time::timeout(WAIT, provider.arrived.notified())
        .await
        .expect("Herald asked the provider to mint");
    deny_secrets(client, &ns).await;
    provider.hold.store(false, Ordering::SeqCst);
    provider.release.notify_one();
    let b = wait_binding(
        client,
        &binding,
        "CredentialCurrent CredentialNotStored",
        |b| condition(b, "CredentialCurrent").map(|(_, r)| r) == Some("CredentialNotStored".into()),
    )
    .await;
    let s = b.status.unwrap();
    assert_eq!(s.credential_version, None);
    let recorded: Vec<&str> = s
        .unstored_credentials
        .iter()
        .map(|u| u.provider_credential_id.as_str())
        .collect();
    assert_eq!(
        recorded,
        [format!("{tenant}.cred-1")],
        "the minted credential's id is in status although its Secret never existed"
    );
    (tenant, binding, provider)
}

async fn wait_namespace(client: &Client, ns: &str) {
    use k8s_openapi::api::core::v1::Namespace;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    tokio::time::timeout(
        WAIT,
        await_condition(namespaces, ns, |n: Option<&Namespace>| n.is_some()),
    )
    .await
    .expect("tenant namespace created")
    .unwrap();
}

/// A ResourceQuota of no Secrets in `ns` (a second one beside Herald's): every Secret
/// create there is refused, dry runs too. Returns once the API server enforces it (its
/// quota admission reads quotas from a cache, which lags the create).
async fn deny_secrets(client: &Client, ns: &str) {
    Api::<k8s_openapi::api::core::v1::ResourceQuota>::namespaced(client.clone(), ns)
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "no-secrets"},
                "spec": {"hard": {"secrets": "0"}}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let probe: Secret =
        serde_json::from_value(json!({"metadata": {"name": "quota-probe"}})).unwrap();
    let dry_run = PostParams {
        dry_run: true,
        ..Default::default()
    };
    tokio::time::timeout(WAIT, async {
        while secrets.create(&dry_run, &probe).await.is_ok() {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the quota is enforced");
}

async fn allow_secrets(client: &Client, ns: &str) {
    Api::<k8s_openapi::api::core::v1::ResourceQuota>::namespaced(client.clone(), ns)
        .delete("no-secrets", &Default::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_credential_minted_but_not_stored_is_stored_at_the_next_attempt_not_minted_again() {
    let client = client().await;
    operator().await;
    let (tenant, binding, provider) = minted_but_not_stored(&client, "cb-unstored").await;
    allow_secrets(&client, &format!("tenant-{tenant}")).await;
    let b = wait_binding(&client, &binding, "version 1 Ready", version_is(1)).await;
    let s = b.status.unwrap();
    assert_eq!(s.provider_credential_id, Some(format!("{tenant}.cred-1")));
    assert!(
        s.unstored_credentials.is_empty(),
        "{:?}",
        s.unstored_credentials
    );
    assert_eq!(
        provider.calls().len(),
        1,
        "one credential minted, none revoked: {:?}",
        provider.calls()
    );
    assert!(
        provider.replays.load(Ordering::SeqCst) >= 1,
        "the retry used the same Idempotency-Key"
    );
    let (_, stored) = secret_data(&client, &tenant, "herald-cred-sms-v1")
        .await
        .expect("version 1 Secret");
    let minted = provider.secrets.lock().unwrap().clone();
    assert_eq!(minted.len(), 1);
    assert_eq!(
        stored.get("credential"),
        Some(&minted[0]),
        "the Secret holds the credential first minted"
    );
}

#[tokio::test]
async fn a_binding_deleted_with_a_credential_minted_but_not_stored_revokes_it() {
    let client = client().await;
    operator().await;
    let (_tenant, binding, provider) = minted_but_not_stored(&client, "cb-unst-del").await;
    let api: Api<ChannelBinding> = Api::namespaced(client.clone(), CONTROL_NAMESPACE);
    let uid = api.get(&binding).await.unwrap().uid().unwrap();
    api.delete(&binding, &Default::default()).await.unwrap();
    tokio::time::timeout(
        WAIT,
        await_condition(api, &binding, kube::runtime::conditions::is_deleted(&uid)),
    )
    .await
    .expect("binding gone")
    .unwrap();
    assert!(
        provider
            .calls()
            .iter()
            .any(|c| matches!(c, Call::Revoke { id, .. } if id == "cred-1")),
        "the unstored credential was revoked: {:?}",
        provider.calls()
    );
}

#[tokio::test]
async fn terminating_the_tenant_revokes_its_provider_credential_and_stops_the_binding() {
    let client = client().await;
    operator().await;
    let (tenant, binding, provider, _) = provider_binding(&client, "cb-term").await;
    wait_binding(&client, &binding, "version 1 Ready", version_is(1)).await;
    wait_rolled_out(&client, &tenant, "sms", Some(1)).await;

    // Terminated today: erasure is weeks away, but the credential goes at once.
    let before_termination = provider.calls().len();
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    Api::<Tenant>::all(client.clone())
        .patch(
            &tenant,
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"contract": {"state": "Terminated", "terminatedAt": now}}}),
            ),
        )
        .await
        .unwrap();
    let b = wait_binding(
        &client,
        &binding,
        "TenantTerminated, credentials revoked",
        |b| {
            // Done by design once revoked: Ready (Argo CD Healthy, kstatus Current).
            condition(b, "Ready") == Some(("True".into(), "TenantTerminated".into()))
                && b.status
                    .as_ref()
                    .is_some_and(|s| s.credentials_revoked_at.is_some())
        },
    )
    .await;
    let calls = provider.calls();
    // Every credential ever minted for it is revoked (one minted while its Secret could
    // not be stored yet is revoked at once), and termination minted nothing.
    for c in &calls {
        if let Call::Mint { id: minted } = c {
            assert!(
                calls
                    .iter()
                    .any(|r| matches!(r, Call::Revoke { id, .. } if id == minted)),
                "{minted} not revoked: {calls:?}"
            );
        }
    }
    assert!(
        !calls[before_termination..]
            .iter()
            .any(|c| matches!(c, Call::Mint { .. })),
        "a terminated tenant's credential was rotated: {calls:?}"
    );
    let s = b.status.as_ref().unwrap();
    assert_eq!(
        condition(&b, "CredentialCurrent").map(|c| c.0),
        Some("False".into())
    );
    assert_eq!(s.next_rotation, None, "never rotated again");

    // The senders are at 0.
    let api: Api<Deployment> = Api::namespaced(client.clone(), &format!("tenant-{tenant}"));
    tokio::time::timeout(
        WAIT,
        await_condition(api, "herald-sender", |d: Option<&Deployment>| {
            d.is_some_and(|d| {
                d.spec.as_ref().and_then(|s| s.replicas) == Some(0)
                    && d.status
                        .as_ref()
                        .is_none_or(|s| s.replicas.unwrap_or(0) == 0)
            })
        }),
    )
    .await
    .unwrap_or_else(|_| panic!("tenant-{tenant}: senders not at 0"))
    .unwrap();
}

#[tokio::test]
async fn deleting_a_binding_revokes_its_provider_credential_before_it_goes() {
    let client = client().await;
    let op = operator().await;
    let (tenant, binding, provider, token) = provider_binding(&client, "cb-del").await;
    let b = wait_binding(&client, &binding, "version 1 Ready", version_is(1)).await;
    wait_rolled_out(&client, &tenant, "sms", Some(1)).await;
    assert!(
        b.finalizers().iter().any(|f| f == "herald.dev/credentials"),
        "a live binding carries the revocation finalizer: {:?}",
        b.finalizers()
    );
    let series = format!("binding=\"{binding}\"");
    assert!(
        op.metrics().await.contains(&series),
        "the binding has metric series"
    );

    // The provider is down: the binding stays, says why, and the senders drop the channel.
    provider.down.store(true, Ordering::SeqCst);
    let api: Api<ChannelBinding> = Api::namespaced(client.clone(), CONTROL_NAMESPACE);
    let uid = b.uid().unwrap();
    api.delete(&binding, &Default::default()).await.unwrap();
    let b = wait_binding(
        &client,
        &binding,
        "held for revocation: Ready=False ProviderFailed, Reconciling=True Deleting",
        |b| {
            b.metadata.deletion_timestamp.is_some()
                && condition(b, "Ready") == Some(("False".into(), "ProviderFailed".into()))
                && condition(b, "Reconciling") == Some(("True".into(), "Deleting".into()))
        },
    )
    .await;
    let ready = b
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.message.clone())
        .unwrap_or_default();
    assert!(
        ready.contains("herald.dev/credentials"),
        "the message names the finalizer to remove to give up: {ready}"
    );
    wait_rolled_out(&client, &tenant, "sms", None).await;
    assert!(
        secret_data(&client, &tenant, "herald-cred-sms-v1")
            .await
            .is_some(),
        "nothing is deleted before the credential is revoked"
    );

    // The provider is back: revoked, Secret deleted, binding gone, its series dropped.
    provider.down.store(false, Ordering::SeqCst);
    tokio::time::timeout(
        WAIT,
        await_condition(
            api,
            &binding,
            kube::runtime::wait::conditions::is_deleted(&uid),
        ),
    )
    .await
    .unwrap_or_else(|_| panic!("binding {binding} still exists after {WAIT:?}"))
    .unwrap();
    let calls = provider.calls();
    assert!(
        calls
            .iter()
            .any(|c| matches!(c, Call::Revoke { id, .. } if id == "cred-1")),
        "cred-1 not revoked: {calls:?}"
    );
    assert!(
        secret_data(&client, &tenant, "herald-cred-sms-v1")
            .await
            .is_none(),
        "the credential Secret is deleted"
    );
    assert!(
        !op.metrics().await.contains(&series),
        "a deleted binding's metric series are dropped"
    );
    let log = op.log();
    assert!(
        !log.contains(&token),
        "the provider token appears in the log"
    );
}

/// Providers are the platform's: a binding naming one the operator configuration does
/// not have is Stalled with its own reason, and no request goes anywhere (the router,
/// the only provider configured, sees none for the tenant; no credential is written).
#[tokio::test]
async fn a_binding_naming_an_unconfigured_provider_sends_nothing_anywhere() {
    let client = client().await;
    operator().await;
    let (tenant, sp, binding) = (
        unique("cb-noprov"),
        unique("cb-noprov-sp"),
        unique("cb-noprov-b"),
    );
    create_subprocessor(&client, &sp, 30).await;
    create_tenant(&client, &tenant, json!({})).await;
    let provider = FakeProvider::start(client.clone(), &tenant);
    create_binding(
        &client,
        &binding,
        &tenant,
        &sp,
        json!({"providerApi": {"name": "not-configured"}}),
    )
    .await;
    let b = wait_binding(
        &client,
        &binding,
        "Ready=False ProviderNotConfigured, Stalled=True",
        |b| {
            condition(b, "Ready") == Some(("False".into(), "ProviderNotConfigured".into()))
                && condition(b, "Stalled") == Some(("True".into(), "ProviderNotConfigured".into()))
        },
    )
    .await;
    let s = b.status.as_ref().unwrap();
    assert_eq!(
        (s.credential_version, s.provider_credential_id.as_deref()),
        (None, None)
    );
    assert!(
        provider_router::router().seen_for(&tenant).is_empty() && provider.calls().is_empty(),
        "a request was sent for an unconfigured provider: {:?}",
        provider_router::router().seen_for(&tenant)
    );
    assert!(
        secret_data(&client, &tenant, "herald-cred-sms-v1")
            .await
            .is_none(),
        "no credential written"
    );
    assert_no_leak(&client, &binding, &[&provider_router::router().token]).await;
}

#[tokio::test]
async fn a_binding_applied_before_its_tenant_starts_the_senders_once_with_its_channel() {
    let client = client().await;
    operator().await;
    let (tenant, sp, binding, source) = (
        unique("cb-early"),
        unique("cb-early-sp"),
        unique("cb-early-b"),
        unique("cb-early-src"),
    );
    create_subprocessor(&client, &sp, 30).await;
    put_secret(
        &client,
        &source,
        Some(&tenant),
        &[("apiKey", "not-a-real-key")],
    )
    .await;
    // GitOps applies a tenant's manifests together, in no particular order: here the
    // binding is reconciled first and reports that its Tenant does not exist.
    create_binding(
        &client,
        &binding,
        &tenant,
        &sp,
        json!({"secretRef": {"name": source}}),
    )
    .await;
    wait_binding(&client, &binding, "TenantNotFound", |b| {
        condition(b, "SubprocessorEffective") == Some(("False".into(), "TenantNotFound".into()))
    })
    .await;

    create_tenant(&client, &tenant, json!({})).await;
    wait_binding(&client, &binding, "version 1 Ready", version_is(1)).await;
    wait_rolled_out(&client, &tenant, "sms", Some(1)).await;
    // One ReplicaSet per pod template: the senders started once, already with the
    // channel, instead of starting without it and rolling again when it arrived.
    let sets = Api::<k8s_openapi::api::apps::v1::ReplicaSet>::namespaced(
        client.clone(),
        &format!("tenant-{tenant}"),
    )
    .list(&ListParams::default())
    .await
    .unwrap();
    let templates: Vec<Option<String>> = sets
        .items
        .iter()
        .map(|rs| {
            rs.spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .and_then(|t| t.metadata.as_ref())
                .and_then(|m| m.annotations.as_ref())
                .and_then(|a| a.get("herald.dev/credential-versions").cloned())
        })
        .collect();
    assert_eq!(
        templates,
        [Some("sms=1".to_owned())],
        "the senders' pod templates (credential versions of each ReplicaSet)"
    );
}

#[tokio::test]
async fn a_binding_naming_another_tenants_source_is_refused_and_copies_nothing() {
    let client = client().await;
    operator().await;
    let (owner, thief, sp) = (unique("cb-own-a"), unique("cb-own-b"), unique("cb-own-sp"));
    let (source, binding) = (unique("cb-own-src"), unique("cb-own-b-bind"));
    create_subprocessor(&client, &sp, 30).await;
    create_tenant(&client, &owner, json!({})).await;
    create_tenant(&client, &thief, json!({})).await;
    // Tenant A's credential, labelled for A; tenant B's binding names it.
    let value = format!("owner-only-{}", unique("value"));
    put_secret(&client, &source, Some(&owner), &[("apiKey", &value)]).await;
    create_binding(
        &client,
        &binding,
        &thief,
        &sp,
        json!({"secretRef": {"name": source}}),
    )
    .await;

    let b = wait_binding(&client, &binding, "SourceNotOwnedByTenant", |b| {
        condition(b, "CredentialCurrent") == Some(("False".into(), "SourceNotOwnedByTenant".into()))
    })
    .await;
    assert_eq!(
        condition(&b, "Ready"),
        Some(("False".into(), "SourceNotOwnedByTenant".into()))
    );
    assert_eq!(
        condition(&b, "Stalled"),
        Some(("True".into(), "SourceNotOwnedByTenant".into()))
    );
    let status = b.status.clone().unwrap();
    assert_eq!(status.credential_version, None, "no version delivered");
    let message = &b
        .status
        .as_ref()
        .unwrap()
        .conditions
        .iter()
        .find(|c| c.type_ == "CredentialCurrent")
        .unwrap()
        .message;
    assert!(
        message.contains(&source) && message.contains(&format!("herald.dev/tenant={thief}")),
        "the message names the Secret and the label: {message}"
    );
    assert!(
        !message.contains(&owner),
        "the message does not name the owner"
    );

    // No Secret in tenant B's namespace holds A's bytes, under any key.
    let secrets = Api::<Secret>::namespaced(client.clone(), &format!("tenant-{thief}"))
        .list(&ListParams::default())
        .await
        .unwrap();
    for s in &secrets.items {
        for (k, v) in s.data.clone().unwrap_or_default() {
            assert_ne!(
                v.0,
                value.as_bytes(),
                "Secret {} key {k} holds tenant A's credential",
                s.name_any()
            );
        }
    }
    assert_no_leak(&client, &binding, &[&value]).await;

    // Labelled for B (the platform's decision, not B's manifest), the same source is
    // delivered: the refusal was the label, nothing else.
    put_secret(&client, &source, Some(&thief), &[("apiKey", &value)]).await;
    wait_binding(&client, &binding, "version 1 Ready", version_is(1)).await;
}

#[tokio::test]
async fn the_source_hash_is_keyed_and_a_legacy_one_is_migrated_without_a_rotation() {
    use herald::controller::channel_binding::decide::legacy_source_hash;
    let client = client().await;
    operator().await;
    let (tenant, sp, binding, source) = (
        unique("cb-hash"),
        unique("cb-hash-sp"),
        unique("cb-hash-b"),
        unique("cb-hash-src"),
    );
    create_subprocessor(&client, &sp, 30).await;
    create_tenant(&client, &tenant, json!({})).await;
    let value = format!("guessable-{}", unique("pw"));
    put_secret(&client, &source, Some(&tenant), &[("apiKey", &value)]).await;
    create_binding(
        &client,
        &binding,
        &tenant,
        &sp,
        json!({"secretRef": {"name": source}}),
    )
    .await;
    let b = wait_binding(&client, &binding, "version 1 Ready", version_is(1)).await;
    let keyed = b.status.as_ref().unwrap().source_hash.clone().unwrap();
    assert!(keyed.starts_with("hmac-sha256:"), "{keyed}");
    // The key lives in the control namespace, never labelled for a tenant.
    let key = Api::<Secret>::namespaced(client.clone(), CONTROL_NAMESPACE)
        .get("herald-source-hash-key")
        .await
        .unwrap();
    assert!(!key.labels().contains_key("herald.dev/tenant"));
    // Who knows the uid (public) and guesses the value cannot confirm the guess.
    let uid = b.metadata.uid.clone().unwrap();
    let data = BTreeMap::from([(
        "apiKey".to_owned(),
        k8s_openapi::ByteString(value.clone().into_bytes()),
    )]);
    let legacy = legacy_source_hash(&uid, &data);
    assert!(!keyed.contains(&legacy));

    // A status written before hashes were keyed: migrated, not taken for a new source.
    let api: Api<ChannelBinding> = Api::namespaced(client.clone(), CONTROL_NAMESPACE);
    api.patch_status(
        &binding,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"sourceHash": legacy}})),
    )
    .await
    .unwrap();
    api.patch(
        &binding,
        &PatchParams::default(),
        &Patch::Merge(
            json!({"metadata": {"annotations": {"herald.dev/reconcile-requested-at": unique("r")}}}),
        ),
    )
    .await
    .unwrap();
    let b = wait_binding(&client, &binding, "keyed hash again", |b| {
        b.status.as_ref().and_then(|s| s.source_hash.as_deref()) == Some(keyed.as_str())
    })
    .await;
    let s = b.status.unwrap();
    assert_eq!(s.credential_version, Some(1), "no rotation");
    assert_eq!(s.previous_credential_version, None);
}

/// Two bindings for one tenant and channel: the older holds it and reaches the
/// senders; the other is Stalled with `DuplicateBinding` naming it, reads and writes
/// nothing; deleting the older lets the other take over.
#[tokio::test]
async fn a_second_binding_for_one_channel_stalls_until_the_first_is_deleted() {
    let client = client().await;
    operator().await;
    let (tenant, sp) = (unique("cb-dup"), unique("cb-dup-sp"));
    // Named so that the first sorts first even within one creation second.
    let (first, second) = (unique("cb-dup-a"), unique("cb-dup-b"));
    let (src1, src2) = (unique("cb-dup-src1"), unique("cb-dup-src2"));
    create_subprocessor(&client, &sp, 30).await;
    create_tenant(&client, &tenant, json!({})).await;
    let (v1, v2) = (
        format!("first-{}", unique("value")),
        format!("second-{}", unique("value")),
    );
    put_secret(&client, &src1, Some(&tenant), &[("apiKey", &v1)]).await;
    put_secret(&client, &src2, Some(&tenant), &[("apiKey", &v2)]).await;
    create_binding(
        &client,
        &first,
        &tenant,
        &sp,
        json!({"secretRef": {"name": src1}}),
    )
    .await;
    wait_binding(&client, &first, "version 1 Ready", version_is(1)).await;
    create_binding(
        &client,
        &second,
        &tenant,
        &sp,
        json!({"secretRef": {"name": src2}}),
    )
    .await;

    let b = wait_binding(&client, &second, "Stalled DuplicateBinding", |b| {
        condition(b, "Stalled") == Some(("True".into(), "DuplicateBinding".into()))
    })
    .await;
    assert_eq!(
        condition(&b, "Ready"),
        Some(("False".into(), "DuplicateBinding".into()))
    );
    let status = b.status.clone().unwrap();
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert!(
        ready.message.contains(&first),
        "the message names the binding that holds the channel: {}",
        ready.message
    );
    assert_eq!(
        status.credential_version, None,
        "the duplicate delivers nothing"
    );
    // The first stays Ready on its version, and the senders run on it only.
    let a = wait_binding(&client, &first, "still version 1 Ready", version_is(1)).await;
    assert_eq!(
        a.status.unwrap().credential_secret.as_deref(),
        Some("herald-cred-sms-v1")
    );
    wait_rolled_out(&client, &tenant, "sms", Some(1)).await;
    let secrets = Api::<Secret>::namespaced(client.clone(), &format!("tenant-{tenant}"))
        .list(&ListParams::default())
        .await
        .unwrap();
    for s in &secrets.items {
        assert_ne!(
            s.labels().get("herald.dev/channel-binding"),
            Some(&second),
            "the duplicate created Secret {}",
            s.name_any()
        );
        for (k, v) in s.data.clone().unwrap_or_default() {
            assert_ne!(
                v.0,
                v2.as_bytes(),
                "Secret {} key {k} holds the duplicate's source",
                s.name_any()
            );
        }
    }

    // The first deleted: the second takes over with its own source, and the senders
    // roll to it.
    Api::<ChannelBinding>::namespaced(client.clone(), CONTROL_NAMESPACE)
        .delete(&first, &Default::default())
        .await
        .unwrap();
    let b = wait_binding(&client, &second, "Ready with its own credential", |b| {
        condition(b, "Ready").is_some_and(|(s, _)| s == "True")
            && b.status
                .as_ref()
                .is_some_and(|s| s.credential_version.is_some())
    })
    .await;
    let status = b.status.unwrap();
    let version = status.credential_version.unwrap();
    let (_, data) = secret_data(
        &client,
        &tenant,
        status.credential_secret.as_deref().unwrap(),
    )
    .await
    .expect("the second binding's credential Secret");
    assert_eq!(data.get("apiKey"), Some(&v2));
    wait_rolled_out(&client, &tenant, "sms", Some(version)).await;
}
