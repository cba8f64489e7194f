//! Subprocessor end to end: a new Subprocessor is announced to every affected tenant
//! with a signed, idempotent, retried webhook; an objection blocks that tenant's
//! binding; the other tenant's binding waits for its notice period; deleting the
//! Subprocessor blocks its bindings. The customer webhook is a local HTTP server.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use herald::api::v1alpha1::{Subprocessor, SubprocessorNotice, Tenant};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::wait::await_condition;
use serde_json::{Value, json};

use crate::channel_binding::{
    condition, create_binding, create_subprocessor, create_tenant, put_secret, wait_binding,
    wait_rolled_out,
};
use crate::common::{WAIT, client, operator, unique};

/// A notice as the customer received it.
#[derive(Clone, Debug)]
pub(crate) struct Received {
    pub(crate) headers: HeaderMap,
    pub(crate) id: String,
    timestamp: String,
    pub(crate) body: Vec<u8>,
    /// The Standard Webhooks library (not Herald's code) verified it with the tenant's
    /// secret, within its 5-minute window.
    pub(crate) verified: bool,
}

#[derive(Clone)]
pub(crate) struct Hook {
    /// The tenant's Standard Webhooks secret: the receiver refuses (401) what it cannot
    /// verify with it, as a customer would.
    secret: String,
    pub(crate) received: Arc<Mutex<Vec<Received>>>,
    /// Fail the next request with 500 (to see the retry), then accept.
    fail_once: Arc<AtomicBool>,
    /// Never answer the next request (the operator is killed while it waits).
    hang_once: Arc<AtomicBool>,
}

/// What a customer's receiver does: verify per Standard Webhooks with the reference
/// library, then accept.
pub(crate) fn verifies(secret: &str, headers: &HeaderMap, body: &[u8]) -> bool {
    standardwebhooks::Webhook::new(secret)
        .unwrap()
        .verify(body, headers)
        .is_ok()
}

async fn receive(State(h): State<Hook>, headers: HeaderMap, body: axum::body::Bytes) -> StatusCode {
    let get = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let verified = verifies(&h.secret, &headers, &body);
    h.received.lock().unwrap().push(Received {
        id: get("webhook-id"),
        timestamp: get("webhook-timestamp"),
        headers: headers.clone(),
        body: body.to_vec(),
        verified,
    });
    if h.hang_once.swap(false, Ordering::SeqCst) {
        std::future::pending::<()>().await;
    }
    if !verified {
        StatusCode::UNAUTHORIZED
    } else if h.fail_once.swap(false, Ordering::SeqCst) {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::NO_CONTENT
    }
}

pub(crate) async fn start_hook(secret: &str, fail_once: bool) -> (String, Hook) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    (
        format!("http://{addr}/notices"),
        serve_hook(listener, secret, fail_once),
    )
}

/// A customer receiver at `/notices` on `listener`.
pub(crate) fn serve_hook(listener: tokio::net::TcpListener, secret: &str, fail_once: bool) -> Hook {
    let hook = Hook {
        secret: secret.to_owned(),
        received: Arc::default(),
        fail_once: Arc::new(AtomicBool::new(fail_once)),
        hang_once: Arc::new(AtomicBool::new(false)),
    };
    let app = axum::Router::new()
        .route("/notices", axum::routing::post(receive))
        .with_state(hook.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    hook
}

/// POSTs a captured notice to `url` again, as an attacker who recorded it would, with
/// its timestamp header moved by `shift` seconds; the receiver's answer.
async fn replay(url: &str, r: &Received, shift: i64) -> u16 {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ts: i64 = r.timestamp.parse().unwrap();
    let mut headers = r.headers.clone();
    headers.insert(
        "webhook-timestamp",
        (ts + shift).to_string().parse().unwrap(),
    );
    headers.remove("content-length");
    headers.remove("host");
    reqwest::Client::new()
        .post(url)
        .headers(headers)
        .body(r.body.clone())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// A fresh Standard Webhooks secret for a test tenant.
pub(crate) fn secret() -> String {
    herald::notify::generate_secret().unwrap()
}

/// Creation times have one-second resolution, and terms that took effect in the same
/// second as a tenant's creation count as already in place for it (so that a manifest
/// set applied at once works). Waits until a Subprocessor created next is visibly newer
/// than `tenants`: a wait for the wall clock, not for the cluster.
async fn wait_past_creation(client: &kube::Client, tenants: &[&str]) {
    let api: Api<herald::api::v1alpha1::Tenant> = Api::all(client.clone());
    let mut newest = 0;
    for t in tenants {
        let created = api
            .get(t)
            .await
            .unwrap()
            .metadata
            .creation_timestamp
            .unwrap();
        newest = newest.max(created.0.as_second());
    }
    let now = k8s_openapi::jiff::Timestamp::now();
    let wait_ms = (newest + 1) * 1000 - now.as_millisecond();
    if wait_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(wait_ms as u64 + 50)).await;
    }
}

/// Waits until the Tenant's record of the notices of Subprocessor `sp` (kept in the
/// Tenant's `status.subprocessorNotices`) satisfies `f`, and returns it.
pub(crate) async fn wait_notice(
    tenant: &str,
    sp: &str,
    what: &str,
    f: impl Fn(&SubprocessorNotice) -> bool,
) -> SubprocessorNotice {
    let api: Api<Tenant> = Api::all(client().await);
    let sp_name = sp.to_owned();
    let record = move |t: &Tenant| {
        t.status
            .as_ref()?
            .subprocessor_notices
            .iter()
            .find(|n| n.subprocessor == sp_name)
            .cloned()
    };
    let found = record.clone();
    let cond = move |t: Option<&Tenant>| t.and_then(&found).is_some_and(|n| f(&n));
    match tokio::time::timeout(WAIT, await_condition(api.clone(), tenant, cond)).await {
        Ok(Ok(Some(t))) => record(&t).unwrap(),
        _ => panic!(
            "Tenant {tenant}: notice of {sp} {what} not reached; record: {:?}",
            api.get_opt(tenant)
                .await
                .ok()
                .flatten()
                .and_then(|t| record(&t))
        ),
    }
}

/// Waits until the Subprocessor satisfies `f`.
async fn wait_sp(name: &str, what: &str, f: impl Fn(&Subprocessor) -> bool) -> Subprocessor {
    let client = client().await;
    let api: Api<Subprocessor> = Api::all(client);
    let cond = move |s: Option<&Subprocessor>| s.is_some_and(&f);
    match tokio::time::timeout(WAIT, await_condition(api.clone(), name, cond)).await {
        Ok(Ok(Some(s))) => s,
        _ => panic!(
            "Subprocessor {name}: {what} not reached; status: {}",
            serde_json::to_string_pretty(
                &api.get_opt(name)
                    .await
                    .ok()
                    .flatten()
                    .and_then(|s| s.status)
            )
            .unwrap()
        ),
    }
}

#[tokio::test]
async fn a_new_subprocessor_is_announced_objected_to_and_effective_after_the_notice_period() {
    let client = client().await;
    operator().await;
    let sp = unique("sp-new");
    let (objecting, waiting) = (unique("sp-obj"), unique("sp-wait"));
    let (key_a, key_b) = (secret(), secret());
    let (url_a, hook_a) = start_hook(&key_a, false).await;
    // The waiting tenant's endpoint fails once: the notice is retried with the same id.
    let (url_b, hook_b) = start_hook(&key_b, true).await;
    let (sig_a, sig_b) = (unique("sp-sig-a"), unique("sp-sig-b"));
    put_secret(&client, &sig_a, Some(&objecting), &[("hmacKey", &key_a)]).await;
    put_secret(&client, &sig_b, Some(&waiting), &[("hmacKey", &key_b)]).await;
    let notif = |url: &str, s: &str| json!({"notifications": {"webhookUrl": url, "signingSecretRef": {"name": s, "key": "hmacKey"}}});
    let mut objects = notif(&url_a, &sig_a);
    objects["subprocessorObjections"] = json!([{"name": sp, "reason": "not in our register"}]);
    // Both tenants exist before the Subprocessor: it is new to them.
    create_tenant(&client, &objecting, objects).await;
    create_tenant(&client, &waiting, notif(&url_b, &sig_b)).await;
    let (src_obj, src_wait) = (unique("sp-src-obj"), unique("sp-src-wait"));
    let (b_obj, b_wait) = (unique("sp-b-obj"), unique("sp-b-wait"));
    // One source per tenant: a source is read only for the tenant it is labelled for.
    put_secret(
        &client,
        &src_obj,
        Some(&objecting),
        &[("apiKey", "sp-test-key")],
    )
    .await;
    put_secret(
        &client,
        &src_wait,
        Some(&waiting),
        &[("apiKey", "sp-test-key")],
    )
    .await;
    let cred = |src: &str| json!({"secretRef": {"name": src}});
    create_binding(&client, &b_obj, &objecting, &sp, cred(&src_obj)).await;
    create_binding(&client, &b_wait, &waiting, &sp, cred(&src_wait)).await;
    wait_binding(&client, &b_wait, "SubprocessorNotFound", |b| {
        condition(b, "SubprocessorEffective")
            == Some(("False".into(), "SubprocessorNotFound".into()))
    })
    .await;

    wait_past_creation(&client, &[&objecting, &waiting]).await;
    create_subprocessor(&client, &sp, 30).await;
    let mut records = Vec::new();
    for t in [&objecting, &waiting] {
        let n = wait_notice(t, &sp, "delivered", |n| n.delivered_at.is_some()).await;
        let (sent, delivered, ends) = (
            n.sent_at.as_ref().unwrap().0,
            n.delivered_at.as_ref().unwrap().0,
            n.objection_window_ends.as_ref().unwrap().0,
        );
        assert_eq!(
            ends.duration_since(sent),
            k8s_openapi::jiff::SignedDuration::from_hours(30 * 24),
            "window = the notice's sentAt + 30 days"
        );
        assert!(sent <= delivered && !n.awaiting_outcome, "{n:?}");
        records.push((t.to_string(), n));
    }
    // The Subprocessor only counts; the records stay with the tenants.
    wait_sp(&sp, "2/2 notices delivered", |s| {
        s.status
            .as_ref()
            .and_then(|st| st.notices_delivered.as_deref())
            == Some("2/2")
    })
    .await;

    // Signed per Standard Webhooks (verified by the receiver with the reference
    // library), each attempt with its own timestamp, the retry with the same id.
    let a = hook_a.received.lock().unwrap().clone();
    let b = hook_b.received.lock().unwrap().clone();
    assert_eq!(a.len(), 1, "delivered once");
    assert!(b.len() >= 2, "the failed notice was retried");
    assert!(
        b.iter().all(|r| r.id == b[0].id),
        "retries keep the webhook-id"
    );
    assert_ne!(a[0].id, b[0].id);
    assert!(a[0].verified, "tenant A's notice verifies");
    assert!(b.iter().all(|r| r.verified), "tenant B's notices verify");
    assert!(
        !verifies(&key_b, &a[0].headers, &a[0].body),
        "signed with each tenant's own key"
    );
    assert_eq!(
        a[0].headers
            .get("idempotency-key")
            .unwrap()
            .to_str()
            .unwrap(),
        a[0].id
    );
    // A captured notice replayed: with its timestamp moved 6 minutes back (outside the
    // 5-minute window) or by one second (the timestamp is signed), it is refused.
    assert_eq!(
        replay(&url_a, &a[0], -6 * 60).await,
        401,
        "replay outside the window"
    );
    assert_eq!(
        replay(&url_a, &a[0], -1).await,
        401,
        "timestamp not re-signable"
    );
    assert_eq!(
        replay(&url_a, &a[0], 0).await,
        204,
        "the same request unchanged, within the window, verifies (a duplicate by its id)"
    );
    let body: Value = serde_json::from_slice(&a[0].body).unwrap();
    assert_eq!(body["subprocessor"]["name"], sp.as_str());
    assert_eq!(body["tenant"], objecting.as_str());
    assert_eq!(body["idempotencyKey"], a[0].id.as_str());

    // The objection blocks one tenant; the other waits for its notice period.
    wait_binding(&client, &b_obj, "Objected", |b| {
        condition(b, "SubprocessorEffective") == Some(("False".into(), "Objected".into()))
    })
    .await;
    wait_binding(&client, &b_wait, "NoticePeriodRunning", |b| {
        condition(b, "SubprocessorEffective")
            == Some(("False".into(), "NoticePeriodRunning".into()))
    })
    .await;

    // Time passes (the notice record is moved 31 days into the past, as a clock would):
    // the waiting tenant's binding becomes effective and its channel reaches the senders.
    let mut notices: Vec<SubprocessorNotice> = records
        .iter()
        .filter(|(t, _)| *t == waiting)
        .map(|(_, n)| n.clone())
        .collect();
    for n in notices.iter_mut() {
        let past = |t: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time| {
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                t.0.checked_sub(k8s_openapi::jiff::SignedDuration::from_hours(31 * 24))
                    .unwrap(),
            )
        };
        n.sent_at = n.sent_at.as_ref().map(past);
        n.delivered_at = n.delivered_at.as_ref().map(past);
        n.objection_window_ends = n.objection_window_ends.as_ref().map(past);
    }
    Api::<Tenant>::all(client.clone())
        .patch_status(
            &waiting,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"subprocessorNotices": notices}})),
        )
        .await
        .unwrap();
    wait_binding(&client, &b_wait, "effective and Ready", |b| {
        condition(b, "SubprocessorEffective").is_some_and(|(s, _)| s == "True")
            && condition(b, "Ready").is_some_and(|(s, _)| s == "True")
    })
    .await;
    wait_rolled_out(&client, &waiting, "sms", Some(1)).await;
    let b = wait_binding(&client, &b_obj, "still Objected", |_| true).await;
    assert_eq!(
        condition(&b, "SubprocessorEffective"),
        Some(("False".into(), "Objected".into()))
    );
    wait_sp(&sp, "effective 1/2", |s| {
        s.status.as_ref().and_then(|st| st.effective.as_deref()) == Some("1/2")
    })
    .await;

    let metrics = operator().await.metrics().await;
    assert!(
        metrics.contains(&format!(
            "herald_subprocessor_objections{{subprocessor=\"{sp}\"}} 1"
        )),
        "objection gauge"
    );
    assert!(metrics.contains("herald_subprocessor_notices_total{result=\"delivered\"}"));
    assert!(metrics.contains("herald_subprocessor_notices_total{result=\"failed\"}"));
}

#[tokio::test]
async fn deleting_a_subprocessor_blocks_its_bindings() {
    let client = client().await;
    operator().await;
    let (sp, tenant, binding, src) = (
        unique("sp-del"),
        unique("sp-del-t"),
        unique("sp-del-b"),
        unique("sp-del-src"),
    );
    create_subprocessor(&client, &sp, 30).await;
    create_tenant(&client, &tenant, json!({})).await;
    put_secret(&client, &src, Some(&tenant), &[("apiKey", "sp-del-key")]).await;
    create_binding(
        &client,
        &binding,
        &tenant,
        &sp,
        json!({"secretRef": {"name": src}}),
    )
    .await;
    wait_binding(&client, &binding, "Ready", |b| {
        condition(b, "Ready").is_some_and(|(s, _)| s == "True")
    })
    .await;
    wait_rolled_out(&client, &tenant, "sms", Some(1)).await;

    Api::<Subprocessor>::all(client.clone())
        .delete(&sp, &DeleteParams::default())
        .await
        .unwrap();
    wait_binding(&client, &binding, "SubprocessorNotFound", |b| {
        condition(b, "SubprocessorEffective")
            == Some(("False".into(), "SubprocessorNotFound".into()))
            && condition(b, "Ready").is_some_and(|(s, _)| s == "False")
    })
    .await;
    // The channel is taken from the senders.
    wait_rolled_out(&client, &tenant, "sms", None).await;
}

#[tokio::test]
async fn a_tenant_naming_another_tenants_signing_secret_is_conditioned_and_sent_nothing() {
    let client = client().await;
    operator().await;
    let sp = unique("sp-own");
    let (owner, thief) = (unique("sp-own-a"), unique("sp-own-b"));
    let key_a = secret();
    let (url_a, hook_a) = start_hook(&key_a, false).await;
    let (url_b, hook_b) = start_hook(&key_a, false).await;
    let sig_a = unique("sp-own-sig");
    put_secret(&client, &sig_a, Some(&owner), &[("hmacKey", &key_a)]).await;
    // Tenant B names tenant A's signing secret for its own endpoint.
    let notif = |url: &str| json!({"notifications": {"webhookUrl": url, "signingSecretRef": {"name": sig_a, "key": "hmacKey"}}});
    create_tenant(&client, &owner, notif(&url_a)).await;
    create_tenant(&client, &thief, notif(&url_b)).await;

    let tenants: Api<herald::api::v1alpha1::Tenant> = Api::all(client.clone());
    let owned = |status: &'static str, reason: &'static str| {
        move |t: Option<&herald::api::v1alpha1::Tenant>| {
            t.and_then(|t| t.status.as_ref()).is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "SecretsOwned" && c.status == status && c.reason == reason)
            })
        }
    };
    let b = tokio::time::timeout(
        WAIT,
        await_condition(
            tenants.clone(),
            &thief,
            owned("False", "SourceNotOwnedByTenant"),
        ),
    )
    .await
    .expect("tenant B: SecretsOwned=False")
    .unwrap()
    .unwrap();
    let cond = |t: &herald::api::v1alpha1::Tenant, ty: &str| {
        t.status
            .as_ref()
            .unwrap()
            .conditions
            .iter()
            .find(|c| c.type_ == ty)
            .cloned()
            .unwrap()
    };
    let c = cond(&b, "SecretsOwned");
    assert!(
        c.message.contains(&sig_a) && c.message.contains(&format!("herald.dev/tenant={thief}")),
        "names the Secret and the label: {}",
        c.message
    );
    assert!(!c.message.contains(&owner), "does not name the owner");
    assert_eq!(cond(&b, "Stalled").status, "True");
    tokio::time::timeout(
        WAIT,
        await_condition(tenants.clone(), &owner, owned("True", "Reconciled")),
    )
    .await
    .expect("tenant A: SecretsOwned=True")
    .unwrap();

    // A new Subprocessor carrying a channel of both: A is told, B is not (no key).
    let (src_a, src_b) = (unique("sp-own-src-a"), unique("sp-own-src-b"));
    put_secret(&client, &src_a, Some(&owner), &[("apiKey", "own-key-a")]).await;
    put_secret(&client, &src_b, Some(&thief), &[("apiKey", "own-key-b")]).await;
    let (b_a, b_b) = (unique("sp-own-bind-a"), unique("sp-own-bind-b"));
    create_binding(
        &client,
        &b_a,
        &owner,
        &sp,
        json!({"secretRef": {"name": src_a}}),
    )
    .await;
    create_binding(
        &client,
        &b_b,
        &thief,
        &sp,
        json!({"secretRef": {"name": src_b}}),
    )
    .await;
    for b in [&b_a, &b_b] {
        wait_binding(&client, b, "SubprocessorNotFound", |b| {
            condition(b, "SubprocessorEffective")
                == Some(("False".into(), "SubprocessorNotFound".into()))
        })
        .await;
    }
    wait_past_creation(&client, &[&owner, &thief]).await;
    create_subprocessor(&client, &sp, 30).await;
    wait_notice(&owner, &sp, "A delivered", |n| n.delivered_at.is_some()).await;
    wait_notice(&thief, &sp, "B refused", |n| {
        n.delivered_at.is_none()
            && n.last_failure
                .as_deref()
                .is_some_and(|f| f.contains("herald.dev/tenant="))
    })
    .await;
    let s = wait_sp(&sp, "1/2 delivered", |s| {
        s.status
            .as_ref()
            .and_then(|st| st.notices_delivered.as_deref())
            == Some("1/2")
    })
    .await;
    let a = hook_a.received.lock().unwrap().clone();
    assert_eq!(a.len(), 1, "A got its notice");
    assert!(a[0].verified);
    assert!(
        hook_b.received.lock().unwrap().is_empty(),
        "B's endpoint received nothing (nothing signed with A's key)"
    );
    let tenants: Api<Tenant> = Api::all(client.clone());
    let status = format!(
        "{} {} {}",
        serde_json::to_string(&s.status).unwrap(),
        serde_json::to_string(&tenants.get(&owner).await.unwrap().status).unwrap(),
        serde_json::to_string(&tenants.get(&thief).await.unwrap().status).unwrap()
    );
    assert!(!status.contains(&key_a), "the key is not in any status");
}

/// The sum of a metric family's samples whose line contains `filter` (0 when absent).
fn metric_sum(metrics: &str, name: &str, filter: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(name) && l.contains(filter))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The operator dies after sending a notice and before recording its outcome: the
/// next one sends that very notice again (same webhook-id, same body: same sentAt and
/// objection window), which the customer drops as a duplicate; once delivered, a third
/// operator sends nothing. Notices are sharded like Tenants (`--tenant-selector`): the
/// tenant belongs to the operators this test starts, so the suite's shared operator
/// leaves its notices alone.
/// A tenant of an operator of its own (labelled for the shard named as the tenant), its
/// notices going to a local receiver, with a secretRef binding on the Subprocessor `sp`
/// that the test creates next, once the wall clock is past the tenant's creation.
struct Sharded {
    sp: String,
    tenant: String,
    shard: String,
    binding: String,
    hook: Hook,
}

async fn sharded_tenant(client: &kube::Client, prefix: &str) -> Sharded {
    use crate::common::SHARD_LABEL;
    let (sp, tenant) = (unique(prefix), unique(&format!("{prefix}-t")));
    let shard = tenant.clone();
    let key = secret();
    let (url, hook) = start_hook(&key, false).await;
    let sig = unique(&format!("{prefix}-sig"));
    put_secret(client, &sig, Some(&tenant), &[("hmacKey", &key)]).await;
    create_tenant(
        client,
        &tenant,
        json!({"notifications": {"webhookUrl": url, "signingSecretRef": {"name": sig, "key": "hmacKey"}}}),
    )
    .await;
    Api::<Tenant>::all(client.clone())
        .patch(
            &tenant,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {SHARD_LABEL: shard}}})),
        )
        .await
        .unwrap();
    let src = unique(&format!("{prefix}-src"));
    put_secret(client, &src, Some(&tenant), &[("apiKey", "sharded-key")]).await;
    let binding = unique(&format!("{prefix}-b"));
    create_binding(
        client,
        &binding,
        &tenant,
        &sp,
        json!({"secretRef": {"name": src}}),
    )
    .await;
    wait_past_creation(client, &[&tenant]).await;
    Sharded {
        sp,
        tenant,
        shard,
        binding,
        hook,
    }
}

#[tokio::test]
async fn a_notice_interrupted_by_a_crash_is_resent_unchanged_and_a_delivered_one_never() {
    use crate::erasure::own_operator_running;
    let client = client().await;
    operator().await;
    let Sharded {
        sp,
        tenant,
        shard,
        hook,
        ..
    } = sharded_tenant(&client, "sp-crash").await;
    hook.hang_once.store(true, Ordering::SeqCst);
    create_subprocessor(&client, &sp, 30).await;

    // Operator A sends; the customer's endpoint takes the request and never answers.
    let mut first = own_operator_running(&shard, "subprocessor,channelbinding");
    first.ready().await;
    let in_flight = wait_notice(&tenant, &sp, "recorded before it is sent", |n| {
        n.awaiting_outcome && n.sent_at.is_some()
    })
    .await;
    let deadline = std::time::Instant::now() + WAIT;
    while hook.received.lock().unwrap().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the notice was never sent"
        );
        // The endpoint is a local server: nothing to watch.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    drop(first); // SIGKILL, while the request waits for its answer

    // Operator B sends the same notice again, and it is acknowledged.
    let mut second = own_operator_running(&shard, "subprocessor,channelbinding");
    second.ready().await;
    let delivered = wait_notice(&tenant, &sp, "delivered", |n| n.delivered_at.is_some()).await;
    let received = hook.received.lock().unwrap().clone();
    assert_eq!(received.len(), 2, "sent once per operator: {received:?}");
    assert_eq!(received[0].id, received[1].id, "same webhook-id");
    assert_eq!(
        received[0].body, received[1].body,
        "byte for byte the same notice"
    );
    assert!(
        received[1].verified,
        "signed afresh, within the receiver's window"
    );
    let body: Value = serde_json::from_slice(&received[1].body).unwrap();
    assert_eq!(
        delivered
            .objection_window_ends
            .as_ref()
            .unwrap()
            .0
            .to_string(),
        body["objectionWindowEnds"].as_str().unwrap(),
        "the window recorded is the one the customer was told"
    );
    assert_eq!(delivered.sent_at, in_flight.sent_at);
    assert_eq!(delivered.attempts, 2);
    drop(second);

    // Operator C reconciles every Subprocessor and sends nothing.
    let mut third = own_operator_running(&shard, "subprocessor,channelbinding");
    third.ready().await;
    let all = Api::<Subprocessor>::all(client.clone())
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .len() as f64;
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let m = third.metrics().await;
        if metric_sum(&m, "herald_reconcile_total", "controller=\"subprocessor\"") >= all {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "C did not reconcile:\n{m}"
        );
        // A process's metrics: nothing to watch.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(
        hook.received.lock().unwrap().len(),
        2,
        "a delivered notice is not resent"
    );
    let record = wait_notice(&tenant, &sp, "unchanged", |_| true).await;
    assert_eq!(record, delivered, "the record is untouched");
    drop(third);
    let _ = Api::<Subprocessor>::all(client)
        .delete(&sp, &DeleteParams::default())
        .await;
}

/// The outbound guard's refusal reads as such: an operator whose loopback egress is
/// denied (as in production) refuses the tenant's 127.0.0.1 endpoint, records the
/// refusal, says `EgressRefused` in a Warning event and in the binding's
/// SubprocessorEffective, and the endpoint never sees a request. Loopback only: no test
/// sends anything to another address, not even to see it refused.
#[tokio::test]
async fn a_notice_the_outbound_guard_refuses_reads_egress_refused_and_reaches_nothing() {
    use crate::erasure::own_operator_with;
    use futures::{StreamExt, TryStreamExt};
    use k8s_openapi::api::core::v1::Event;
    use kube::runtime::{WatchStreamExt, watcher};
    let client = client().await;
    operator().await;
    let Sharded {
        sp,
        tenant,
        shard,
        binding,
        hook,
    } = sharded_tenant(&client, "sp-egress").await;
    create_subprocessor(&client, &sp, 30).await;

    let mut own = own_operator_with(&shard, "subprocessor,channelbinding", false);
    own.ready().await;
    let record = wait_notice(&tenant, &sp, "refused by the outbound guard", |n| {
        n.last_failure
            .as_deref()
            .is_some_and(|f| f.starts_with("egress refused"))
    })
    .await;
    assert!(record.delivered_at.is_none(), "{record:?}");
    assert!(
        record.last_failure.as_deref().unwrap().contains("loopback"),
        "the address class is named: {record:?}"
    );
    // The shard's binding controller reads the record.
    wait_binding(
        &client,
        &binding,
        "SubprocessorEffective EgressRefused",
        |b| condition(b, "SubprocessorEffective") == Some(("False".into(), "EgressRefused".into())),
    )
    .await;
    let events: Api<Event> = Api::all(client.clone());
    let mut warned = watcher(
        events,
        watcher::Config::default().fields(&format!(
            "involvedObject.name={sp},reason=EgressRefused,type=Warning"
        )),
    )
    .applied_objects()
    .boxed();
    let seen = tokio::time::timeout(WAIT, warned.try_next()).await;
    assert!(
        matches!(seen, Ok(Ok(Some(_)))),
        "no EgressRefused Warning event on Subprocessor {sp}: {seen:?}"
    );
    assert!(
        hook.received.lock().unwrap().is_empty(),
        "the refused endpoint saw a request"
    );
    drop(own);
    let _ = Api::<Subprocessor>::all(client)
        .delete(&sp, &DeleteParams::default())
        .await;
}
