//! `writeReceipt` and `deliverReceipt`: the signed, immutable deletion receipt in the
//! control namespace, then its delivery to the customer's endpoint, retried until
//! acknowledged without holding up the Erased state.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use tracing::{info, warn};

use super::super::{Delivery, RECEIPT_FOR_LABEL, plan};
use super::{Next, Pass};
use crate::api::v1alpha1::{ErasureStatus, Tenant};
use crate::controller::{Context, Error};

/// The `writeReceipt` step. The kinds left unverified are those of the inventory and
/// of the sweep that just verified: not listed again.
pub(super) async fn write(pass: &Pass<'_>, es: &mut ErasureStatus) -> Result<Next, Error> {
    let receipt = plan::receipt(
        pass.tenant,
        pass.timing,
        es,
        pass.periods,
        pass.records,
        es.unverified_kinds.clone(),
    )?
    .ok_or(Error::MissingName)?;
    let (body, digest) = plan::seal(&receipt).map_err(|source| Error::Build {
        what: "deletion receipt",
        source,
    })?;
    // The digest of the receipt that stands: this one, or the one an earlier pass of
    // Herald's wrote before a crash (never one Herald did not write: a conflict).
    let (receipt_name, digest) = write_receipt(pass.ctx, pass.tenant, &body, &digest).await?;
    info!(receipt = %receipt_name, digest = %digest, "deletion receipt written");
    es.receipt = Some(receipt_name);
    es.receipt_digest = Some(digest);
    Ok(Next::wait(1, "receipt written".into()))
}

/// The `deliverReceipt` step: the receipt is written, the tenant is erased. Delivering
/// the certificate to the customer is retried until acknowledged.
pub(super) async fn deliver(pass: &Pass<'_>, es: &mut ErasureStatus) -> Result<Next, Error> {
    let (ctx, now) = (pass.ctx, pass.now);
    let delivery = match pass.tenant.spec.notifications.as_ref() {
        None => Delivery::NoEndpoint,
        Some(n) => {
            // Only the receipt Herald wrote and recorded is delivered.
            let (body, digest) = crate::controller::receipt::read_own(
                ctx,
                "tenant",
                es.receipt.as_deref().unwrap_or_default(),
                es.receipt_digest.as_deref(),
                "deletion receipt",
            )
            .await?;
            match crate::controller::subprocessor::signing_secret(
                ctx,
                &pass.name,
                &n.signing_secret_ref,
            )
            .await?
            {
                Err(why) => {
                    es.failing_steps = plan::step_failed(
                        std::mem::take(&mut es.failing_steps),
                        plan::step::RECEIPT_DELIVERY,
                        DELIVERY_TARGET,
                        "SigningSecretUnusable",
                        now,
                    );
                    Delivery::Pending(why)
                }
                Ok(secret) => {
                    match crate::notify::send_signed(
                        &ctx.http,
                        &n.webhook_url,
                        &secret,
                        &digest,
                        body.as_bytes(),
                        now,
                    )
                    .await
                    {
                        Ok(()) => {
                            es.receipt_delivered_at = Some(Time(now));
                            es.failing_steps = plan::step_succeeded(
                                std::mem::take(&mut es.failing_steps),
                                plan::step::RECEIPT_DELIVERY,
                                DELIVERY_TARGET,
                            );
                            Delivery::Delivered
                        }
                        Err(e) => {
                            warn!(error = %e, "deletion receipt not acknowledged; retrying");
                            es.failing_steps = plan::step_failed(
                                std::mem::take(&mut es.failing_steps),
                                plan::step::RECEIPT_DELIVERY,
                                DELIVERY_TARGET,
                                &e.category(),
                                now,
                            );
                            Delivery::Pending(format!(
                                "the customer's endpoint did not acknowledge it ({e})"
                            ))
                        }
                    }
                }
            }
        }
    };
    Ok(done(es, delivery))
}

/// The `done` step (and the end of `deliverReceipt`): erased, with where the delivery
/// stands. A failing step after the receipt (a revocation, the delivery) is still
/// reported: look again soon, until none is.
pub(super) fn done(es: &ErasureStatus, delivery: Delivery) -> Next {
    let held = super::super::held::summary(&es.not_erased);
    let requeue = if matches!(delivery, Delivery::Pending(_)) || !es.failing_steps.is_empty() {
        30
    } else if held.is_some() {
        // Looked up again until a person has deleted them.
        300
    } else {
        3600
    };
    let by_design = es
        .not_erased
        .iter()
        .filter(|o| !super::super::held::is_held(o))
        .count();
    let mut note = String::from("erased, verified, receipt written");
    if by_design > 0 {
        note.push_str(&format!(
            "; {by_design} objects labelled for the tenant were found and not erased (not Herald's, or outside the erasure scope): see status.erasure.notErased, a person decides"
        ));
    }
    if let Some(held) = held {
        note.push_str(&format!("; {held}"));
    }
    Next::Erased {
        requeue: std::time::Duration::from_secs(requeue),
        note,
        delivery,
    }
}

/// Writes the receipt as an immutable, signed ConfigMap (create-if-absent: a restart that
/// finds Herald's own receipt already written keeps the first); its name and the digest
/// of the receipt that stands.
async fn write_receipt(
    ctx: &Context,
    tenant: &Tenant,
    body: &str,
    digest: &str,
) -> Result<(String, String), Error> {
    let name = plan::receipt_name(tenant);
    let labels = serde_json::json!({RECEIPT_FOR_LABEL: tenant.name_any(), "app.kubernetes.io/managed-by": "herald",
                                    "app.kubernetes.io/component": "deletion-receipt"});
    let digest = crate::controller::receipt::create_signed(
        ctx,
        "tenant",
        &name,
        labels,
        body,
        digest,
        "deletion receipt",
    )
    .await?;
    Ok((name, digest))
}

/// The `target` of the receipt's delivery in failingSteps.
const DELIVERY_TARGET: &str = "customer";
