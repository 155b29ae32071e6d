//! The (API, version) report a broker appends to `SHOAL_API_COVERAGE_FILE` on a graceful
//! shutdown, also when whoever read its output has gone away (a closed pipe must not turn the
//! shutdown into a crash).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use shoal_tests::Client;
use shoal_tests::broker::shoal_binary;

#[tokio::test]
async fn a_graceful_shutdown_after_the_output_reader_left_writes_the_coverage_report() {
    let dir = tempfile::tempdir().unwrap();
    let coverage = dir.path().join("coverage.txt");
    let mut child = Command::new(shoal_binary().unwrap())
        .arg("--override")
        .arg("listeners=PLAINTEXT://127.0.0.1:0")
        .arg("--override")
        .arg(format!("log.dirs={}", dir.path().join("data").display()))
        .env("SHOAL_API_COVERAGE_FILE", &coverage)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut ready = String::new();
    while !ready.starts_with("shoal ready:") {
        ready.clear();
        assert_ne!(
            stdout.read_line(&mut ready).unwrap(),
            0,
            "shoal exited before it was ready"
        );
    }
    let at = ready.find("127.0.0.1:").unwrap();
    let address: String = ready[at..]
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != ',')
        .collect();

    let mut client = Client::connect(&address).await.unwrap();
    client.api_versions(3).await.unwrap();
    client.api_versions(3).await.unwrap();
    client.metadata(None, false).await.unwrap();
    drop(client);

    // Nobody reads the broker's output any more: its next log line meets a broken pipe.
    drop(stdout);
    drop(child.stderr.take());
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("shoal did not exit within 30 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "shoal exited with {exit}");

    let report = std::fs::read_to_string(&coverage).unwrap();
    let lines: Vec<&str> = report.lines().collect();
    assert!(lines.contains(&"advertised 18 ApiVersions 0 4"), "{report}");
    assert!(lines.contains(&"advertised 3 Metadata 1 12"), "{report}");
    assert!(lines.contains(&"exercised 18 3 2"), "{report}");
    assert!(
        lines.iter().any(|l| l.starts_with("exercised 3 ")),
        "{report}"
    );
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with("advertised ") || l.starts_with("exercised ")),
        "{report}"
    );
}
