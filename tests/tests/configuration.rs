//! Configuration errors stop the broker with a clear message; valid sources combine in Kafka's
//! precedence (file < KAFKA_* environment < --override).

use shoal_tests::broker::run_to_exit;
use shoal_tests::{Broker, BrokerOptions, Client};

#[test]
fn unknown_and_invalid_settings_exit_non_zero_with_a_message() {
    let (status, output) = run_to_exit(&["--override", "no.such.setting=1"], &[]).unwrap();
    assert_eq!(status.code(), Some(2), "{output}");
    assert!(
        output.contains("unknown property 'no.such.setting'"),
        "{output}"
    );

    let (status, output) = run_to_exit(&["--override", "num.partitions=zero"], &[]).unwrap();
    assert_eq!(status.code(), Some(2), "{output}");
    assert!(output.contains("num.partitions"), "{output}");

    let (status, output) = run_to_exit(&[], &[("KAFKA_LOG_RETENTION_BYTEZ", "5")]).unwrap();
    assert_eq!(status.code(), Some(2), "{output}");
    assert!(
        output.contains("log.retention.bytez") && output.contains("KAFKA_LOG_RETENTION_BYTEZ"),
        "{output}"
    );

    let (status, output) =
        run_to_exit(&["--override", "listeners=SSL://127.0.0.1:0"], &[]).unwrap();
    assert_eq!(status.code(), Some(2), "{output}");
    assert!(output.contains("PLAINTEXT only"), "{output}");

    let (status, output) =
        run_to_exit(&["--config", "/nonexistent/server.properties"], &[]).unwrap();
    assert_eq!(status.code(), Some(2), "{output}");
}

#[test]
fn the_image_reserved_variables_are_not_properties() {
    // KAFKA_HEAP_OPTS and KAFKA_OPTS belong to the JVM scripts; an unknown property would stop
    // the broker, so reaching readiness proves they were skipped.
    let broker = Broker::start(
        BrokerOptions::default()
            .env("KAFKA_HEAP_OPTS", "-Xmx1G")
            .env("KAFKA_OPTS", "-Dx=y")
            .env("KAFKA_VERSION", "4.1.0"),
    )
    .unwrap();
    drop(broker);
}

#[tokio::test]
async fn file_environment_and_flags_apply_in_order() {
    let options = BrokerOptions {
        config_file: Some("# Kafka properties\nnum.partitions=2\nbroker.rack=rack-file\ndefault.replication.factor=1\nprocess.roles=broker,controller\n".into()),
        ..BrokerOptions::default()
    }
    .env("KAFKA_BROKER_RACK", "rack-env")
    .env("KAFKA_NUM_PARTITIONS", "4")
    .with("num.partitions", 5);
    let broker = Broker::start(options).unwrap();
    assert!(
        broker.wait_for_output("process.roles is accepted but has no effect"),
        "{}",
        broker.output()
    );
    let mut client = Client::connect(&broker.address()).await.unwrap();
    let metadata = client.metadata(Some(&["precedence"]), true).await.unwrap();
    assert_eq!(
        metadata.topics[0].partitions.len(),
        5,
        "flag beats environment beats file"
    );
    assert_eq!(
        metadata.brokers[0].rack.as_deref(),
        Some("rack-env"),
        "environment beats file"
    );
}
