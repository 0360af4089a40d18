//! The configuration's unit tests (`config::ServerConfig` and its lookups).

use super::*;

fn config_from(text: &str) -> Result<(ServerConfig, Vec<String>), ConfigError> {
    ServerConfig::from_properties(&properties::parse(text))
}

/// Proves the embedded default is a valid single combined node with Kafka's defaults.
#[test]
fn embedded_default_is_a_combined_node() {
    let (config, warnings) = config_from(EMBEDDED_DEFAULT).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert!(config.is_broker() && config.is_controller());
    assert_eq!(config.advertised_listeners[0].host, "localhost");
    assert_eq!(config.client_listeners().count(), 1);
    assert_eq!(config.message_max_bytes, 1_048_588);
    assert_eq!(config.log_segment_bytes, 1 << 30);
    assert_eq!(
        config.log_dirs,
        vec![PathBuf::from("/tmp/flink-combined-logs")]
    );
}

/// Proves the KIP-848 group timeouts take Kafka's defaults and are held to Kafka's bounds:
/// each within its min and max, and the heartbeat interval below the session timeout.
#[test]
fn checks_consumer_group_timeouts() {
    let (config, _) = config_from(EMBEDDED_DEFAULT).unwrap();
    assert_eq!(
        (
            config.group_consumer_session_timeout_ms,
            config.group_consumer_heartbeat_interval_ms
        ),
        (45_000, 5_000)
    );
    let with = |extra: &str| config_from(&format!("{EMBEDDED_DEFAULT}{extra}"));
    let faster = "group.consumer.min.heartbeat.interval.ms=500\n\
                  group.consumer.heartbeat.interval.ms=500\n";
    assert_eq!(
        with(faster).unwrap().0.group_consumer_heartbeat_interval_ms,
        500
    );
    let refused = |extra: &str| match with(extra) {
        Err(ConfigError::Invalid { key, reason, .. }) => (key, reason),
        other => panic!("{extra:?} was not refused: {other:?}"),
    };
    assert_eq!(
        refused("group.consumer.heartbeat.interval.ms=1000\n").1,
        "group.consumer.heartbeat.interval.ms must be greater than or equal to \
         group.consumer.min.heartbeat.interval.ms"
    );
    assert_eq!(
        refused("group.consumer.session.timeout.ms=90000\n").0,
        "group.consumer.session.timeout.ms"
    );
    assert_eq!(
        refused(
            "group.consumer.max.heartbeat.interval.ms=50000\n\
             group.consumer.heartbeat.interval.ms=50000\n"
        )
        .1,
        "group.consumer.heartbeat.interval.ms must be less than \
         group.consumer.session.timeout.ms"
    );
}

/// Proves `cpu.pinning` defaults to auto and takes each documented value and alias.
#[test]
fn parses_idle_poll_time() {
    let (config, _) = config_from(EMBEDDED_DEFAULT).unwrap();
    assert_eq!(config.idle_poll_time, None);
    let text = format!("{EMBEDDED_DEFAULT}idle.poll.time.us=200\n");
    let (config, _) = config_from(&text).unwrap();
    assert_eq!(
        config.idle_poll_time,
        Some(std::time::Duration::from_micros(200))
    );
    for bad in ["20000", "-1", "soon"] {
        let text = format!("{EMBEDDED_DEFAULT}idle.poll.time.us={bad}\n");
        let Err(error) = config_from(&text) else {
            panic!("{bad} was taken");
        };
        let error = error.to_string();
        assert!(error.contains("idle.poll.time.us"), "{bad}: {error}");
    }
}

#[test]
fn parses_cpu_pinning() {
    let (config, _) = config_from(EMBEDDED_DEFAULT).unwrap();
    assert_eq!(config.cpu_pinning, CpuPinning::Auto);
    for (value, pinning) in [
        ("auto", CpuPinning::Auto),
        ("pinned", CpuPinning::Pinned),
        ("true", CpuPinning::Pinned),
        ("spread", CpuPinning::Spread),
        ("none", CpuPinning::Unpinned),
        ("false", CpuPinning::Unpinned),
        (" None ", CpuPinning::Unpinned),
    ] {
        let text = format!("{EMBEDDED_DEFAULT}cpu.pinning={value}\n");
        let (config, warnings) = config_from(&text).unwrap();
        assert_eq!(config.cpu_pinning, pinning, "{value}");
        assert!(warnings.is_empty(), "{warnings:?}");
    }
}

/// Proves the request queue and connection keys have Kafka's names and defaults (with
/// queued.max.request.bytes=-1 bounded per connection), and bad values are refused naming
/// key and value.
#[test]
fn request_queue_and_connection_limits() {
    let (config, _) = config_from(EMBEDDED_DEFAULT).unwrap();
    assert_eq!(config.queued_max_requests, 500);
    assert_eq!(
        config.request_bytes_in_flight_max(),
        QUEUED_REQUEST_BYTES_PER_CONNECTION
    );
    assert_eq!(config.max_connections, i32::MAX as usize);
    assert_eq!(config.max_connections_per_ip, i32::MAX as usize);
    assert!(config.max_connections_per_ip_overrides.is_empty());
    assert_eq!(config.max_connection_creation_rate, i32::MAX as u32);
    let set = format!(
        "{EMBEDDED_DEFAULT}queued.max.request.bytes=1048576\nmax.connections.per.ip=0\n\
         max.connections.per.ip.overrides=127.0.0.1:3\nmax.connection.creation.rate=20\n"
    );
    let (config, warnings) = config_from(&set).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(config.request_bytes_in_flight_max(), 1 << 20);
    assert_eq!(config.max_connections_per_ip, 0);
    assert_eq!(
        config.max_connections_per_ip_overrides[&"127.0.0.1".parse::<IpAddr>().unwrap()],
        3
    );
    assert_eq!(config.max_connection_creation_rate, 20);
    for (key, value, reason) in [
        ("queued.max.requests", "0", "at least 1"),
        ("queued.max.request.bytes", "0", "-1"),
        ("max.connections", "-1", "zero or more"),
        ("max.connections.per.ip", "0", "overrides"),
        ("max.connection.creation.rate", "fast", "number"),
        (
            "max.connections.per.ip.overrides",
            "127.0.0.1",
            "host:count",
        ),
    ] {
        let bad = format!("{EMBEDDED_DEFAULT}{key}={value}\n");
        let message = config_from(&bad).unwrap_err().to_string();
        assert!(
            message.contains(key) && message.contains(value) && message.contains(reason),
            "{message}"
        );
    }
}

/// Proves bad values and missing keys are errors naming key and value; unknown keys warn.
#[test]
fn errors_name_key_and_value() {
    let bad = format!("{EMBEDDED_DEFAULT}num.partitions=many\n");
    let message = config_from(&bad).unwrap_err().to_string();
    assert!(
        message.contains("num.partitions") && message.contains("many"),
        "{message}"
    );
    let message = config_from("process.roles=broker\n")
        .unwrap_err()
        .to_string();
    assert!(message.contains("node.id"), "{message}");
    let (_, warnings) = config_from(&format!("{EMBEDDED_DEFAULT}no.such.key=1\n")).unwrap();
    assert!(warnings[0].contains("no.such.key"));
    let same_port = EMBEDDED_DEFAULT.replace("CONTROLLER://:9093", "CONTROLLER://:9092");
    let message = config_from(&same_port).unwrap_err().to_string();
    assert!(message.contains("different port"), "{message}");
    let wrong = format!("{EMBEDDED_DEFAULT}inter.broker.listener.name=INTERNAL\n");
    let message = config_from(&wrong).unwrap_err().to_string();
    assert!(message.contains("inter.broker.listener.name") && message.contains("PLAINTEXT"));
    let controller_only = EMBEDDED_DEFAULT
        .replace(
            "process.roles=broker,controller",
            "process.roles=controller",
        )
        .replace("PLAINTEXT://:9092,", "");
    assert!(config_from(&format!(
        "{controller_only}inter.broker.listener.name=PLAINTEXT\n"
    ))
    .is_ok());
    let pinning = format!("{EMBEDDED_DEFAULT}cpu.pinning=sometimes\n");
    let message = config_from(&pinning).unwrap_err().to_string();
    assert!(
        message.contains("cpu.pinning") && message.contains("sometimes"),
        "{message}"
    );
    let tls = format!("{EMBEDDED_DEFAULT}listener.security.protocol.map=PLAINTEXT:SSL\n");
    let message = config_from(&tls).unwrap_err().to_string();
    assert!(message.contains("ssl.keystore.type"), "{message}");
    let secured = "ssl.keystore.type=PEM\nssl.keystore.location=/k.pem\n";
    // TLS between brokers and to the controllers: the links take the listeners' keys.
    let all_tls = format!(
        "{EMBEDDED_DEFAULT}{secured}listener.security.protocol.map=PLAINTEXT:SSL,CONTROLLER:SSL\n"
    );
    let (config, _) = config_from(&all_tls).unwrap();
    for link in [&config.links.inter_broker, &config.links.controller] {
        assert_eq!(link.security().protocol, security::SecurityProtocol::Ssl);
    }
    let (_, warnings) = config_from(&format!(
        "{EMBEDDED_DEFAULT}{secured}listener.name.plaintext.ssl.client.auth=none\n"
    ))
    .unwrap();
    assert!(warnings.is_empty(), "security keys are known: {warnings:?}");
}

#[test]
fn links_take_the_security_of_the_listeners_they_reach() {
    let secured = EMBEDDED_DEFAULT.replace(
        "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "listener.security.protocol.map=CONTROLLER:SSL,PLAINTEXT:SASL_PLAINTEXT",
    );
    let keys = "ssl.keystore.type=PEM\nssl.keystore.location=/certs/broker.pem\n\
        ssl.truststore.type=PEM\nssl.truststore.location=/certs/ca.pem\n\
        listener.name.plaintext.sasl.enabled.mechanisms=PLAIN\n\
        sasl.mechanism.inter.broker.protocol=PLAIN\n\
        listener.name.plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username=\"broker\" password=\"secret\" user_broker=\"secret\";\n";
    let (config, _) = config_from(&format!("{secured}{keys}")).unwrap();
    let inter_broker = config.links.inter_broker.security();
    assert_eq!(
        inter_broker.protocol,
        security::SecurityProtocol::SaslPlaintext
    );
    assert_eq!(
        inter_broker.sasl.map(|sasl| sasl.user),
        Some("broker".into())
    );
    let controller = config.links.controller.settings.clone().unwrap();
    assert_eq!(controller.protocol, security::SecurityProtocol::Ssl);
    assert!(controller.tls.is_some_and(|tls| tls.keystore.is_some()));

    // Kafka's default inter-broker mechanism, GSSAPI, is not one this broker logs in with.
    let no_mechanism = keys.replace("sasl.mechanism.inter.broker.protocol=PLAIN\n", "");
    let message = config_from(&format!("{secured}{no_mechanism}"))
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("sasl.mechanism.inter.broker.protocol") && message.contains("GSSAPI"),
        "{message}"
    );
    let sasl_controller = secured.replace("CONTROLLER:SSL", "CONTROLLER:SASL_SSL");
    let controller_keys = "listener.name.controller.sasl.enabled.mechanisms=PLAIN\n\
        listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_broker=\"secret\";\n";
    // Kafka's default controller mechanism is GSSAPI too.
    let message = config_from(&format!("{sasl_controller}{keys}{controller_keys}"))
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("sasl.mechanism.controller.protocol") && message.contains("GSSAPI"),
        "{message}"
    );
    let controller_keys = "listener.name.controller.sasl.enabled.mechanisms=PLAIN\n\
        sasl.mechanism.controller.protocol=PLAIN\n\
        listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username=\"broker\" password=\"secret\" user_broker=\"secret\";\n";
    let (config, _) = config_from(&format!("{sasl_controller}{keys}{controller_keys}")).unwrap();
    let controller = config.links.controller.security();
    assert_eq!(controller.protocol, security::SecurityProtocol::SaslSsl);
    assert_eq!(controller.sasl.map(|sasl| sasl.user), Some("broker".into()));
}
