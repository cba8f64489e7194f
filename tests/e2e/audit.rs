//! Reads the local cluster's audit log (one JSON object per request, written by the
//! apiserver at Metadata level; see e2e/cluster/audit-policy.yaml), to count what a
//! given user asked of the API server. The operator under test runs as its own user
//! (`herald-operator`), so its requests can be told from the tests' own.

use serde::Deserialize;

/// The operator's user name: the e2e operator authenticates as the Helm chart's
/// ServiceAccount (tests/e2e/identity.rs), with a token from `kubectl create token`.
pub const OPERATOR_USER: &str = "system:serviceaccount:herald-system:herald";

/// The verbs that change something.
pub const MUTATING: &[&str] = &["create", "update", "patch", "delete", "deletecollection"];

/// One request, as much of it as the tests need.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    pub verb: String,
    pub user: User,
    #[serde(default)]
    pub object_ref: Option<ObjectRef>,
    pub stage: String,
    /// The client's User-Agent: Herald's names the replica (`herald/<v> (<identity>)`).
    #[serde(default)]
    pub user_agent: String,
    /// When the API server received the request (RFC 3339, microseconds).
    #[serde(default)]
    pub request_received_timestamp: String,
    /// When the API server completed the request (RFC 3339, microseconds).
    #[serde(default)]
    #[allow(dead_code)] // read by the chaos suite (tests/chaos) only
    pub stage_timestamp: String,
    #[serde(default)]
    pub response_status: Option<ResponseStatus>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct ResponseStatus {
    #[serde(default)]
    pub code: u16,
}

#[derive(Clone, Debug, Deserialize)]
pub struct User {
    pub username: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    #[serde(default)]
    pub resource: String,
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub subresource: String,
}

impl Entry {
    /// Whether the request changes something.
    pub fn is_mutating(&self) -> bool {
        MUTATING.contains(&self.verb.as_str())
    }

    /// The HTTP status the API server answered (0 if not logged).
    pub fn code(&self) -> u16 {
        self.response_status.as_ref().map_or(0, |r| r.code)
    }

    /// When the request was received.
    pub fn received(&self) -> k8s_openapi::jiff::Timestamp {
        self.request_received_timestamp.parse().unwrap_or_else(|e| {
            panic!("audit timestamp {:?}: {e}", self.request_received_timestamp)
        })
    }

    /// When the request was completed (its answer sent).
    #[allow(dead_code)] // used by the chaos suite (tests/chaos) only
    pub fn completed(&self) -> k8s_openapi::jiff::Timestamp {
        self.stage_timestamp
            .parse()
            .unwrap_or_else(|e| panic!("audit timestamp {:?}: {e}", self.stage_timestamp))
    }

    /// The object reference, or an empty one.
    pub fn object(&self) -> ObjectRef {
        self.object_ref.clone().unwrap_or_default()
    }
}

fn path() -> String {
    std::env::var("HERALD_AUDIT_LOG").unwrap_or_else(|_| {
        panic!("HERALD_AUDIT_LOG is not set: run the e2e tests with `make e2e` (the local cluster has an audit log)")
    })
}

/// The log's current length: a mark to read from later.
pub fn mark() -> u64 {
    std::fs::metadata(path()).map(|m| m.len()).unwrap_or(0)
}

/// Completed requests logged since `mark` (ResponseComplete stage only, one per request).
pub fn since(mark: u64) -> Vec<Entry> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path()).unwrap_or_else(|e| panic!("open audit log: {e}"));
    file.seek(SeekFrom::Start(mark)).unwrap();
    let mut text = String::new();
    file.read_to_string(&mut text).unwrap();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Entry>(l).ok())
        .filter(|e| e.stage == "ResponseComplete")
        .collect()
}
