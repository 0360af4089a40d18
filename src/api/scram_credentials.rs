//! DescribeUserScramCredentials and AlterUserScramCredentials: SCRAM credentials kept in the
//! metadata log as each user's `SCRAM-SHA-256` / `SCRAM-SHA-512` entry (salt, stored key, server
//! key, iterations; never the password), through the controller like configs
//! (`ConfigResource::User`). The client sends the salted password; the broker derives what is
//! stored. Errors as Kafka answers them: UNSUPPORTED_SASL_MECHANISM, UNACCEPTABLE_CREDENTIAL
//! (iterations outside 4096–16384, an empty user name), DUPLICATE_RESOURCE (a user named twice
//! for one mechanism), RESOURCE_NOT_FOUND (deleting or describing what does not exist).

use crate::security::acl::Operation;
use std::collections::BTreeMap;

use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::{ask_controller, str_bytes, topic_error_code, RequestContext};
use crate::controller::{ConfigAlteration, ConfigOp, ConfigResource, ControllerRequest};
use crate::metadata::MetadataImage;
use crate::security::scram::{self, ScramMechanism, ITERATIONS_MAX, ITERATIONS_MIN};

/// A user's credentials for each mechanism, from the image.
fn credentials_of(
    image: &MetadataImage,
    user: &str,
) -> Vec<(ScramMechanism, scram::ScramCredential)> {
    image
        .user_configs
        .get(user)
        .into_iter()
        .flatten()
        .filter_map(|(key, value)| {
            let mechanism = ScramMechanism::parse(key)?;
            Some((mechanism, scram::ScramCredential::from_config(value)?))
        })
        .collect()
}

/// The stored credential of `user` for `mechanism`, if any (for the SASL exchange).
pub fn lookup(
    image: &MetadataImage,
    user: &str,
    mechanism: ScramMechanism,
) -> Option<scram::ScramCredential> {
    credentials_of(image, user)
        .into_iter()
        .find(|(held, _)| *held == mechanism)
        .map(|(_, credential)| credential)
}

pub fn describe(
    context: &RequestContext<'_>,
    request: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    // Kafka's check: DESCRIBE on the cluster.
    if !context.cluster_authorized(Operation::Describe) {
        return DescribeUserScramCredentialsResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
            .with_error_message(Some(str_bytes("Cluster authorization failed.")));
    }
    let image = context.shard.metadata();
    let (users, explicit): (Vec<String>, bool) = match &request.users {
        Some(users) if !users.is_empty() => (
            users.iter().map(|user| user.name.to_string()).collect(),
            true,
        ),
        _ => (image.user_configs.keys().cloned().collect(), false),
    };
    let mut seen = BTreeMap::new();
    for user in &users {
        *seen.entry(user.clone()).or_insert(0) += 1;
    }
    let results = users
        .iter()
        .filter(|user| explicit || !credentials_of(&image, user).is_empty())
        .map(|user| {
            let result = DescribeUserScramCredentialsResult::default().with_user(str_bytes(user));
            if seen[user] > 1 {
                return result
                    .with_error_code(ResponseError::DuplicateResource.code())
                    .with_error_message(Some(StrBytes::from_string(format!(
                        "Cannot describe SCRAM credentials for the same user twice in a single request: {user}"
                    ))));
            }
            let credentials = credentials_of(&image, user);
            if credentials.is_empty() {
                return result
                    .with_error_code(ResponseError::ResourceNotFound.code())
                    .with_error_message(Some(StrBytes::from_string(format!(
                        "Attempt to describe a user credential that does not exist: {user}"
                    ))));
            }
            result.with_credential_infos(
                credentials
                    .into_iter()
                    .map(|(mechanism, credential)| {
                        CredentialInfo::default()
                            .with_mechanism(mechanism.code())
                            .with_iterations(credential.iterations)
                    })
                    .collect(),
            )
        })
        .collect();
    DescribeUserScramCredentialsResponse::default().with_results(results)
}

pub async fn alter(
    context: &RequestContext<'_>,
    request: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    let image = context.shard.metadata();
    // (user, mechanism code) pairs named more than once.
    let mut named: BTreeMap<(String, i8), usize> = BTreeMap::new();
    for (name, mechanism) in request
        .deletions
        .iter()
        .map(|d| (d.name.to_string(), d.mechanism))
        .chain(
            request
                .upsertions
                .iter()
                .map(|u| (u.name.to_string(), u.mechanism)),
        )
    {
        *named.entry((name, mechanism)).or_insert(0) += 1;
    }
    let mut users: Vec<String> = named.keys().map(|(name, _)| name.clone()).collect();
    users.dedup();
    // Per user: its operations, or the first refusal.
    let mut ops: BTreeMap<String, Result<Vec<ConfigOp>, (ResponseError, String)>> = users
        .iter()
        .map(|user| (user.clone(), Ok(Vec::new())))
        .collect();
    type Ops = BTreeMap<String, Result<Vec<ConfigOp>, (ResponseError, String)>>;
    /// Records a user's first refusal (its other operations are then not made).
    fn refuse_in(ops: &mut Ops, user: &str, error: ResponseError, message: String) {
        if let Some(entry) = ops.get_mut(user).filter(|entry| entry.is_ok()) {
            *entry = Err((error, message));
        }
    }
    // Kafka's check: ALTER on the cluster, answered per user.
    let alterable = context.cluster_authorized(Operation::Alter);
    for ((user, mechanism), count) in &named {
        if !alterable {
            refuse_in(
                &mut ops,
                user,
                ResponseError::ClusterAuthorizationFailed,
                "Cluster authorization failed.".to_string(),
            );
        }
        if *count > 1 {
            refuse_in(
                &mut ops,
                user,
                ResponseError::DuplicateResource,
                format!("A user credential cannot be altered twice in the same request: {user}"),
            );
        }
        if ScramMechanism::from_code(*mechanism).is_none() {
            refuse_in(
                &mut ops,
                user,
                ResponseError::UnsupportedSaslMechanism,
                format!("Unknown SCRAM mechanism for user: {user}"),
            );
        }
        if user.is_empty() {
            refuse_in(
                &mut ops,
                user,
                ResponseError::UnacceptableCredential,
                "Username must not be empty".to_string(),
            );
        }
    }
    for deletion in &request.deletions {
        let user = deletion.name.to_string();
        let Some(mechanism) = ScramMechanism::from_code(deletion.mechanism) else {
            continue;
        };
        if lookup(&image, &user, mechanism).is_none() {
            refuse_in(
                &mut ops,
                &user,
                ResponseError::ResourceNotFound,
                format!("Attempt to delete a user credential that does not exist: {user}"),
            );
            continue;
        }
        if let Some(Ok(list)) = ops.get_mut(&user) {
            list.push(ConfigOp::Delete(mechanism.name().to_string()));
        }
    }
    for upsertion in &request.upsertions {
        let user = upsertion.name.to_string();
        let Some(mechanism) = ScramMechanism::from_code(upsertion.mechanism) else {
            continue;
        };
        if !(ITERATIONS_MIN..=ITERATIONS_MAX).contains(&upsertion.iterations) {
            let bound = if upsertion.iterations < ITERATIONS_MIN {
                format!(
                    "Too few iterations for {}: minimum is {ITERATIONS_MIN}",
                    mechanism.name()
                )
            } else {
                format!(
                    "Too many iterations for {}: maximum is {ITERATIONS_MAX}",
                    mechanism.name()
                )
            };
            refuse_in(
                &mut ops,
                &user,
                ResponseError::UnacceptableCredential,
                bound,
            );
            continue;
        }
        if upsertion.salted_password.len() != mechanism.hash_bytes() || upsertion.salt.is_empty() {
            refuse_in(
                &mut ops,
                &user,
                ResponseError::UnacceptableCredential,
                format!("Invalid salt or salted password for {}", mechanism.name()),
            );
            continue;
        }
        let credential = scram::credential(
            mechanism,
            upsertion.salt.to_vec(),
            &upsertion.salted_password,
            upsertion.iterations,
        );
        if let Some(Ok(list)) = ops.get_mut(&user) {
            list.push(ConfigOp::Set(
                mechanism.name().to_string(),
                credential.to_config(),
            ));
        }
    }
    let alterations: Vec<ConfigAlteration> = ops
        .iter()
        .filter_map(|(user, ops)| {
            let ops = ops.as_ref().ok()?;
            Some(ConfigAlteration {
                resource: ConfigResource::User(user.clone()),
                replace: false,
                ops: ops.clone(),
            })
        })
        .collect();
    let answers = match alterations.is_empty() {
        true => Vec::new(),
        false => ask_controller(context, |reply| ControllerRequest::AlterConfigs {
            alterations,
            validate_only: false,
            reply,
        })
        .await
        .unwrap_or_default(),
    };
    let mut answers = answers.into_iter();
    let results = ops
        .into_iter()
        .map(|(user, outcome)| {
            let result = AlterUserScramCredentialsResult::default().with_user(str_bytes(&user));
            let (code, message) = match outcome {
                Err((error, message)) => (error.code(), Some(message)),
                Ok(_) => match answers.next() {
                    Some(Ok(())) => (0, None),
                    Some(Err(error)) => (topic_error_code(&error), Some(error.to_string())),
                    None => (
                        ResponseError::NotController.code(),
                        Some("the controller did not answer".to_string()),
                    ),
                },
            };
            result
                .with_error_code(code)
                .with_error_message(message.map(StrBytes::from_string))
        })
        .collect();
    AlterUserScramCredentialsResponse::default().with_results(results)
}
