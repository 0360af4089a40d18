//! CreateAcls and DeleteAcls at the active controller: each becomes records in the metadata
//! log (`CreateAcl`, `RemoveAcl`), committed together, so every broker's image gets the
//! whole change at once.

use std::collections::BTreeSet;

use super::metadata_log::MetadataRecord;
use super::rpc::Reply;
use super::{Controller, TopicError};
use crate::security::acl::{AclBinding, AclFilter};

impl Controller {
    /// Records each valid binding the image lacks; one that exists already succeeds without a
    /// record, as in Kafka.
    pub(super) async fn create_acls(
        &mut self,
        bindings: Vec<AclBinding>,
    ) -> Vec<Result<(), TopicError>> {
        let mut records = Vec::new();
        let mut added = BTreeSet::new();
        let outcomes: Vec<Result<(), TopicError>> = bindings
            .into_iter()
            .map(|binding| {
                binding
                    .validate()
                    .map_err(|error| TopicError::InvalidRequest(error.to_string()))?;
                if !self.image.acls.contains(&binding) && added.insert(binding.clone()) {
                    records.push(MetadataRecord::CreateAcl(binding));
                }
                Ok(())
            })
            .collect();
        match self.commit(&records).await {
            Ok(()) => outcomes,
            Err(error) => outcomes.into_iter().map(|_| Err(error.clone())).collect(),
        }
    }

    /// Deletes what each filter matches; a binding two filters match is reported under the
    /// first.
    pub(super) async fn delete_acls(&mut self, filters: Vec<AclFilter>) -> Reply {
        let mut records = Vec::new();
        let mut deleted = BTreeSet::new();
        let outcomes: Vec<Result<Vec<AclBinding>, TopicError>> = filters
            .iter()
            .map(|filter| {
                filter
                    .validate()
                    .map_err(|error| TopicError::InvalidRequest(error.to_string()))?;
                let matched: Vec<AclBinding> = self
                    .image
                    .acls
                    .matching(filter)
                    .filter(|binding| deleted.insert(binding.clone()))
                    .collect();
                records.extend(matched.iter().cloned().map(MetadataRecord::RemoveAcl));
                Ok(matched)
            })
            .collect();
        match self.commit(&records).await {
            Ok(()) => Reply::AclsDeleted(outcomes),
            Err(error) => Reply::Refused(error),
        }
    }
}
