//! A shard's part in the client quotas (`quota::manager`): recording on the shard that owns
//! the quota's scope, here or by a message to it.

use std::rc::Rc;

use super::mesh::ShardRequest;
use super::placement::ShardId;
use super::shard::Shard;
use crate::quota::manager::{owner, QuotaRecord};
use crate::quota::mutation::{MutationCall, MutationVerdict};
use crate::quota::QuotaScope;

/// A recording sent to the shard that owns its scope, with where the answer goes.
pub enum QuotaCall {
    /// Bytes against a byte rate; answered with the throttle time.
    Record {
        record: QuotaRecord,
        reply: flume::Sender<u64>,
    },
    /// Partition mutations against `controller_mutation_rate`.
    Mutations {
        call: MutationCall,
        reply: flume::Sender<MutationVerdict>,
    },
}

impl Shard {
    /// Records `record` on the shard owning its scope; returns the throttle time.
    pub async fn record_quota(self: &Rc<Self>, record: QuotaRecord) -> u64 {
        let owner = self.quota_owner(&record.scope);
        if owner == self.id {
            return self.quota_ledger.borrow_mut().record(record);
        }
        let (reply, answer) = flume::bounded(1);
        let call = QuotaCall::Record { record, reply };
        self.mesh.send(owner, ShardRequest::Quota(call)).await;
        answer.recv_async().await.unwrap_or(0)
    }

    /// Charges or corrects partition mutations on the shard owning the call's scope. A shard
    /// that is gone answers as if no quota applied.
    pub async fn record_mutations(self: &Rc<Self>, call: MutationCall) -> MutationVerdict {
        let owner = self.quota_owner(call.scope());
        if owner == self.id {
            return self.quota_ledger.borrow_mut().mutations(call);
        }
        let (reply, answer) = flume::bounded(1);
        let call = QuotaCall::Mutations { call, reply };
        self.mesh.send(owner, ShardRequest::Quota(call)).await;
        answer.recv_async().await.unwrap_or_default()
    }

    /// Serves a recording another shard sent for a scope this one owns.
    pub(super) fn serve_quota(&self, call: QuotaCall) {
        let mut ledger = self.quota_ledger.borrow_mut();
        match call {
            QuotaCall::Record { record, reply } => {
                let _ = reply.send(ledger.record(record));
            }
            QuotaCall::Mutations { call, reply } => {
                let _ = reply.send(ledger.mutations(call));
            }
        }
    }

    fn quota_owner(&self, scope: &QuotaScope) -> ShardId {
        ShardId(owner(scope, self.mesh.shard_count()))
    }
}
