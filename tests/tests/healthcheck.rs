//! `shoal healthcheck` against a real broker: exit status 0 when the node serves clients, 1 when
//! it does not (nothing listening, another node id, a listener that never answers, within the
//! timeout), 2 for bad arguments or configuration; silent when healthy, one line otherwise; and
//! beside the live server, without touching `log.dirs`.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shoal_tests::broker::{run_to_exit, shoal_binary};
use shoal_tests::{Broker, BrokerOptions};

/// Settings a containerised node carries beyond what Shoal uses: the check must accept them
/// without a word (the server logs the warnings).
const SERVER_PROPERTIES: &str = "\
process.roles=broker,controller
controller.quorum.voters=4@localhost:9093
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
transaction.state.log.replication.factor=1
";

fn start_node() -> Broker {
    let broker = Broker::start(
        BrokerOptions {
            config_file: Some(SERVER_PROPERTIES.into()),
            ..BrokerOptions::default()
        }
        .env("KAFKA_NODE_ID", "4"),
    )
    .unwrap();
    assert!(
        broker.wait_for_output("process.roles is accepted but has no effect"),
        "the server warns about what the check must keep quiet about:\n{}",
        broker.output()
    );
    broker
}

fn port_of(broker: &Broker) -> u16 {
    broker
        .address()
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .expect("broker address with a port")
}

/// Runs `shoal healthcheck` with the node's properties file, the node's listeners on `port` (the
/// controller listener first, which the check must pass over) and `log.dirs`, plus `extra`.
fn healthcheck(
    dir: &Path,
    port: u16,
    log_dirs: &Path,
    node_env: &str,
    extra: &[&str],
) -> (ExitStatus, String, Duration) {
    let file = dir.join("server.properties");
    std::fs::write(&file, SERVER_PROPERTIES).unwrap();
    let listeners = format!("listeners=CONTROLLER://:1,PLAINTEXT://:{port}");
    let log_dirs = format!("log.dirs={}", log_dirs.display());
    let mut args = vec![
        "healthcheck",
        "--config",
        file.to_str().unwrap(),
        "--override",
        &listeners,
        "--override",
        &log_dirs,
    ];
    args.extend_from_slice(extra);
    // Locate (or build) the binary before the clock starts.
    shoal_binary().unwrap();
    let started = Instant::now();
    let (status, output) = run_to_exit(&args, &[("KAFKA_NODE_ID", node_env)]).unwrap();
    (status, output, started.elapsed())
}

#[test]
fn a_serving_node_is_healthy_and_the_check_prints_nothing() {
    let broker = start_node();
    let dir = tempfile::tempdir().unwrap();
    let port = port_of(&broker);

    // Beside the live server, on its own locked data directory.
    let live = broker.data_dir().join("logs");
    let (status, output, _) = healthcheck(dir.path(), port, &live, "4", &[]);
    assert_eq!(status.code(), Some(0), "{output}");
    assert_eq!(output, "", "nothing printed when healthy");

    // log.dirs is never opened: a missing directory stays missing.
    let missing = dir.path().join("never-created");
    let (status, output, _) = healthcheck(dir.path(), port, &missing, "4", &[]);
    assert_eq!(status.code(), Some(0), "{output}");
    assert!(!missing.exists(), "the check created {}", missing.display());

    // --listener picks the same listener by name, in any case.
    let (status, output, _) = healthcheck(
        dir.path(),
        port,
        &missing,
        "4",
        &["--listener", "plaintext"],
    );
    assert_eq!(status.code(), Some(0), "{output}");
}

#[test]
fn another_node_id_is_unhealthy() {
    let broker = start_node();
    let dir = tempfile::tempdir().unwrap();
    let (status, output, _) = healthcheck(
        dir.path(),
        port_of(&broker),
        &dir.path().join("logs"),
        "9",
        // A valid configuration of its own (a node is always one of its cluster's voters).
        &["--override", "controller.quorum.voters=9@localhost:9093"],
    );
    assert_eq!(status.code(), Some(1), "{output}");
    assert_eq!(output.lines().count(), 1, "{output}");
    assert!(
        output.contains("node 9 on PLAINTEXT 127.0.0.1:")
            && output.contains("not among the cluster's brokers in Metadata (brokers: 4)"),
        "{output}"
    );
}

#[test]
fn nothing_listening_is_unhealthy() {
    let free = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    let dir = tempfile::tempdir().unwrap();
    let (status, output, _) = healthcheck(dir.path(), port, &dir.path().join("logs"), "4", &[]);
    assert_eq!(status.code(), Some(1), "{output}");
    assert_eq!(output.lines().count(), 1, "{output}");
    assert!(output.contains("cannot connect"), "{output}");
}

#[test]
fn bad_arguments_and_configuration_exit_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let cases: &[(&[&str], &str)] = &[
        (&["--override", "no.such.setting=1"], "unknown property"),
        (&["--override", "listeners=PLAINTEXT://:0"], "port 0"),
        (&["--listener", "CONTROLLER"], "no such client listener"),
        (&["--listener", "ELSEWHERE"], "no such client listener"),
        (
            &["--override", "inter.broker.listener.name=CONTROLLER"],
            "inter.broker.listener.name=CONTROLLER",
        ),
        (&["--timeout-ms", "0"], "--timeout-ms"),
        (&["--no-such-flag"], "--no-such-flag"),
    ];
    for (extra, expected) in cases {
        let (status, output, _) = healthcheck(dir.path(), 9, &logs, "4", extra);
        assert_eq!(status.code(), Some(2), "{extra:?}: {output}");
        assert_eq!(output.lines().count(), 1, "{extra:?}: {output}");
        assert!(
            output.starts_with("shoal healthcheck: ") && output.contains(expected),
            "{extra:?}: {output}"
        );
    }
    let (status, output) = run_to_exit(
        &["healthcheck", "--config", "/nonexistent/server.properties"],
        &[],
    )
    .unwrap();
    assert_eq!(status.code(), Some(2), "{output}");
    assert!(!logs.exists());
}

/// A socket that accepts connections and never answers; counts the connections it accepted.
fn silent_listener() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let held: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
    let count = accepted.clone();
    // Detached: it ends with the test process, holding its connections open until then.
    std::thread::spawn(move || {
        for conn in listener.incoming().map_while(Result::ok) {
            count.fetch_add(1, Ordering::SeqCst);
            if let Ok(mut held) = held.lock() {
                held.push(conn);
            }
        }
    });
    (port, accepted)
}

/// Process start-up and the harness's 20 ms polling on a loaded machine; the check itself ends
/// at its deadline.
const SLACK: Duration = Duration::from_millis(1500);

#[test]
fn a_listener_that_never_answers_is_unhealthy_within_the_timeout() {
    let (port, accepted) = silent_listener();
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");

    let (status, output, elapsed) =
        healthcheck(dir.path(), port, &logs, "4", &["--timeout-ms", "700"]);
    assert_eq!(status.code(), Some(1), "{output}");
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "the check connected");
    assert!(output.contains("no answer within"), "{output}");
    assert!(
        elapsed >= Duration::from_millis(700) && elapsed < Duration::from_millis(700) + SLACK,
        "--timeout-ms 700 took {elapsed:?}"
    );

    // The default bound: 3000 ms.
    let (status, output, elapsed) = healthcheck(dir.path(), port, &logs, "4", &[]);
    assert_eq!(status.code(), Some(1), "{output}");
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
    assert!(
        elapsed >= Duration::from_millis(3000) && elapsed < Duration::from_millis(3000) + SLACK,
        "the default timeout took {elapsed:?}"
    );
}
