//! `herald.dev/v1alpha1`: the four kinds, one module each, and what they share.
//!
//! Spec is the user's and status is the operator's. No field has a CRD default: a GitOps
//! tool would see the defaulted value as drift. Optional fields are `Option`s whose doc
//! says the operator's default. Admission (schema + CEL) refuses what the object alone
//! shows to be wrong; what needs other objects becomes a condition (see [`conditions`]).

mod breach_notice;
mod channel_binding;
mod common;
pub mod conditions;
mod data_subject_request;
mod retention_policy;
mod subprocessor;
mod tenant;

#[cfg(test)]
mod tests;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use kube::CustomResourceExt;

pub use breach_notice::{
    AffectedTenants, BreachContact, BreachNotice, BreachNoticeSpec, BreachNoticeStatus,
    BreachTenantNotice,
};
pub use channel_binding::{
    Channel, ChannelBinding, ChannelBindingSpec, ChannelBindingStatus, CredentialSource,
    ProviderApi, Rotation, UnstoredCredential,
};
pub use common::{DNS_LABEL, Dpa, EEA_COUNTRIES, HTTPS_URL_RULE, ObjectRef, SecretKeyRef};
pub use data_subject_request::{
    DataSubjectRequest, DataSubjectRequestSpec, DataSubjectRequestStatus, Extension, Right,
};
pub use retention_policy::{RecordRetention, RetentionPolicy, RetentionPolicySpec};
pub use subprocessor::{
    Safeguard, Subprocessor, SubprocessorCategory, SubprocessorNotice, SubprocessorSpec,
    SubprocessorStatus,
};
pub use tenant::CategoryPurge;
pub use tenant::{
    Contract, ContractState, DeletedKind, ErasedAgainObject, ErasureStatus, ExportDestination,
    ExportStatus, NotErasedObject, Notifications, OnTermination, PurgeRecord, Residency, Senders,
    StepFailure, SubprocessorObjection, Tenant, TenantPhase, TenantSpec, TenantStatus,
    TerminationAction,
};

/// The CRDs of this version, in a stable order: the kinds others reference first.
pub fn crds() -> Vec<CustomResourceDefinition> {
    let mut crds = vec![
        Subprocessor::crd(),
        RetentionPolicy::crd(),
        Tenant::crd(),
        ChannelBinding::crd(),
        BreachNotice::crd(),
        DataSubjectRequest::crd(),
    ];
    for version in crds.iter_mut().flat_map(|c| c.spec.versions.iter_mut()) {
        if let Some(schema) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        {
            reflow_descriptions(schema);
        }
    }
    crds
}

/// Joins the source line breaks of doc comments into spaces (blank lines still separate
/// paragraphs). Doc comments are wrapped for the editor; `kubectl explain` wraps again
/// and would otherwise break every line twice.
fn reflow_descriptions(schema: &mut JSONSchemaProps) {
    if let Some(d) = schema.description.as_mut() {
        *d = reflow(d);
    }
    for child in schema.properties.iter_mut().flat_map(|p| p.values_mut()) {
        reflow_descriptions(child);
    }
    match schema.items.as_mut() {
        Some(JSONSchemaPropsOrArray::Schema(item)) => reflow_descriptions(item),
        Some(JSONSchemaPropsOrArray::Schemas(items)) => {
            items.iter_mut().for_each(reflow_descriptions)
        }
        None => {}
    }
    if let Some(JSONSchemaPropsOrBool::Schema(values)) = schema.additional_properties.as_mut() {
        reflow_descriptions(values);
    }
}

fn reflow(text: &str) -> String {
    text.split("\n\n")
        .map(|paragraph| {
            paragraph
                .lines()
                .map(str::trim_end)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n\n")
}
