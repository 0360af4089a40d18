//! AlterClientQuotas at the active controller: each entity's changes, checked as Kafka's
//! `ClientQuotaControlManager` checks them, become `client_quota` records.

use super::metadata_log::MetadataRecord;
use super::{Controller, QuotaAlteration, TopicError};

impl Controller {
    /// The records of one entity's changes; any invalid change refuses them all.
    pub(super) fn quota_records(
        &self,
        alteration: &QuotaAlteration,
    ) -> Result<Vec<MetadataRecord>, TopicError> {
        let mut records = Vec::with_capacity(alteration.ops.len());
        for (key, value) in &alteration.ops {
            if let Some(value) = value {
                alteration
                    .entity
                    .validate(key, *value)
                    .map_err(|error| TopicError::InvalidRequest(error.to_string()))?;
            }
            if records.iter().any(|record| {
                matches!(record, MetadataRecord::ClientQuota { key: known, .. } if known == key)
            }) {
                return Err(TopicError::InvalidRequest(format!(
                    "Duplicate quota key {key} for entity {:?}",
                    alteration.entity
                )));
            }
            records.push(MetadataRecord::ClientQuota {
                entity: alteration.entity.clone(),
                key: key.clone(),
                value: *value,
            });
        }
        Ok(records)
    }

    /// `record_each` for checks that make several records per item.
    pub(super) async fn record_all<T>(
        &mut self,
        items: &[T],
        validate_only: bool,
        check: impl Fn(&Controller, &T) -> Result<Vec<MetadataRecord>, TopicError>,
    ) -> Vec<Result<(), TopicError>> {
        let mut records = Vec::new();
        let outcomes: Vec<Result<(), TopicError>> = items
            .iter()
            .map(|item| {
                records.extend(check(self, item)?);
                Ok(())
            })
            .collect();
        if !validate_only {
            if let Err(error) = self.commit(&records).await {
                return outcomes.into_iter().map(|_| Err(error.clone())).collect();
            }
        }
        outcomes
    }
}
