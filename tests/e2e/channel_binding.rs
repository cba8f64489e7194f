//! ChannelBinding end to end: credentials delivered as immutable versioned Secrets,
//! rotated without downtime, revoked at the provider only after the rollout.

use crate::common::operator;

#[tokio::test]
async fn the_shared_operator_serves_metrics() {
    let op = operator().await;
    assert!(op.metrics().await.contains("herald_build_info"));
}
