//! Follower fetching (KIP-392) pieces that a single real `shoal` process can show: the
//! Prometheus endpoint counting what consumers were served, client racks from `rack_id` and from
//! `client.rack.cidrs`, `broker.rack=auto` against fake cloud metadata services on loopback, and
//! the `shoal partitions` command.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use kafka_protocol::messages::BrokerId;
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::records::Compression;
use shoal_tests::broker::run_to_exit;
use shoal_tests::client::PartitionFetch;
use shoal_tests::records::{TestRecord, batch};
use shoal_tests::{Broker, BrokerOptions, Client};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Fetch v11 (the first with `rack_id`) from partition 0 of `topic`.
async fn fetch_v11(client: &mut Client, topic: &str, rack: &str) -> anyhow::Result<PartitionData> {
    let spec = PartitionFetch {
        rack,
        ..PartitionFetch::new(topic, 0, 0)
    };
    client.fetch_partition(11, &spec).await
}

/// host:port of the broker's metrics listener.
fn metrics_authority(broker: &Broker) -> String {
    shoal_tests::http::metrics_authority(&broker.output())
        .unwrap_or_else(|e| panic!("{e}:\n{}", broker.output()))
}

/// GET `path` from `authority`: status line and body.
async fn http_get(authority: &str, path: &str) -> anyhow::Result<(String, String)> {
    let r = shoal_tests::http::request(authority, "GET", path).await?;
    Ok((r.status_line, r.body))
}

fn value_of(metrics: &str, series: &str) -> Option<u64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|rest| rest.trim().parse().ok())
}

#[tokio::test]
async fn the_metrics_endpoint_counts_bytes_and_records_served_per_client_rack() {
    let broker = Broker::start(
        BrokerOptions::default()
            .with("broker.rack", "r1")
            .with("follower.fetching.enabled", "true")
            .with("client.rack.cidrs", "127.0.0.0/8=r2,10.0.0.0/8=r3")
            .with("metrics.listener", "http://127.0.0.1:0/metrics"),
    )
    .unwrap();
    let authority = &metrics_authority(&broker);

    let mut client = Client::connect(&broker.address()).await.unwrap();
    assert_eq!(client.create_topic("clicks", 1, &[]).await.unwrap(), 0);
    let records: Vec<TestRecord> = (0..3)
        .map(|i| TestRecord::new(&format!("k{i}"), "value", now_ms()))
        .collect();
    let produced = client
        .produce("clicks", 0, batch(&records, Compression::None), -1, 9)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(produced.error_code, 0);

    // Rack from the request; the only replica is the leader, so it serves every rack itself.
    let in_r1 = fetch_v11(&mut client, "clicks", "r1").await.unwrap();
    assert_eq!(in_r1.error_code, 0);
    assert_eq!(in_r1.preferred_read_replica, BrokerId(-1));
    let bytes = in_r1.records.as_ref().unwrap().len() as u64;
    assert!(bytes > 0);
    let in_r3 = fetch_v11(&mut client, "clicks", "r3").await.unwrap();
    assert_eq!(in_r3.records.as_ref().unwrap().len() as u64, bytes);
    // No rack_id: the client's address (127.0.0.1) maps to r2.
    fetch_v11(&mut client, "clicks", "").await.unwrap();
    fetch_v11(&mut client, "clicks", "").await.unwrap();
    // A rack nobody names is labelled "other".
    fetch_v11(&mut client, "clicks", "mars-1").await.unwrap();

    let (status, text) = http_get(authority, "/metrics").await.unwrap();
    assert_eq!(status, "HTTP/1.1 200 OK");
    let series = |metric: &str, rack: &str| {
        format!(
            "{metric}{{topic=\"clicks\",partition=\"0\",role=\"leader\",broker_rack=\"r1\",client_rack=\"{rack}\"}} "
        )
    };
    assert_eq!(
        value_of(&text, &series("shoal_consumer_fetch_bytes_total", "r1")),
        Some(bytes),
        "{text}"
    );
    assert_eq!(
        value_of(&text, &series("shoal_consumer_fetch_records_total", "r1")),
        Some(3),
        "{text}"
    );
    assert_eq!(
        value_of(&text, &series("shoal_consumer_fetch_records_total", "r2")),
        Some(6),
        "{text}"
    );
    assert_eq!(
        value_of(&text, &series("shoal_consumer_fetch_records_total", "r3")),
        Some(3),
        "{text}"
    );
    assert_eq!(
        value_of(
            &text,
            &series("shoal_consumer_fetch_records_total", "other")
        ),
        Some(3),
        "{text}"
    );
    assert_eq!(
        value_of(
            &text,
            &series("shoal_consumer_fetch_cross_rack_bytes_total", "r2")
        ),
        Some(2 * bytes),
        "{text}"
    );
    assert_eq!(
        value_of(
            &text,
            &series("shoal_consumer_fetch_cross_rack_bytes_total", "r1")
        ),
        None,
        "same rack: not cross-rack\n{text}"
    );
    assert!(
        text.contains("shoal_broker_info{node_id=\"1\",rack=\"r1\",rack_source=\"static\"} 1"),
        "{text}"
    );
    assert!(text.contains("# TYPE shoal_preferred_read_replica_redirects_total counter"));

    let (status, _) = http_get(authority, "/other").await.unwrap();
    assert_eq!(status, "HTTP/1.1 404 Not Found");
}

#[tokio::test]
async fn no_metrics_listener_unless_configured() {
    let broker = Broker::start_default().unwrap();
    assert!(
        !broker.output().contains("shoal metrics:"),
        "{}",
        broker.output()
    );
}

#[tokio::test]
async fn the_partitions_command_shows_replicas_racks_and_where_each_rack_reads() {
    let broker = Broker::start(BrokerOptions::default().with("broker.rack", "r1")).unwrap();
    let mut client = Client::connect(&broker.address()).await.unwrap();
    assert_eq!(client.create_topic("orders", 2, &[]).await.unwrap(), 0);
    assert_eq!(client.create_topic("other", 1, &[]).await.unwrap(), 0);

    let bootstrap = broker.address();
    let (status, out) = run_to_exit(
        &[
            "partitions",
            "--bootstrap-server",
            &bootstrap,
            "--topic",
            "orders",
        ],
        &[],
    )
    .unwrap();
    assert!(status.success(), "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("TOPIC"), "{out}");
    assert!(lines[0].contains("CONSUMER RACK -> READS FROM"), "{out}");
    assert_eq!(lines.len(), 3, "a header and two partitions:\n{out}");
    for (line, partition) in lines[1..].iter().zip(["0", "1"]) {
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cells[0], "orders", "{out}");
        assert_eq!(cells[1], partition, "{out}");
        assert_eq!(cells[2], "1", "leader\n{out}");
        assert_eq!(cells[4], "1(r1)", "replicas with racks\n{out}");
        assert_eq!(cells[5], "1", "ISR\n{out}");
        assert_eq!(cells[6], "-", "offline\n{out}");
        assert_eq!(cells[7], "r1->1(leader)", "{out}");
    }

    let (status, all) =
        run_to_exit(&["partitions", "--bootstrap-server", &bootstrap], &[]).unwrap();
    assert!(status.success(), "{all}");
    assert!(all.lines().any(|l| l.starts_with("other ")), "{all}");

    let (status, missing) = run_to_exit(
        &[
            "partitions",
            "--bootstrap-server",
            &bootstrap,
            "--topic",
            "nope",
        ],
        &[],
    )
    .unwrap();
    assert!(!status.success());
    assert!(missing.contains("topic nope does not exist"), "{missing}");
}

#[tokio::test]
async fn the_partitions_command_reports_an_unreachable_broker() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    drop(listener);
    let (status, out) = run_to_exit(&["partitions", "--bootstrap-server", &address], &[]).unwrap();
    assert!(!status.success());
    assert!(out.contains(&address), "{out}");
}

/// A fake metadata service on loopback; `route(method, path, headers)` gives status, extra
/// headers and body. Serves until the test's runtime ends.
type Route = dyn Fn(
        &str,
        &str,
        &HashMap<String, String>,
    ) -> (u16, Vec<(&'static str, &'static str)>, &'static str)
    + Send
    + Sync;

async fn fake_metadata_service(route: Arc<Route>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let route = route.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&head).to_string();
                let mut lines = text.split("\r\n");
                let mut first = lines.next().unwrap_or_default().split(' ');
                let (method, path) = (
                    first.next().unwrap_or_default().to_string(),
                    first.next().unwrap_or_default().to_string(),
                );
                let headers: HashMap<String, String> = lines
                    .filter_map(|l| l.split_once(": "))
                    .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
                    .collect();
                let (status, extra, body) = route(&method, &path, &headers);
                let mut out = format!(
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                    body.len()
                );
                for (k, v) in extra {
                    out.push_str(&format!("{k}: {v}\r\n"));
                }
                out.push_str("\r\n");
                out.push_str(body);
                let _ = stream.write_all(out.as_bytes()).await;
            });
        }
    });
    address
}

fn aws() -> Arc<Route> {
    Arc::new(|method, path, headers| match (method, path) {
        ("PUT", "/latest/api/token") => (200, vec![], "token-1"),
        ("GET", "/latest/meta-data/placement/availability-zone-id")
            if headers.get("x-aws-ec2-metadata-token").map(String::as_str) == Some("token-1") =>
        {
            (200, vec![], "use1-az4")
        }
        _ => (401, vec![], ""),
    })
}

fn gcp() -> Arc<Route> {
    Arc::new(|_, path, headers| {
        let flavor = vec![("Metadata-Flavor", "Google")];
        if path == "/computeMetadata/v1/instance/zone"
            && headers.get("metadata-flavor").map(String::as_str) == Some("Google")
        {
            (200, flavor, "projects/42/zones/europe-west1-c")
        } else {
            (403, flavor, "")
        }
    })
}

fn azure() -> Arc<Route> {
    Arc::new(|_, path, headers| {
        if headers.get("metadata").map(String::as_str) != Some("true") {
            return (400, vec![], "");
        }
        match path.split('?').next().unwrap_or_default() {
            "/metadata/instance/compute/location" => (200, vec![], "northeurope"),
            "/metadata/instance/compute/zone" => (200, vec![], "3"),
            _ => (404, vec![], ""),
        }
    })
}

async fn broker_rack(broker: &Broker) -> Option<String> {
    let mut client = Client::connect(&broker.address()).await.unwrap();
    let metadata = client.metadata(Some(&[]), false).await.unwrap();
    metadata.brokers[0].rack.as_ref().map(|r| r.to_string())
}

// Multi-threaded: the fake services must answer while `Broker::start` blocks this thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_rack_auto_reads_each_clouds_metadata_service() {
    for (source, route, rack, origin) in [
        ("aws", aws(), "use1-az4", "AWS IMDSv2 availability-zone-id"),
        ("gcp", gcp(), "europe-west1-c", "GCP metadata instance/zone"),
        (
            "azure",
            azure(),
            "northeurope-3",
            "Azure IMDS compute location-zone",
        ),
    ] {
        let address = fake_metadata_service(route).await;
        let broker = Broker::start(
            BrokerOptions::default()
                .with("broker.rack", "auto")
                .with("broker.rack.auto.sources", source)
                .with(
                    &format!("broker.rack.auto.{source}.endpoint"),
                    format!("http://{address}"),
                )
                .with("metrics.listener", "http://127.0.0.1:0"),
        )
        .unwrap();
        assert_eq!(
            broker_rack(&broker).await.as_deref(),
            Some(rack),
            "{source}"
        );
        assert!(
            broker.output().contains(&format!(
                "broker.rack={rack} (discovered from {origin} at {address})"
            )),
            "{}",
            broker.output()
        );
        let authority = &metrics_authority(&broker);
        let (_, text) = http_get(authority, "/metrics").await.unwrap();
        assert!(
            text.contains(&format!("rack=\"{rack}\",rack_source=\"{source}\"")),
            "{text}"
        );
    }
}

#[tokio::test]
async fn broker_rack_auto_reads_the_environment_variable() {
    let broker = Broker::start(
        BrokerOptions::default()
            .with("broker.rack", "auto")
            .with("broker.rack.auto.sources", "env,aws")
            .with("broker.rack.auto.env.name", "SHOAL_TEST_ZONE")
            .env("SHOAL_TEST_ZONE", "zone-b"),
    )
    .unwrap();
    assert_eq!(broker_rack(&broker).await.as_deref(), Some("zone-b"));
    assert!(
        broker
            .output()
            .contains("broker.rack=zone-b (discovered from environment variable SHOAL_TEST_ZONE)"),
        "{}",
        broker.output()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_rack_auto_that_finds_nothing_stops_startup() {
    let dir = tempfile::tempdir().unwrap();
    let refusing = fake_metadata_service(Arc::new(|_, _, _| (404, vec![], ""))).await;
    let log_dirs = format!("log.dirs={}", dir.path().display());
    let endpoint = format!("broker.rack.auto.aws.endpoint=http://{refusing}");
    let (status, out) = run_to_exit(
        &[
            "--override",
            "listeners=PLAINTEXT://127.0.0.1:0",
            "--override",
            &log_dirs,
            "--override",
            "broker.rack=auto",
            "--override",
            "broker.rack.auto.sources=env,aws",
            "--override",
            "broker.rack.auto.env.name=SHOAL_TEST_UNSET_ZONE_VARIABLE",
            "--override",
            &endpoint,
        ],
        &[],
    )
    .unwrap();
    assert!(!status.success(), "{out}");
    assert!(out.contains("broker.rack=auto found no rack"), "{out}");
    assert!(
        out.contains("env (environment variable SHOAL_TEST_UNSET_ZONE_VARIABLE): not set"),
        "{out}"
    );
    assert!(out.contains("HTTP status 404"), "{out}");
    assert!(!out.contains("shoal ready"), "{out}");
}
