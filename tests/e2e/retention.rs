//! Retention end to end: a purge CronJob per category in the tenant namespace, as
//! restricted as the senders; a purge Job that succeeds shows as the category's last
//! success in the Tenant's status and metrics; a RetentionPolicy that asks for more than
//! the platform's period is refused and the platform's period applies.

use std::collections::BTreeMap;

use herald::api::v1alpha1::{RetentionPolicy, Tenant};
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::wait::await_condition;
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use crate::channel_binding::create_tenant;
use crate::common::{E2E_LABEL, WAIT, client, kubectl, operator, unique};

/// Waits until the tenant satisfies `f`, failing with its last status.
async fn wait_tenant(
    client: &Client,
    name: &str,
    what: &str,
    f: impl Fn(&Tenant) -> bool,
) -> Tenant {
    let api: Api<Tenant> = Api::all(client.clone());
    let cond = move |t: Option<&Tenant>| t.is_some_and(&f);
    match tokio::time::timeout(WAIT, await_condition(api.clone(), name, cond)).await {
        Ok(Ok(Some(t))) => t,
        _ => {
            let now = api.get_opt(name).await.ok().flatten();
            panic!(
                "tenant {name}: {what} not reached in {WAIT:?}; status: {}",
                serde_json::to_string_pretty(&now.and_then(|t| t.status)).unwrap()
            )
        }
    }
}

fn condition(t: &Tenant, type_: &str) -> Option<(String, String, String)> {
    t.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// The tenant's purge CronJobs by name.
async fn purge_jobs(client: &Client, tenant: &str) -> BTreeMap<String, Value> {
    let api: Api<CronJob> = Api::namespaced(client.clone(), &format!("tenant-{tenant}"));
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let list = api
            .list(&ListParams::default().labels("herald.dev/purge-category"))
            .await
            .unwrap();
        if list.items.len() == 5 {
            return list
                .items
                .iter()
                .map(|j| (j.name_any(), serde_json::to_value(j).unwrap()))
                .collect();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "tenant-{tenant}: {} purge CronJobs, not 5",
            list.items.len()
        );
        // The CronJobs are applied with the rest of the stack; Ready (awaited by the
        // callers) comes first, so this rarely loops.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

fn args(job: &Value) -> Vec<String> {
    job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn purge_cron_jobs_run_per_category_and_a_success_shows_in_status_and_metrics() {
    let client = client().await;
    let op = operator().await;
    let name = unique("rt-purge");
    create_tenant(&client, &name, json!({})).await;
    let t = wait_tenant(&client, &name, "Ready with purge records", |t| {
        condition(t, "Ready").is_some_and(|c| c.0 == "True")
            && t.status.as_ref().is_some_and(|s| s.purges.len() == 5)
    })
    .await;
    assert_eq!(
        condition(&t, "PurgesCurrent").map(|c| (c.0, c.1)),
        Some(("True".into(), "Reconciled".into()))
    );

    // One CronJob per category, with the standard-eu periods (examples/20).
    let jobs = purge_jobs(&client, &name).await;
    let expected = [
        ("herald-purge-message-content", "messageContent", "90"),
        ("herald-purge-delivery-metadata", "deliveryMetadata", "180"),
        ("herald-purge-sms-voice-traffic", "smsVoiceTraffic", "90"),
        ("herald-purge-backups", "backups", "7"),
        ("herald-purge-logs", "logs", "90"),
    ];
    for (job_name, category, days) in expected {
        let j = jobs
            .get(job_name)
            .unwrap_or_else(|| panic!("no CronJob {job_name}: {:?}", jobs.keys()));
        assert_eq!(
            args(j),
            [
                "purge",
                "--tenant",
                name.as_str(),
                "--category",
                category,
                "--older-than-days",
                days,
                "--config",
                "/etc/herald/config.json"
            ]
        );
        assert_eq!(j["metadata"]["labels"]["herald.dev/tenant"], name.as_str());
        assert_eq!(j["metadata"]["ownerReferences"][0]["kind"], "Tenant");
        assert_eq!(j["spec"]["concurrencyPolicy"], "Forbid");
        let schedule = j["spec"]["schedule"].as_str().unwrap();
        assert!(schedule.ends_with(" * * *"), "daily: {schedule}");
        let pod = &j["spec"]["jobTemplate"]["spec"]["template"]["spec"];
        assert_eq!(pod["automountServiceAccountToken"], false);
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        assert_eq!(
            pod["securityContext"]["seccompProfile"]["type"],
            "RuntimeDefault"
        );
        let sc = &pod["containers"][0]["securityContext"];
        assert_eq!(sc["readOnlyRootFilesystem"], true);
        assert_eq!(sc["allowPrivilegeEscalation"], false);
        assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]));
        let record = t
            .status
            .as_ref()
            .unwrap()
            .purges
            .iter()
            .find(|p| p.category == category)
            .unwrap_or_else(|| panic!("no purge record for {category}"));
        assert_eq!(record.period_days.to_string(), days);
        assert_eq!(record.last_success, None);
    }

    // Run the backups purge now, as the schedule would: a Job from the CronJob (owned by
    // it). kwok completes its pod; the CronJob controller records lastSuccessfulTime;
    // Herald sees the CronJob change and records the success.
    let ns = format!("tenant-{name}");
    let out = kubectl(&[
        "create",
        "job",
        "-n",
        &ns,
        "--from=cronjob/herald-purge-backups",
        "e2e-backups-now",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t = wait_tenant(&client, &name, "backups purge succeeded", |t| {
        t.status.as_ref().is_some_and(|s| {
            s.purges
                .iter()
                .any(|p| p.category == "backups" && p.last_success.is_some())
        })
    })
    .await;
    let s = t.status.unwrap();
    assert!(
        s.purges
            .iter()
            .filter(|p| p.category != "backups")
            .all(|p| p.last_success.is_none())
    );
    // The gauges: set in the same reconcile that wrote the status (polled: the shared
    // cluster may have another operator that wrote it first).
    let wanted = [
        format!(
            "herald_purge_last_success_timestamp_seconds{{tenant=\"{name}\",category=\"backups\"}}"
        ),
        format!("herald_purge_overdue{{tenant=\"{name}\",category=\"backups\"}} 0"),
    ];
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let metrics = op.metrics().await;
        if wanted.iter().all(|w| metrics.contains(w.as_str())) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "purge gauges missing: {wanted:?}"
        );
        // Polling the operator's endpoint: there is nothing to watch.
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn a_retention_period_longer_than_the_platforms_is_refused_and_the_platforms_applies() {
    let client = client().await;
    operator().await;
    let (name, policy) = (unique("rt-long"), unique("rt-long-policy"));
    let p: RetentionPolicy = serde_json::from_value(json!({
        "apiVersion": "herald.dev/v1alpha1", "kind": "RetentionPolicy",
        "metadata": {"name": policy, "labels": {E2E_LABEL: "retention"}},
        "spec": {"deleteWithinDays": 30, "messageContentDays": 365, "logsDays": 30}
    }))
    .unwrap();
    Api::<RetentionPolicy>::all(client.clone())
        .create(&PostParams::default(), &p)
        .await
        .unwrap();
    create_tenant(
        &client,
        &name,
        json!({"retentionPolicyRef": {"name": policy}}),
    )
    .await;
    let t = wait_tenant(&client, &name, "RetentionApplied=False", |t| {
        condition(t, "RetentionApplied")
            .is_some_and(|c| c.0 == "False" && c.1 == "RetentionLongerThanPlatform")
    })
    .await;
    let (_, _, message) = condition(&t, "RetentionApplied").unwrap();
    assert!(
        message.contains("messageContentDays 365 is longer than the platform's 90 days"),
        "{message}"
    );
    assert!(
        !message.contains("logsDays"),
        "a shorter period is fine: {message}"
    );
    assert_eq!(
        condition(&t, "Stalled").map(|c| (c.0, c.1)),
        Some(("True".into(), "RetentionLongerThanPlatform".into()))
    );

    // The platform's period reaches the stack, never the longer one; the shorter stays.
    let jobs = purge_jobs(&client, &name).await;
    let days = |job: &str| {
        let a = args(&jobs[job]);
        let i = a.iter().position(|x| x == "--older-than-days").unwrap();
        a[i + 1].clone()
    };
    assert_eq!(days("herald-purge-message-content"), "90");
    assert_eq!(days("herald-purge-logs"), "30");
    let cm = Api::<ConfigMap>::namespaced(client.clone(), &format!("tenant-{name}"))
        .get("herald-sender-config")
        .await
        .unwrap();
    let config: Value = serde_json::from_str(&cm.data.unwrap()["config.json"]).unwrap();
    assert_eq!(config["retention"]["messageContentDays"], 90);
    assert_eq!(config["retention"]["logsDays"], 30);
}
