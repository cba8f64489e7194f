//! erasure's Jobs (the export, and the purge at every provider and in the platform's
//! stores): created if absent in the tenant namespace (rebuilt if missing), verified
//! against what erasure asks for (a Job of the same name with another image or other
//! arguments is replaced and confirms nothing), and read for where they stand.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, PostParams};
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use super::super::super::data_plane::DataPlane;
use super::super::super::destination;
use super::super::{JobHome, plan};
use crate::api::v1alpha1::Tenant;
use crate::api::v1alpha1::conditions::reason;
use crate::controller::{Context, Error, TENANT_LABEL};
use crate::outbound::Approved;

/// Where one of erasure's Jobs stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum JobState {
    Running,
    Succeeded,
    /// Out of retries (its backoffLimit).
    Failed,
    /// Not created: its namespace is being deleted (by hand, or by GC). It is created
    /// once the namespace is gone, in a rebuilt one.
    NamespaceTerminating,
    /// A Job of that name whose image or arguments are not what erasure asks for (made
    /// by someone else, or for other targets) was deleted, or is still going: its
    /// outcome counts for nothing, and Herald's own is created once it is gone.
    Replaced,
}

/// Ensures the export Job runs; its outcome once finished.
pub(super) async fn run_export(
    tenant: &Tenant,
    home: &JobHome<'_>,
    ctx: &Context,
) -> Result<Option<String>, Error> {
    let url = tenant
        .spec
        .contract
        .on_termination
        .as_ref()
        .and_then(|o| o.export.as_ref())
        .map(|e| e.url.clone())
        .unwrap_or_default();
    // The destination is approved by the outbound guard before the Job exists; a
    // refused one is an outcome like a failed export (erasure goes ahead: a bad URL
    // never holds it), said in an event without the URL (it may be pre-signed).
    let approved = match crate::outbound::approve_destination(ctx.http.policy(), &url).await {
        Ok(a) => a,
        Err(refused) => {
            let message = destination::refusal_message("the export destination", refused);
            warn!(
                class = refused.class,
                "export destination refused; no export Job"
            );
            crate::controller::status::event(
                ctx,
                "tenant",
                tenant,
                kube::runtime::events::EventType::Warning,
                reason::DESTINATION_REFUSED,
                "Export",
                message,
            )
            .await;
            return Ok(Some(reason::DESTINATION_REFUSED.into()));
        }
    };
    let args = plan::export_args(&tenant.name_any(), &url);
    // A failed export is an outcome (erasure goes ahead without it); one waiting for
    // its namespace is not yet, until the export window ends.
    Ok(
        match run_job(ctx, tenant, home, "herald-export", args, Some(&approved)).await? {
            JobState::Succeeded => Some("Succeeded".into()),
            JobState::Failed => Some("Failed".into()),
            JobState::Running | JobState::NamespaceTerminating | JobState::Replaced => None,
        },
    )
}

/// Where `job` stands, from its conditions.
pub(super) fn job_state(job: &Job) -> JobState {
    let is_true = |type_: &str| {
        job.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == type_ && c.status == "True"))
    };
    if is_true("Complete") {
        JobState::Succeeded
    } else if is_true("Failed") {
        JobState::Failed
    } else {
        JobState::Running
    }
}

/// Deletes a Job and its pods (already gone is fine).
pub(super) async fn delete_job(ctx: &Context, ns: &str, name: &str) -> Result<(), Error> {
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), ns);
    match jobs.delete(name, &DeleteParams::background()).await {
        Ok(_) => {
            ctx.metrics.wrote("tenant", "Job");
            Ok(())
        }
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(Error::kube(format!("delete Job {name}"))(e)),
    }
}

/// Creates the Job if absent (in its namespace, rebuilt if missing); where it stands.
pub(super) async fn run_job(
    ctx: &Context,
    tenant: &Tenant,
    home: &JobHome<'_>,
    name: &str,
    args: Vec<String>,
    destination: Option<&Approved>,
) -> Result<JobState, Error> {
    let ns = home.namespace.name_any();
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    // The Job's namespace and ServiceAccount first: without them it cannot be created
    // or cannot start a pod. Both are there unless the stack was never built or was
    // deleted; a namespace being deleted takes no new Job until it is gone. The
    // operator reads and writes in it only through its binding there (made here when
    // the stack never was).
    let ns_api: Api<Namespace> = Api::all(ctx.client.clone());
    let terminating = match home.live_namespace {
        Some(n) if n.metadata.deletion_timestamp.is_some() => true,
        Some(_) => false,
        None => {
            info!(namespace = %ns, job = name, "rebuilding the tenant namespace for an erasure Job");
            super::super::super::apply_one(ctx, ns_api, home.namespace, true).await?;
            false
        }
    };
    if !terminating {
        super::super::super::access::bind(ctx, &home.service_account.metadata).await?;
    }
    match jobs.get_opt(name).await {
        // Only a Job Herald verified confirms anything: the one it would create.
        Ok(Some(job)) if job.metadata.deletion_timestamp.is_some() => {
            return Ok(JobState::Replaced);
        }
        Ok(Some(job)) if !plan::job_runs(&job, &home.data_plane.image, &args) => {
            warn!(
                job = name,
                "the Job's image or arguments are not erasure's; replacing it"
            );
            delete_job(ctx, &ns, name).await?;
            return Ok(JobState::Replaced);
        }
        Ok(Some(job)) => return Ok(job_state(&job)),
        Ok(None) => {}
        // Its binding may go before the Job when the namespace is being deleted.
        Err(kube::Error::Api(s)) if terminating && s.code == 403 => {}
        Err(e) => return Err(Error::kube(format!("get Job {name}"))(e)),
    }
    if terminating {
        return Ok(JobState::NamespaceTerminating);
    }
    super::super::super::apply_one(
        ctx,
        Api::namespaced(ctx.client.clone(), &ns),
        home.service_account,
        true,
    )
    .await?;
    let tenant_name = tenant.name_any();
    let owner = tenant.controller_owner_ref(&()).ok_or(Error::MissingName)?;
    let labels = BTreeMap::from([
        (TENANT_LABEL.to_owned(), tenant_name),
        (
            "app.kubernetes.io/managed-by".to_owned(),
            "herald".to_owned(),
        ),
    ]);
    let pod_labels = match destination {
        Some(_) => destination::pod_labels(&labels, "erasure", name),
        None => DataPlane::pod_labels(&labels, "erasure"),
    };
    let pod = home.data_plane.erasure_pod(&args);
    let job: Job = serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": ns, "labels": pod_labels, "ownerReferences": [owner]},
        "spec": {
            "backoffLimit": 6,
            "template": {"metadata": {"labels": pod_labels}, "spec": pod}
        }
    }))
    .map_err(|source| Error::Build { what: "job", source })?;
    let created = match jobs.create(&PostParams::default(), &job).await {
        Ok(created) => {
            ctx.metrics.wrote("tenant", "Job");
            Some(created)
        }
        Err(kube::Error::Api(s)) if s.code == 409 => jobs
            .get_opt(name)
            .await
            .map_err(Error::kube(format!("get Job {name}")))?,
        // The namespace started terminating between the look and the create.
        Err(kube::Error::Api(s))
            if s.code == 403
                && s.reason == "Forbidden"
                && s.message.contains("being terminated") =>
        {
            return Ok(JobState::NamespaceTerminating);
        }
        Err(e) => return Err(Error::kube(format!("create Job {name}"))(e)),
    };
    if let (Some(approved), Some(created)) = (destination, &created) {
        destination::apply_policy(ctx, "tenant", &ns, created, approved).await?;
    }
    Ok(JobState::Running)
}

/// The Job that purges the tenant's data at every provider and in the platform's stores.
pub(super) const ERASE_JOB: &str = "herald-erase";

#[cfg(test)]
mod tests {
    use super::*;

    fn job(conditions: &[(&str, &str)]) -> Job {
        let conditions: Vec<_> = conditions
            .iter()
            .map(|(t, s)| json!({"type": t, "status": s}))
            .collect();
        serde_json::from_value(
            json!({"metadata": {"name": "j"}, "status": {"conditions": conditions}}),
        )
        .unwrap()
    }

    #[test]
    fn a_job_stands_where_its_conditions_say() {
        assert_eq!(job_state(&job(&[])), JobState::Running);
        assert_eq!(
            job_state(&job(&[("Complete", "True")])),
            JobState::Succeeded
        );
        assert_eq!(job_state(&job(&[("Failed", "True")])), JobState::Failed);
        // A condition that is not True decides nothing.
        assert_eq!(
            job_state(&job(&[("Failed", "False"), ("Suspended", "True")])),
            JobState::Running
        );
        let no_status: Job = serde_json::from_value(json!({"metadata": {"name": "j"}})).unwrap();
        assert_eq!(job_state(&no_status), JobState::Running);
    }
}
