//! BreachNotice end to end: a breach reaches every tenant it selects with a notice
//! signed per Standard Webhooks (verified with each tenant's secret by the reference
//! library), a spec change reaches them as a follow-up with a new idempotency key, the
//! acknowledgements are recorded; an unreachable endpoint is retried and named (then
//! Stalled, with events on each transition), a tenant without an endpoint is named at
//! once; the deadline metrics are awareAt + 48 h and + 72 h; deleting a BreachNotice is
//! refused. The customers' endpoints are local
//! servers on 127.0.0.1. No personal data: the breach describes categories and counts.

use herald::api::v1alpha1::{BreachNotice, BreachTenantNotice, Tenant};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::channel_binding::{create_tenant, put_secret};
use crate::common::{CONTROL_NAMESPACE, E2E_LABEL, WAIT, client, kubectl, operator, unique};
use crate::subprocessor::{Hook, Received, secret, serve_hook, start_hook, verifies};

/// The label the breaches of these tests select their tenants by: under the prefix the
/// platform owns, the only one a selector may use.
pub(crate) const SELECT_LABEL: &str = "platform.herald.dev/e2e-breach";

/// A tenant labelled `group` whose notices go to `url` (none: no endpoint), signed
/// with `key`.
pub(crate) async fn tenant(
    client: &kube::Client,
    name: &str,
    group: &str,
    hook: Option<(&str, &str)>,
) {
    let extra = match hook {
        Some((url, key)) => {
            let sig = format!("{name}-sig");
            put_secret(client, &sig, Some(name), &[("hmacKey", key)]).await;
            json!({"notifications": {"webhookUrl": url, "signingSecretRef": {"name": sig, "key": "hmacKey"}}})
        }
        None => json!({}),
    };
    create_tenant(client, name, extra).await;
    Api::<Tenant>::all(client.clone())
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {SELECT_LABEL: group}}})),
        )
        .await
        .unwrap();
}

/// awareAt: now, in whole seconds.
pub(crate) fn now() -> Timestamp {
    Timestamp::from_second(Timestamp::now().as_second()).unwrap()
}

async fn create_breach(name: &str, aware_at: Timestamp, affected: Value) {
    api()
        .await
        .create(&PostParams::default(), &breach_of(name, aware_at, affected))
        .await
        .unwrap();
}

/// The BreachNotice these tests create: `name`, aware at `aware_at`, of `affected`, with
/// the platform's own data involved.
pub(crate) fn breach_of(name: &str, aware_at: Timestamp, affected: Value) -> BreachNotice {
    serde_json::from_value(json!({
        "apiVersion": "herald.dev/v1alpha1", "kind": "BreachNotice",
        "metadata": {"name": name, "namespace": CONTROL_NAMESPACE, "labels": {E2E_LABEL: "breach"}},
        "spec": {
            "awareAt": aware_at.to_string(),
            "affectedTenants": affected,
            "nature": "e2e: an access policy made an export bucket readable",
            "dataCategories": ["message content", "phone numbers"],
            "approximateRecords": 1200,
            "approximateDataSubjects": 340,
            "likelyConsequences": "message content may have been read by third parties",
            "measures": "the access policy was corrected",
            "contact": {"name": "Data Protection Office", "email": "dpo@platform.example"},
            "platformDataInvolved": true,
        }
    }))
    .unwrap()
}

pub(crate) async fn api() -> Api<BreachNotice> {
    Api::namespaced(client().await, CONTROL_NAMESPACE)
}

/// A BreachNotice as read, with every tenant's record of it (each in its Tenant's
/// `status.breachNotices`, not on the BreachNotice, so that no breach grows with the
/// fleet).
#[derive(Debug)]
pub(crate) struct Seen {
    pub(crate) bn: BreachNotice,
    pub(crate) records: Vec<BreachTenantNotice>,
}

impl std::ops::Deref for Seen {
    type Target = BreachNotice;
    fn deref(&self) -> &BreachNotice {
        &self.bn
    }
}

/// The BreachNotice `name` and the records of it in every Tenant's status.
pub(crate) async fn seen(name: &str) -> Option<Seen> {
    let bn = api().await.get_opt(name).await.unwrap()?;
    let uid = bn.metadata.uid.clone().unwrap_or_default();
    let records = Api::<Tenant>::all(client().await)
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|t| t.status)
        .flat_map(|s| s.breach_notices)
        .filter(|r| r.breach == name && r.breach_uid == uid)
        .collect();
    Some(Seen { bn, records })
}

/// Waits until the BreachNotice and its records satisfy `f`, and returns them. Polled:
/// the records change on the Tenants, not on the BreachNotice a watch would follow.
pub(crate) async fn wait_breach(name: &str, what: &str, f: impl Fn(&Seen) -> bool) -> Seen {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let now = seen(name).await;
        if let Some(s) = now.filter(|s| f(s)) {
            return s;
        }
        if tokio::time::Instant::now() > deadline {
            panic!(
                "BreachNotice {name}: {what} not reached; status: {}, records: {}",
                serde_json::to_string_pretty(&seen(name).await.and_then(|s| s.bn.status.clone()))
                    .unwrap(),
                serde_json::to_string_pretty(&seen(name).await.map(|s| s.records)).unwrap()
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

pub(crate) fn record<'a>(b: &'a Seen, tenant: &str) -> Option<&'a BreachTenantNotice> {
    b.records.iter().find(|n| n.tenant == tenant)
}

/// Whether `tenant` acknowledged the notice of `generation`.
pub(crate) fn acked(b: &Seen, tenant: &str, generation: i64) -> bool {
    record(b, tenant).is_some_and(|r| r.generation == generation && r.acknowledged_at.is_some())
}

pub(crate) fn condition(b: &BreachNotice, type_: &str) -> Option<(String, String, String)> {
    let c = b
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)?;
    Some((c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// The notices `hook` received, verified, for generation `g`.
pub(crate) fn received(hook: &Hook, g: i64) -> Vec<(Received, Value)> {
    breach_notices(hook)
        .into_iter()
        .filter(|(_, v)| v["generation"] == g)
        .collect()
}

/// The breach notices `hook` received: a live tenant's endpoint also gets the
/// announcements of platform-wide Subprocessors other tests create meanwhile.
pub(crate) fn breach_notices(hook: &Hook) -> Vec<(Received, Value)> {
    hook.received
        .lock()
        .unwrap()
        .iter()
        .filter_map(|r| Some((r.clone(), serde_json::from_slice::<Value>(&r.body).ok()?)))
        .filter(|(_, v)| v["type"] == "breach.notice")
        .collect()
}

/// Waits until an event with `reason` is published on the BreachNotice `name`.
pub(crate) async fn wait_event(name: &str, reason: &str) {
    use futures::StreamExt;
    use kube::runtime::{WatchStreamExt, watcher};
    let events: Api<k8s_openapi::api::core::v1::Event> =
        Api::namespaced(client().await, CONTROL_NAMESPACE);
    let cfg = watcher::Config::default().fields(&format!("involvedObject.name={name}"));
    let mut stream = watcher(events, cfg).applied_objects().boxed();
    let found = async {
        while let Some(Ok(e)) = stream.next().await {
            if e.reason.as_deref() == Some(reason) {
                return;
            }
        }
    };
    tokio::time::timeout(WAIT, found)
        .await
        .unwrap_or_else(|_| panic!("no event {reason} on BreachNotice {name} within {WAIT:?}"));
}

/// The value of the series `name{breach="<breach>"}` in the operator's metrics.
pub(crate) async fn metric(name: &str, breach: &str) -> Option<f64> {
    let text = operator().await.metrics().await;
    let label = format!(r#"breach="{breach}""#);
    text.lines()
        .find(|l| l.starts_with(&format!("{name}{{")) && l.contains(&label))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Deletes a BreachNotice as the break-glass group may (cleanup), after checking that
/// the cluster admin may not.
pub(crate) async fn refuse_then_remove(name: &str) {
    let err = api()
        .await
        .delete(name, &DeleteParams::default())
        .await
        .expect_err("deleting a BreachNotice must be refused");
    let text = err.to_string();
    assert!(
        text.contains("is evidence of a personal data breach")
            && text.contains("herald-evidence-admins"),
        "{text}"
    );
    let glass: Api<BreachNotice> = Api::namespaced(
        crate::erasure::break_glass_client().await,
        CONTROL_NAMESPACE,
    );
    glass
        .delete(name, &DeleteParams::default())
        .await
        .unwrap_or_else(|e| panic!("the break-glass group may delete a BreachNotice: {e}"));
    // Its series go with it (an alert must not fire for a deleted breach). The
    // operator learns of the deletion from its watch: poll the outcome, with a deadline.
    let label = format!(r#"breach="{name}""#);
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
    loop {
        tick.tick().await;
        let text = operator().await.metrics().await;
        if !text
            .lines()
            .any(|l| l.starts_with("herald_breach_") && l.contains(&label))
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "series of the deleted BreachNotice {name} still exported"
        );
    }
}

#[tokio::test]
async fn a_breach_reaches_every_selected_tenant_signed_and_every_change_as_a_follow_up() {
    let client = client().await;
    operator().await;
    let group = unique("bsel");
    let (a, b, other) = (unique("br-a"), unique("br-b"), unique("br-other"));
    let (key_a, key_b, key_o) = (secret(), secret(), secret());
    let (url_a, hook_a) = start_hook(&key_a, false).await;
    // B's endpoint fails once: the retry keeps the webhook-id.
    let (url_b, hook_b) = start_hook(&key_b, true).await;
    let (url_o, hook_o) = start_hook(&key_o, false).await;
    tenant(&client, &a, &group, Some((&url_a, &key_a))).await;
    tenant(&client, &b, &group, Some((&url_b, &key_b))).await;
    // Not selected: told nothing.
    tenant(&client, &other, &unique("bsel-no"), Some((&url_o, &key_o))).await;

    let name = unique("breach-sel");
    let aware = now();
    create_breach(
        &name,
        aware,
        json!({"selector": {"matchLabels": {SELECT_LABEL: group}}}),
    )
    .await;
    let bn = wait_breach(&name, "both tenants acknowledged generation 1", |bn| {
        acked(bn, &a, 1) && acked(bn, &b, 1)
    })
    .await;
    let st = bn.status.as_ref().unwrap();
    let deadline = aware
        .checked_add(k8s_openapi::jiff::SignedDuration::from_hours(48))
        .unwrap();
    assert_eq!(st.deadline.as_ref().unwrap().0, deadline);
    let bn = wait_breach(&name, "Notified 2/2, Ready", |bn| {
        let st = bn.status.as_ref().unwrap();
        st.state.as_deref() == Some("Notified")
            && st.acknowledged.as_deref() == Some("2/2")
            && condition(bn, "Ready").is_some_and(|c| c.0 == "True")
    })
    .await;

    // Each tenant got the notice, signed with its own key, with the breach's fields.
    let first_keys: Vec<String> = [(&a, &hook_a, &key_a), (&b, &hook_b, &key_b)]
        .iter()
        .map(|(t, hook, key)| {
            let got = received(hook, 1);
            assert!(!got.is_empty(), "{t} received nothing");
            assert!(
                got.iter().all(|(r, _)| r.verified),
                "{t}: every attempt verifies"
            );
            assert!(
                got.iter().all(|(r, _)| r.id == got[0].0.id),
                "{t}: retries keep the id"
            );
            let (r, body) = &got[got.len() - 1];
            assert!(verifies(key, &r.headers, &r.body));
            assert_eq!(body["type"], "breach.notice");
            assert_eq!(body["tenant"], t.as_str());
            assert_eq!(body["breach"], name.as_str());
            assert_eq!(body["followUp"], false);
            assert_eq!(body["awareAt"], aware.to_string());
            assert_eq!(body["deadline"], deadline.to_string());
            assert_eq!(
                body["nature"],
                "e2e: an access policy made an export bucket readable"
            );
            assert_eq!(
                body["dataCategories"],
                json!(["message content", "phone numbers"])
            );
            assert_eq!(body["approximateRecords"], 1200);
            assert_eq!(body["approximateDataSubjects"], 340);
            assert_eq!(body["measures"], "the access policy was corrected");
            assert_eq!(body["contact"]["email"], "dpo@platform.example");
            assert_eq!(body["platformDataInvolved"], true);
            let rec = record(&bn, t).unwrap();
            assert_eq!(body["idempotencyKey"], rec.idempotency_key.as_str());
            assert_eq!(
                r.id, rec.idempotency_key,
                "{t}: the webhook-id is the recorded key"
            );
            r.id.clone()
        })
        .collect();
    assert_ne!(first_keys[0], first_keys[1], "one key per tenant");
    assert!(
        received(&hook_b, 1).len() >= 2,
        "B's failed notice was retried"
    );
    assert!(
        !verifies(
            &key_b,
            &received(&hook_a, 1)[0].0.headers,
            &received(&hook_a, 1)[0].0.body
        ),
        "signed with each tenant's own key"
    );
    assert!(
        breach_notices(&hook_o).is_empty(),
        "an unselected tenant is told nothing"
    );

    // awareAt is evidence: it cannot be moved (nor the deadline with it).
    let moved = api()
        .await
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"awareAt": "2026-03-01T00:00:00Z"}})),
        )
        .await
        .expect_err("moving awareAt must be refused");
    assert!(
        moved.to_string().contains("awareAt is immutable"),
        "{moved}"
    );

    // Phased information: a spec change reaches both as a follow-up with a new key.
    api()
        .await
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"approximateRecords": 1500, "measures": "keys rotated; logs analysed"}})),
        )
        .await
        .unwrap();
    let bn = wait_breach(
        &name,
        "both acknowledged the follow-up (generation 2)",
        |bn| acked(bn, &a, 2) && acked(bn, &b, 2),
    )
    .await;
    for (t, hook, first) in [(&a, &hook_a, &first_keys[0]), (&b, &hook_b, &first_keys[1])] {
        let got = received(hook, 2);
        assert_eq!(got.len(), 1, "{t}: the follow-up is sent once");
        let (r, body) = &got[0];
        assert!(r.verified);
        assert_eq!(body["followUp"], true);
        assert_eq!(body["approximateRecords"], 1500);
        assert_eq!(body["measures"], "keys rotated; logs analysed");
        assert_ne!(&r.id, first, "{t}: a follow-up has its own idempotency key");
        let rec = record(&bn, t).unwrap();
        assert_eq!(r.id, rec.idempotency_key);
        let (first_ack, ack) = (
            rec.first_acknowledged_at.as_ref().unwrap().0,
            rec.acknowledged_at.as_ref().unwrap().0,
        );
        assert!(
            first_ack <= ack,
            "{t}: the first acknowledgement is kept: {rec:?}"
        );
        assert!(rec.first_sent_at.as_ref().unwrap().0 <= first_ack);
        assert_eq!(
            received(hook, 1)
                .iter()
                .filter(|(r, _)| r.id == *first)
                .count(),
            received(hook, 1).len()
        );
    }
    wait_breach(&name, "Notified again", |bn| {
        bn.status.as_ref().and_then(|s| s.state.as_deref()) == Some("Notified")
            && bn.status.as_ref().and_then(|s| s.observed_generation) == Some(2)
    })
    .await;
    // Everyone told: no deadline series is pending; the authority's still is.
    assert_eq!(
        metric("herald_breach_tenants_unnotified", &name).await,
        Some(0.0)
    );
    assert_eq!(
        metric("herald_breach_notice_deadline_timestamp_seconds", &name).await,
        None
    );
    let authority = (aware.as_second() + 72 * 3600) as f64;
    assert_eq!(
        metric("herald_breach_authority_deadline_timestamp_seconds", &name).await,
        Some(authority)
    );
    // The authority notified: recorded in the spec (a follow-up to both), the series ends.
    api()
        .await
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"authorityNotifiedAt": now().to_string()}})),
        )
        .await
        .unwrap();
    wait_breach(&name, "both acknowledged generation 3", |bn| {
        acked(bn, &a, 3) && acked(bn, &b, 3)
    })
    .await;
    wait_metric_gone("herald_breach_authority_deadline_timestamp_seconds", &name).await;
    refuse_then_remove(&name).await;
}

/// Waits until the series `name{breach="<breach>"}` is no longer exported (the
/// operator's metrics change after its reconcile: poll the outcome, with a deadline).
pub(crate) async fn wait_metric_gone(name: &str, breach: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
    while metric(name, breach).await.is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} of {breach} still exported"
        );
        tick.tick().await;
    }
}

#[tokio::test]
async fn an_unreachable_endpoint_is_retried_and_named_and_the_deadlines_are_exported() {
    let client = client().await;
    operator().await;
    let group = unique("bdown");
    let (up, down) = (unique("br-up"), unique("br-down"));
    let (key_up, key_down) = (secret(), secret());
    let (url_up, _hook_up) = start_hook(&key_up, false).await;
    // A port nobody listens on (taken, then released): connections are refused.
    let parked = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = parked.local_addr().unwrap();
    drop(parked);
    let url_down = format!("http://{addr}/notices");
    tenant(&client, &up, &group, Some((&url_up, &key_up))).await;
    tenant(&client, &down, &group, Some((&url_down, &key_down))).await;

    let name = unique("breach-down");
    let aware = now();
    create_breach(&name, aware, json!({"names": [up, down]})).await;
    let bn = wait_breach(&name, "the unreachable tenant named as failing", |bn| {
        condition(bn, "TenantsNotified")
            .is_some_and(|c| c.1 == "NoticeFailing" && c.2.contains(&down))
    })
    .await;
    let (_, _, message) = condition(&bn, "TenantsNotified").unwrap();
    assert!(message.contains("call them"), "{message}");
    assert!(
        !message.contains(&format!("{up} (")),
        "the reachable tenant is not failing: {message}"
    );
    let rec = record(&bn, &down).unwrap();
    assert!(
        rec.attempts >= 3 && rec.acknowledged_at.is_none(),
        "{rec:?}"
    );
    assert!(rec.last_failure.is_some(), "{rec:?}");
    assert!(acked(&bn, &up, 1));
    // Retried by Herald itself: Reconciling, until health.stallAfterSeconds (30 s here)
    // makes it Stalled, still retrying, for a person to call the customer.
    let stuck = condition(&bn, "Stalled").unwrap();
    assert!(
        condition(&bn, "Reconciling").unwrap().0 == "True"
            || (stuck.0 == "True" && stuck.1 == "NoticeFailing"),
        "{bn:?}"
    );
    assert_eq!(
        bn.status.as_ref().unwrap().acknowledged.as_deref(),
        Some("1/2")
    );

    // The deadlines: awareAt + 48 h (one tenant not told) and + 72 h (platform data).
    let s = aware.as_second() as f64;
    assert_eq!(
        metric("herald_breach_notice_deadline_timestamp_seconds", &name).await,
        Some(s + 48.0 * 3600.0)
    );
    assert_eq!(
        metric("herald_breach_authority_deadline_timestamp_seconds", &name).await,
        Some(s + 72.0 * 3600.0)
    );
    assert_eq!(
        metric("herald_breach_tenants_unnotified", &name).await,
        Some(1.0)
    );

    let bn = wait_breach(
        &name,
        "Stalled after stallAfterSeconds, still retrying",
        |bn| condition(bn, "Stalled").is_some_and(|c| c.0 == "True" && c.1 == "NoticeFailing"),
    )
    .await;
    assert!(!acked(&bn, &down, 1));
    // Events on the transitions: each failure class once, the condition turning False.
    wait_event(&name, "NoticeFailed").await;
    wait_event(&name, "NoticeFailing").await;
    // The endpoint comes back on the same port: the next retry is acknowledged.
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let hook = serve_hook(listener, &key_down, false);
    let bn = wait_breach(&name, "the recovered tenant acknowledged", |bn| {
        acked(bn, &down, 1)
    })
    .await;
    // Only the breach's notices (seen in a full run: a Subprocessor announcement too).
    let got = breach_notices(&hook);
    assert!(
        !got.is_empty(),
        "no breach notice reached the recovered tenant"
    );
    assert!(
        got.iter()
            .all(|(r, _)| r.verified && r.id == record(&bn, &down).unwrap().idempotency_key)
    );
    wait_event(&name, "NoticeDelivered").await;
    wait_breach(&name, "Notified, no longer Stalled", |bn| {
        bn.status.as_ref().and_then(|s| s.state.as_deref()) == Some("Notified")
            && condition(bn, "Stalled").is_some_and(|c| c.0 == "False")
    })
    .await;
    assert_eq!(
        metric("herald_breach_notice_deadline_timestamp_seconds", &name).await,
        None
    );
    assert_eq!(
        metric("herald_breach_tenants_unnotified", &name).await,
        Some(0.0)
    );
    refuse_then_remove(&name).await;
}

#[tokio::test]
async fn a_tenant_without_an_endpoint_is_named_at_once_and_deleting_the_breach_is_refused() {
    let client = client().await;
    operator().await;
    let group = unique("bnone");
    let silent = unique("br-none");
    tenant(&client, &silent, &group, None).await;
    let name = unique("breach-none");
    create_breach(&name, now(), json!({"names": [silent, "br-nobody"]})).await;
    let bn = wait_breach(
        &name,
        "Stalled, the tenant without an endpoint named",
        |bn| {
            condition(bn, "TenantsNotified").is_some_and(|c| c.2.contains(&silent))
                && condition(bn, "Stalled").is_some_and(|c| c.0 == "True")
        },
    )
    .await;
    let (_, reason, message) = condition(&bn, "TenantsNotified").unwrap();
    // A missing tenant is named before one without an endpoint; both are in the message.
    assert_eq!(reason, "TenantNotFound", "{message}");
    assert!(
        message.contains("br-nobody") && message.contains("without spec.notifications"),
        "{message}"
    );
    assert_eq!(condition(&bn, "Ready").unwrap().0, "False");
    assert_eq!(
        bn.status.as_ref().unwrap().acknowledged.as_deref(),
        Some("0/2")
    );
    assert!(bn.status.as_ref().unwrap().retain_until.is_some());
    // kubectl shows the deadline and state; explain shows the field docs.
    let out = kubectl(&["get", "breachnotice", &name, "-n", CONTROL_NAMESPACE]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("DEADLINE") && table.contains("STATE") && table.contains("Notifying"),
        "{table}"
    );
    // The API server publishes a CRD's OpenAPI a moment after it is Established, and
    // nothing can be watched for that: poll the outcome, with a deadline.
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(500));
    let explained = loop {
        tick.tick().await;
        let out = kubectl(&[
            "explain",
            "breachnotices.spec.affectedTenants",
            "--api-version=herald.dev/v1alpha1",
        ]);
        let text = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        if out.status.success() || tokio::time::Instant::now() > deadline {
            break text;
        }
    };
    assert!(
        explained.contains("exactly one of names, selector or allTenants: true"),
        "{explained}"
    );
    refuse_then_remove(&name).await;
}
