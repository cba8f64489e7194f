//! Retention periods as the stack applies them: a RetentionPolicy's values, or the
//! platform's defaults (the maxima the privacy policies promise) where it sets none.

use serde::Serialize;

use crate::api::v1alpha1::RetentionPolicySpec;

/// Days each category of a tenant's data is kept; what the sender configuration and
/// the purge jobs receive.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Periods {
    /// Message bodies and attachments.
    pub message_content_days: i32,
    /// Timestamps, channel, status, error codes.
    pub delivery_metadata_days: i32,
    /// SMS and voice traffic data (numbers, routing, call detail records).
    pub sms_voice_traffic_days: i32,
    /// Encrypted backups.
    pub backups_days: i32,
    /// System and access logs.
    pub logs_days: i32,
    /// Customer account data after the contract ends.
    pub account_data_days_after_contract_end: i32,
    /// End-user data after termination: the erasure deadline.
    pub delete_within_days: i32,
}

impl Default for Periods {
    /// The platform's defaults (Conversation24's table; MessageBird's six months for
    /// SMS and voice traffic data), used where no policy says otherwise.
    fn default() -> Self {
        Self {
            message_content_days: 90,
            delivery_metadata_days: 180,
            sms_voice_traffic_days: 183,
            backups_days: 7,
            logs_days: 90,
            account_data_days_after_contract_end: 30,
            delete_within_days: 30,
        }
    }
}

impl Periods {
    /// The periods of `policy`, each unset one taking the default.
    pub fn resolve(policy: Option<&RetentionPolicySpec>) -> Self {
        let d = Self::default();
        let Some(p) = policy else { return d };
        Self {
            message_content_days: p.message_content_days.unwrap_or(d.message_content_days),
            delivery_metadata_days: p.delivery_metadata_days.unwrap_or(d.delivery_metadata_days),
            sms_voice_traffic_days: p.sms_voice_traffic_days.unwrap_or(d.sms_voice_traffic_days),
            backups_days: p.backups_days.unwrap_or(d.backups_days),
            logs_days: p.logs_days.unwrap_or(d.logs_days),
            account_data_days_after_contract_end: p
                .account_data_days_after_contract_end
                .unwrap_or(d.account_data_days_after_contract_end),
            delete_within_days: p.delete_within_days,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_policy_gives_the_platform_defaults() {
        assert_eq!(Periods::resolve(None), Periods::default());
    }

    #[test]
    fn a_policy_overrides_what_it_sets() {
        let spec: RetentionPolicySpec =
            serde_json::from_value(serde_json::json!({"deleteWithinDays": 14, "backupsDays": 3}))
                .unwrap();
        let p = Periods::resolve(Some(&spec));
        assert_eq!(p.delete_within_days, 14);
        assert_eq!(p.backups_days, 3);
        assert_eq!(p.logs_days, 90);
    }
}
