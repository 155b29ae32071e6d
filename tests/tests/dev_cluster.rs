//! `shoal dev-cluster`: three brokers in three racks from one command, bootstrap servers
//! printed, one cluster in Metadata, and a clean stop on Ctrl-C (SIGINT).

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use shoal_tests::Client;
use shoal_tests::broker::shoal_binary;

/// A base port with `count` free consecutive ports after it.
fn free_range(count: u16, avoid: Option<u16>) -> anyhow::Result<u16> {
    for _ in 0..200 {
        let probe = TcpListener::bind("127.0.0.1:0")?;
        let base = probe.local_addr()?.port();
        drop(probe);
        if base > 65000 || avoid.is_some_and(|a| base.abs_diff(a) < 10) {
            continue;
        }
        if (0..count).all(|i| TcpListener::bind(("127.0.0.1", base + i)).is_ok()) {
            return Ok(base);
        }
    }
    bail!("no {count} consecutive free ports")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_three_rack_cluster_starts_and_stops_cleanly() -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let port = free_range(3, None)?;
    let controller_port = free_range(3, Some(port))?;
    let mut child = Command::new(shoal_binary()?)
        .args(["dev-cluster", "--brokers", "3", "--racks", "a,b,c"])
        .arg("--port")
        .arg(port.to_string())
        .arg("--controller-port")
        .arg(controller_port.to_string())
        .arg("--data-dir")
        .arg(data.path())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("spawning shoal dev-cluster")?;
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().context("stdout")?;
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut lines = Vec::new();
    let bootstrap = loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(line) => {
                if let Some(b) = line.strip_prefix("bootstrap.servers=") {
                    break b.to_string();
                }
                lines.push(line);
            }
            Err(_) if Instant::now() > deadline => {
                let _ = child.kill();
                bail!("no bootstrap servers printed:\n{}", lines.join("\n"));
            }
            Err(_) => {}
        }
    };
    let expected: Vec<String> = (0..3).map(|i| format!("127.0.0.1:{}", port + i)).collect();
    assert_eq!(bootstrap, expected.join(","));

    let mut client = Client::connect(&expected[1]).await?;
    let metadata = client.metadata(None, false).await?;
    let mut racks: Vec<(i32, String)> = metadata
        .brokers
        .iter()
        .map(|b| {
            (
                b.node_id.0,
                b.rack.as_ref().map(|r| r.to_string()).unwrap_or_default(),
            )
        })
        .collect();
    racks.sort();
    assert_eq!(
        racks,
        vec![(1, "a".into()), (2, "b".into()), (3, "c".into())]
    );
    drop(client);

    // Ctrl-C: every node stops, then the command exits successfully.
    let status = Command::new("kill")
        .arg("-INT")
        .arg(child.id().to_string())
        .status()?;
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    let exit = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!("dev-cluster did not stop within 60 s of SIGINT");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "exit status {exit}");
    for p in &expected {
        assert!(
            std::net::TcpStream::connect(p).is_err(),
            "{p} still accepts connections after the stop"
        );
    }
    Ok(())
}
