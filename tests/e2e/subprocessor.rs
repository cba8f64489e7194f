//! Subprocessor end to end: a new Subprocessor is announced to every affected tenant
//! with a signed, idempotent, retried webhook; an objection blocks that tenant's
//! binding; the other tenant's binding waits for its notice period; deleting the
//! Subprocessor blocks its bindings. The customer webhook is a local HTTP server.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use herald::api::v1alpha1::Subprocessor;
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
struct Received {
    headers: HeaderMap,
    id: String,
    timestamp: String,
    body: Vec<u8>,
    /// The Standard Webhooks library (not Herald's code) verified it with the tenant's
    /// secret, within its 5-minute window.
    verified: bool,
}

#[derive(Clone)]
struct Hook {
    /// The tenant's Standard Webhooks secret: the receiver refuses (401) what it cannot
    /// verify with it, as a customer would.
    secret: String,
    received: Arc<Mutex<Vec<Received>>>,
    /// Fail the next request with 500 (to see the retry), then accept.
    fail_once: Arc<AtomicBool>,
}

/// What a customer's receiver does: verify per Standard Webhooks with the reference
/// library, then accept.
fn verifies(secret: &str, headers: &HeaderMap, body: &[u8]) -> bool {
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
    if !verified {
        StatusCode::UNAUTHORIZED
    } else if h.fail_once.swap(false, Ordering::SeqCst) {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::NO_CONTENT
    }
}

async fn start_hook(secret: &str, fail_once: bool) -> (String, Hook) {
    let hook = Hook {
        secret: secret.to_owned(),
        received: Arc::default(),
        fail_once: Arc::new(AtomicBool::new(fail_once)),
    };
    let app = axum::Router::new()
        .route("/notices", axum::routing::post(receive))
        .with_state(hook.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/notices"), hook)
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
fn secret() -> String {
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
    let s = wait_sp(&sp, "both notices delivered", |s| {
        s.status.as_ref().is_some_and(|st| {
            st.notices.len() == 2 && st.notices.iter().all(|n| n.delivered_at.is_some())
        })
    })
    .await;
    let status = s.status.unwrap();
    for n in &status.notices {
        let (d, e) = (
            n.delivered_at.as_ref().unwrap().0,
            n.objection_window_ends.as_ref().unwrap().0,
        );
        assert_eq!(
            e.duration_since(d).as_hours(),
            30 * 24,
            "window = delivery + 30 days"
        );
    }

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
    let mut notices = status.notices.clone();
    for n in notices.iter_mut().filter(|n| n.tenant == waiting) {
        let past = |t: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time| {
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                t.0.checked_sub(k8s_openapi::jiff::SignedDuration::from_hours(31 * 24))
                    .unwrap(),
            )
        };
        n.delivered_at = n.delivered_at.as_ref().map(past);
        n.objection_window_ends = n.objection_window_ends.as_ref().map(past);
    }
    Api::<Subprocessor>::all(client.clone())
        .patch_status(
            &sp,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"notices": notices}})),
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
    let s = wait_sp(&sp, "A delivered, B refused", |s| {
        s.status.as_ref().is_some_and(|st| {
            st.notices
                .iter()
                .any(|n| n.tenant == owner && n.delivered_at.is_some())
                && st.notices.iter().any(|n| {
                    n.tenant == thief
                        && n.delivered_at.is_none()
                        && n.last_failure
                            .as_deref()
                            .is_some_and(|f| f.contains("herald.dev/tenant="))
                })
        })
    })
    .await;
    let a = hook_a.received.lock().unwrap().clone();
    assert_eq!(a.len(), 1, "A got its notice");
    assert!(a[0].verified);
    assert!(
        hook_b.received.lock().unwrap().is_empty(),
        "B's endpoint received nothing (nothing signed with A's key)"
    );
    let status = serde_json::to_string(&s.status).unwrap();
    assert!(!status.contains(&key_a), "the key is not in the status");
}
