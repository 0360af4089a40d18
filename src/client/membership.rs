//! The classic group membership requests of one member: JoinGroup (including the v4+ handshake
//! where the first join with an empty member id is answered MEMBER_ID_REQUIRED with the id to
//! rejoin with), SyncGroup, Heartbeat and LeaveGroup. Each goes through the group's coordinator
//! with its retry rule; what to do after a rejoin error is the caller's decision.

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ApiKey, HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, SyncGroupRequest,
};
use kafka_protocol::protocol::StrBytes;

use super::cluster::Client;
use super::error::{ClientError, KafkaError};
use super::group::{group_id, GroupCoordinator};

/// Kafka's protocol type of consumer groups.
pub const PROTOCOL_TYPE_CONSUMER: &str = "consumer";
/// MEMBER_ID_REQUIRED: rejoin with the member id carried in the response.
const MEMBER_ID_REQUIRED: i16 = 79;
/// How much longer than the rebalance timeout a JoinGroup may take to answer, as Kafka's
/// consumer allows.
const JOIN_TIMEOUT_MARGIN: Duration = Duration::from_secs(5);

/// What a member announces when it joins.
#[derive(Debug, Clone)]
pub struct JoinSettings {
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    /// (protocol name, metadata) in order of preference.
    pub protocols: Vec<(String, Bytes)>,
}

/// A successful JoinGroup.
#[derive(Debug, Clone)]
pub struct JoinOutcome {
    pub generation_id: i32,
    pub member_id: String,
    pub leader_id: String,
    pub protocol_name: String,
    /// Every member and its metadata; only the leader receives these.
    pub members: Vec<(String, Bytes)>,
}

impl JoinOutcome {
    pub fn is_leader(&self) -> bool {
        self.member_id == self.leader_id
    }
}

/// Joins the group, starting with `member_id` ("" for a new member). MEMBER_ID_REQUIRED is
/// answered by rejoining at once with the assigned id.
pub fn join_group(
    coordinator: &mut GroupCoordinator,
    client: &mut Client,
    settings: &JoinSettings,
    member_id: &str,
) -> Result<JoinOutcome, ClientError> {
    let mut member_id = member_id.to_string();
    let read_timeout =
        Duration::from_millis(settings.rebalance_timeout_ms.max(0) as u64) + JOIN_TIMEOUT_MARGIN;
    // One round to learn the member id, one to join with it.
    for _ in 0..2 {
        let request = join_request(coordinator.group_id(), settings, &member_id);
        let response = coordinator.call(client, |client, node| {
            client.send_built_to(node, ApiKey::JoinGroup, Some(read_timeout), |_| {
                request.clone()
            })
        })?;
        if response.error_code == MEMBER_ID_REQUIRED {
            member_id = response.member_id.to_string();
            continue;
        }
        if let Some(error) = KafkaError::from_code(response.error_code) {
            return Err(error.into());
        }
        let members = response
            .members
            .into_iter()
            .map(|member| (member.member_id.to_string(), member.metadata))
            .collect();
        return Ok(JoinOutcome {
            generation_id: response.generation_id,
            member_id: response.member_id.to_string(),
            leader_id: response.leader.to_string(),
            protocol_name: response
                .protocol_name
                .map(|name| name.to_string())
                .unwrap_or_default(),
            members,
        });
    }
    Err(KafkaError::new(MEMBER_ID_REQUIRED).into())
}

fn join_request(group: &str, settings: &JoinSettings, member_id: &str) -> JoinGroupRequest {
    let protocols = settings
        .protocols
        .iter()
        .map(|(name, metadata)| {
            JoinGroupRequestProtocol::default()
                .with_name(StrBytes::from_string(name.clone()))
                .with_metadata(metadata.clone())
        })
        .collect();
    JoinGroupRequest::default()
        .with_group_id(group_id(group))
        .with_session_timeout_ms(settings.session_timeout_ms)
        .with_rebalance_timeout_ms(settings.rebalance_timeout_ms)
        .with_member_id(StrBytes::from_string(member_id.to_string()))
        .with_protocol_type(StrBytes::from_string(settings.protocol_type.clone()))
        .with_protocols(protocols)
}

/// Sends this member's SyncGroup (the leader with every member's assignment, the others with
/// none) and returns the member's own assignment bytes.
pub fn sync_group(
    coordinator: &mut GroupCoordinator,
    client: &mut Client,
    joined: &JoinOutcome,
    protocol_type: &str,
    assignments: Vec<(String, Bytes)>,
) -> Result<Bytes, ClientError> {
    let assignments: Vec<SyncGroupRequestAssignment> = assignments
        .into_iter()
        .map(|(member_id, assignment)| {
            SyncGroupRequestAssignment::default()
                .with_member_id(StrBytes::from_string(member_id))
                .with_assignment(assignment)
        })
        .collect();
    let group = coordinator.group_id().to_string();
    let response = coordinator.call(client, |client, node| {
        client.send_built_to(node, ApiKey::SyncGroup, None, |version| {
            let request = SyncGroupRequest::default()
                .with_group_id(group_id(&group))
                .with_generation_id(joined.generation_id)
                .with_member_id(StrBytes::from_string(joined.member_id.clone()))
                .with_assignments(assignments.clone());
            match version >= 5 {
                true => request
                    .with_protocol_type(Some(StrBytes::from_string(protocol_type.to_string())))
                    .with_protocol_name(Some(StrBytes::from_string(joined.protocol_name.clone()))),
                false => request,
            }
        })
    })?;
    match KafkaError::from_code(response.error_code) {
        Some(error) => Err(error.into()),
        None => Ok(response.assignment),
    }
}

/// Tells the coordinator this member is alive; rejoin errors come back as `Err`.
pub fn heartbeat(
    coordinator: &mut GroupCoordinator,
    client: &mut Client,
    generation_id: i32,
    member_id: &str,
) -> Result<(), ClientError> {
    let request = HeartbeatRequest::default()
        .with_group_id(group_id(coordinator.group_id()))
        .with_generation_id(generation_id)
        .with_member_id(StrBytes::from_string(member_id.to_string()));
    let response = coordinator.call(client, |client, node| {
        client.send_to(node, ApiKey::Heartbeat, &request)
    })?;
    match KafkaError::from_code(response.error_code) {
        Some(error) => Err(error.into()),
        None => Ok(()),
    }
}

/// Leaves the group so that it rebalances at once instead of after the session timeout.
pub fn leave_group(
    coordinator: &mut GroupCoordinator,
    client: &mut Client,
    member_id: &str,
) -> Result<(), ClientError> {
    let group = coordinator.group_id().to_string();
    let response = coordinator.call(client, |client, node| {
        client.send_built_to(node, ApiKey::LeaveGroup, None, |version| {
            let request = LeaveGroupRequest::default().with_group_id(group_id(&group));
            match version >= 3 {
                true => request.with_members(vec![MemberIdentity::default()
                    .with_member_id(StrBytes::from_string(member_id.to_string()))]),
                false => request.with_member_id(StrBytes::from_string(member_id.to_string())),
            }
        })
    })?;
    let member_error = response
        .members
        .iter()
        .find_map(|member| KafkaError::from_code(member.error_code));
    match KafkaError::from_code(response.error_code).or(member_error) {
        Some(error) => Err(error.into()),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::protocol::Encodable;

    #[test]
    fn join_requests_encode_at_every_client_version() {
        // The JoinGroup this client builds encodes at every version up to its cap of 7.
        let settings = JoinSettings {
            session_timeout_ms: 45_000,
            rebalance_timeout_ms: 300_000,
            protocol_type: PROTOCOL_TYPE_CONSUMER.to_string(),
            protocols: vec![("range".to_string(), Bytes::from_static(b"\0\0"))],
        };
        for version in 1..=7 {
            let mut buffer = bytes::BytesMut::new();
            join_request("g", &settings, "m")
                .encode(&mut buffer, version)
                .expect("encodes");
        }
    }
}
