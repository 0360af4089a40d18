//! A shard's part in the byte-rate quotas (`quota::manager`): recording on the shard that owns
//! the quota's scope, here or by a message to it.

use std::rc::Rc;

use super::mesh::ShardRequest;
use super::placement::ShardId;
use super::shard::Shard;
use crate::quota::manager::{owner, QuotaRecord};

impl Shard {
    /// Records `record` on the shard owning its scope; returns the throttle time.
    pub async fn record_quota(self: &Rc<Self>, record: QuotaRecord) -> u64 {
        let owner = ShardId(owner(&record.scope, self.mesh.shard_count()));
        if owner == self.id {
            return self.quota_ledger.borrow_mut().record(record);
        }
        let (reply, answer) = flume::bounded(1);
        self.mesh
            .send(owner, ShardRequest::RecordQuota { record, reply })
            .await;
        answer.recv_async().await.unwrap_or(0)
    }
}
