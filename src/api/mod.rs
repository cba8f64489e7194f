//! Herald's API: the custom resource kinds of group `herald.dev`.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

pub mod v1alpha1;

/// The API group of every Herald kind.
pub const GROUP: &str = "herald.dev";

/// Every CRD Herald serves, in a stable order. `herald crds` writes these, and
/// `herald run` refuses to start until the cluster serves all of them.
pub fn crds() -> Vec<CustomResourceDefinition> {
    v1alpha1::crds()
}
