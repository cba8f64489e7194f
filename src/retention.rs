//! Retention periods as the stack applies them: a RetentionPolicy's values, or the
//! platform's periods (the maxima the privacy policies promise, from the operator
//! configuration) where it sets none. A customer may shorten the platform's periods,
//! never lengthen them: [`bound`] keeps the platform's value and says why.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::api::v1alpha1::RetentionPolicySpec;

/// Days each category of a tenant's data is kept; what the sender configuration and
/// the purge jobs receive. In the operator configuration (`retention:`), the platform's
/// periods: the default and the maximum of every category.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
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
    /// The periods of `policy`, each unset one taking the platform's (`platform`). Not
    /// yet bounded: see [`bound`].
    pub fn resolve(policy: Option<&RetentionPolicySpec>, platform: &Periods) -> Self {
        let d = platform.clone();
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

    /// Every category as (its API name, its days, a mutable handle), in a fixed order.
    fn categories_mut(&mut self) -> [(Category, &mut i32); 7] {
        [
            (Category::MessageContent, &mut self.message_content_days),
            (Category::DeliveryMetadata, &mut self.delivery_metadata_days),
            (Category::SmsVoiceTraffic, &mut self.sms_voice_traffic_days),
            (Category::Backups, &mut self.backups_days),
            (Category::Logs, &mut self.logs_days),
            (
                Category::AccountDataAfterContractEnd,
                &mut self.account_data_days_after_contract_end,
            ),
            (Category::DeleteWithin, &mut self.delete_within_days),
        ]
    }

    /// The days of `category`.
    pub fn days(&self, category: Category) -> i32 {
        match category {
            Category::MessageContent => self.message_content_days,
            Category::DeliveryMetadata => self.delivery_metadata_days,
            Category::SmsVoiceTraffic => self.sms_voice_traffic_days,
            Category::Backups => self.backups_days,
            Category::Logs => self.logs_days,
            Category::AccountDataAfterContractEnd => self.account_data_days_after_contract_end,
            Category::DeleteWithin => self.delete_within_days,
        }
    }

    /// Why these periods cannot be the platform's: a period below one day, or above what
    /// the law or the platform's promises allow (backups 7 days, logs 90, account data
    /// the contract plus 30, erasure within 30 days of termination).
    pub fn check_platform(&self) -> Result<(), String> {
        let legal = [
            (Category::Backups, 7),
            (Category::Logs, 90),
            (Category::AccountDataAfterContractEnd, 30),
            (Category::DeleteWithin, 30),
        ];
        for c in Category::ALL {
            let days = self.days(c);
            if days < 1 {
                return Err(format!(
                    "retention.{} must be at least 1, not {days}",
                    c.field()
                ));
            }
            if let Some((_, max)) = legal.iter().find(|(l, _)| *l == c)
                && days > *max
            {
                return Err(format!(
                    "retention.{} may be at most {max} (the platform's promise), not {days}",
                    c.field()
                ));
            }
        }
        Ok(())
    }
}

/// A category of retained data, as the API names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Category {
    /// Message bodies and attachments.
    MessageContent,
    /// Timestamps, channel, status, error codes.
    DeliveryMetadata,
    /// SMS and voice traffic data.
    SmsVoiceTraffic,
    /// Encrypted backups.
    Backups,
    /// System and access logs.
    Logs,
    /// Customer account data after the contract ends.
    AccountDataAfterContractEnd,
    /// End-user data after termination (the erasure deadline).
    DeleteWithin,
}

impl Category {
    /// Every category, in the order of the RetentionPolicy's fields.
    pub const ALL: [Category; 7] = [
        Category::MessageContent,
        Category::DeliveryMetadata,
        Category::SmsVoiceTraffic,
        Category::Backups,
        Category::Logs,
        Category::AccountDataAfterContractEnd,
        Category::DeleteWithin,
    ];

    /// The categories the stack purges by age while the contract is active, each by a
    /// daily purge CronJob. (Account data and the erasure deadline count from the end of
    /// the contract: the termination pipeline handles them.)
    pub const PURGED: [Category; 5] = [
        Category::MessageContent,
        Category::DeliveryMetadata,
        Category::SmsVoiceTraffic,
        Category::Backups,
        Category::Logs,
    ];

    /// The API name: the RetentionPolicy field without `Days` (`messageContent`), the
    /// value of the purge command's `--category` and of `status.purges[].category`.
    pub fn key(self) -> &'static str {
        match self {
            Category::MessageContent => "messageContent",
            Category::DeliveryMetadata => "deliveryMetadata",
            Category::SmsVoiceTraffic => "smsVoiceTraffic",
            Category::Backups => "backups",
            Category::Logs => "logs",
            Category::AccountDataAfterContractEnd => "accountDataAfterContractEnd",
            Category::DeleteWithin => "deleteWithin",
        }
    }

    /// The RetentionPolicy field that sets it.
    pub fn field(self) -> &'static str {
        match self {
            Category::AccountDataAfterContractEnd => "accountDataDaysAfterContractEnd",
            Category::DeleteWithin => "deleteWithinDays",
            Category::MessageContent => "messageContentDays",
            Category::DeliveryMetadata => "deliveryMetadataDays",
            Category::SmsVoiceTraffic => "smsVoiceTrafficDays",
            Category::Backups => "backupsDays",
            Category::Logs => "logsDays",
        }
    }

    /// The kebab-case spelling, for object names (`herald-purge-message-content`).
    pub fn kebab(self) -> &'static str {
        match self {
            Category::MessageContent => "message-content",
            Category::DeliveryMetadata => "delivery-metadata",
            Category::SmsVoiceTraffic => "sms-voice-traffic",
            Category::Backups => "backups",
            Category::Logs => "logs",
            Category::AccountDataAfterContractEnd => "account-data-after-contract-end",
            Category::DeleteWithin => "delete-within",
        }
    }
}

/// A period a RetentionPolicy asked for that is longer than the platform's: refused,
/// the platform's value applies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Longer {
    /// The category.
    pub category: Category,
    /// What the policy asked for.
    pub requested: i32,
    /// The platform's period, which applies instead.
    pub platform: i32,
}

impl fmt::Display for Longer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} is longer than the platform's {} days: {} days apply",
            self.category.field(),
            self.requested,
            self.platform,
            self.platform
        )
    }
}

/// Bounds `periods` by the platform's: a customer may shorten a period, never lengthen
/// it. Every longer period is replaced by the platform's and reported.
pub fn bound(mut periods: Periods, platform: &Periods) -> (Periods, Vec<Longer>) {
    let mut longer = Vec::new();
    for (category, days) in periods.categories_mut() {
        let max = platform.days(category);
        if *days > max {
            longer.push(Longer {
                category,
                requested: *days,
                platform: max,
            });
            *days = max;
        }
    }
    (periods, longer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(v: serde_json::Value) -> RetentionPolicySpec {
        serde_json::from_value(v).unwrap()
    }

    proptest::proptest! {
        /// Any day counts (admission bounds them; this is the net behind it): resolving
        /// and bounding never panic, and a bounded period is never longer than the
        /// platform's.
        #[test]
        fn any_periods_resolve_and_bound_without_panic(
            days in proptest::collection::vec(proptest::prelude::any::<i32>(), 7),
        ) {
            let s = spec(serde_json::json!({
                "deleteWithinDays": days[0],
                "messageContentDays": days[1],
                "deliveryMetadataDays": days[2],
                "smsVoiceTrafficDays": days[3],
                "backupsDays": days[4],
                "logsDays": days[5],
                "accountDataDaysAfterContractEnd": days[6],
            }));
            let platform = Periods::default();
            let (bounded, _) = bound(Periods::resolve(Some(&s), &platform), &platform);
            for c in Category::ALL {
                proptest::prop_assert!(bounded.days(c) <= platform.days(c));
            }
        }
    }

    #[test]
    fn no_policy_gives_the_platform_periods() {
        assert_eq!(
            Periods::resolve(None, &Periods::default()),
            Periods::default()
        );
        let short = Periods {
            logs_days: 30,
            ..Periods::default()
        };
        assert_eq!(Periods::resolve(None, &short), short);
    }

    #[test]
    fn a_policy_overrides_what_it_sets() {
        let spec = spec(serde_json::json!({"deleteWithinDays": 14, "backupsDays": 3}));
        let p = Periods::resolve(Some(&spec), &Periods::default());
        assert_eq!(p.delete_within_days, 14);
        assert_eq!(p.backups_days, 3);
        assert_eq!(p.logs_days, 90);
    }

    #[test]
    fn shorter_periods_are_kept() {
        let p = Periods::resolve(
            Some(&spec(
                serde_json::json!({"deleteWithinDays": 7, "messageContentDays": 30}),
            )),
            &Periods::default(),
        );
        let (bounded, longer) = bound(p.clone(), &Periods::default());
        assert_eq!(bounded, p);
        assert!(longer.is_empty());
    }

    #[test]
    fn a_longer_period_is_refused_and_the_platforms_applies() {
        let p = Periods::resolve(
            Some(&spec(serde_json::json!({
                "deleteWithinDays": 30, "messageContentDays": 365, "smsVoiceTrafficDays": 400,
                "logsDays": 30
            }))),
            &Periods::default(),
        );
        let (bounded, longer) = bound(p, &Periods::default());
        assert_eq!(bounded.message_content_days, 90);
        assert_eq!(bounded.sms_voice_traffic_days, 183);
        assert_eq!(bounded.logs_days, 30, "a shorter one stays");
        assert_eq!(
            longer,
            vec![
                Longer {
                    category: Category::MessageContent,
                    requested: 365,
                    platform: 90
                },
                Longer {
                    category: Category::SmsVoiceTraffic,
                    requested: 400,
                    platform: 183
                },
            ]
        );
        assert_eq!(
            longer[0].to_string(),
            "messageContentDays 365 is longer than the platform's 90 days: 90 days apply"
        );
    }

    #[test]
    fn a_lowered_platform_period_bounds_even_an_unset_one_without_a_refusal() {
        let platform = Periods {
            delivery_metadata_days: 60,
            ..Periods::default()
        };
        let p = Periods::resolve(
            Some(&spec(serde_json::json!({"deleteWithinDays": 30}))),
            &platform,
        );
        let (bounded, longer) = bound(p, &platform);
        assert_eq!(bounded.delivery_metadata_days, 60);
        assert!(longer.is_empty(), "the policy did not ask for more");
    }

    #[test]
    fn the_platform_periods_are_checked_against_the_promises() {
        assert_eq!(Periods::default().check_platform(), Ok(()));
        let p = Periods {
            backups_days: 8,
            ..Periods::default()
        };
        assert!(p.check_platform().unwrap_err().contains("backupsDays"));
        let p = Periods {
            logs_days: 0,
            ..Periods::default()
        };
        assert!(p.check_platform().is_err());
    }

    #[test]
    fn category_names_are_the_api_spellings() {
        for c in Category::ALL {
            assert_eq!(
                c.field(),
                format!("{}Days", c.key()).replace(
                    "accountDataAfterContractEndDays",
                    "accountDataDaysAfterContractEnd"
                )
            );
        }
        assert_eq!(
            Category::PURGED.map(Category::kebab)[2],
            "sms-voice-traffic"
        );
    }
}
