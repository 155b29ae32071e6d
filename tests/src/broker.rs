//! Starting, stopping and restarting `shoal` processes.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// How long a broker may take to print its readiness line.
pub const STARTUP_DEADLINE: Duration = Duration::from_secs(60);
/// How long a broker may take to exit after SIGTERM.
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(30);

/// The `shoal` binary: `$SHOAL_BIN`, or the workspace's debug build (built once per test process
/// if needed, so that `cargo test -p shoal-tests` works on its own).
pub fn shoal_binary() -> anyhow::Result<PathBuf> {
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BINARY
        .get_or_init(|| locate_or_build().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(anyhow::Error::msg)
}

fn locate_or_build() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("SHOAL_BIN") {
        let path = PathBuf::from(path);
        if !path.is_file() {
            bail!("SHOAL_BIN={} is not a file", path.display());
        }
        return Ok(path);
    }
    // Test binaries live in <target>/<profile>/deps; the broker in <target>/<profile>.
    let exe = std::env::current_exe().context("locating the test binary")?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .context("test binary is not inside a cargo target directory")?;
    let release = profile_dir.file_name().is_some_and(|n| n == "release");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut build = Command::new(cargo);
    build.args(["build", "--quiet", "-p", "shoal-broker", "--bin", "shoal"]);
    if release {
        build.arg("--release");
    }
    let status = build
        .status()
        .context("running cargo build for the shoal binary")?;
    if !status.success() {
        bail!("cargo build -p shoal-broker --bin shoal failed: {status}");
    }
    let path = profile_dir.join("shoal");
    if !path.is_file() {
        bail!(
            "cargo built the broker but {} does not exist",
            path.display()
        );
    }
    Ok(path)
}

/// How to start a broker.
#[derive(Debug, Clone, Default)]
pub struct BrokerOptions {
    /// Extra `--override key=value` properties.
    pub overrides: Vec<(String, String)>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// A properties file to pass with `--config`.
    pub config_file: Option<String>,
}

impl BrokerOptions {
    /// Adds an override.
    pub fn with(mut self, key: &str, value: impl ToString) -> Self {
        self.overrides.push((key.to_string(), value.to_string()));
        self
    }

    /// Adds an environment variable.
    pub fn env(mut self, key: &str, value: impl ToString) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }
}

/// A running (or stopped) `shoal` process with its data directory.
#[derive(Debug)]
pub struct Broker {
    child: Option<Child>,
    data: tempfile::TempDir,
    options: BrokerOptions,
    port: u16,
    output: Arc<Mutex<Vec<String>>>,
}

impl Broker {
    /// Starts a broker on a free port ([`crate::ports`]) with a fresh data directory.
    pub fn start(options: BrokerOptions) -> anyhow::Result<Broker> {
        let data = tempfile::Builder::new()
            .prefix("shoal-test-")
            .tempdir()
            .context("creating the data directory")?;
        let mut broker = Broker {
            child: None,
            data,
            options,
            port: 0,
            output: Arc::new(Mutex::new(Vec::new())),
        };
        broker.launch(crate::ports::free_port()?)?;
        Ok(broker)
    }

    /// Starts a broker with default options.
    pub fn start_default() -> anyhow::Result<Broker> {
        Self::start(BrokerOptions::default())
    }

    /// The client address.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }

    /// Everything the process printed so far (stdout and stderr), for failure messages.
    pub fn output(&self) -> String {
        self.output.lock().map(|o| o.join("\n")).unwrap_or_default()
    }

    /// Waits (up to a deadline) until the process has printed a line containing `needle`.
    pub fn wait_for_output(&self, needle: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.output().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    fn command(&self, port: u16) -> anyhow::Result<Command> {
        let mut cmd = Command::new(shoal_binary()?);
        if let Some(file) = &self.options.config_file {
            let path = self.data.path().join("server.properties");
            std::fs::write(&path, file).context("writing server.properties")?;
            cmd.arg("--config").arg(path);
        }
        cmd.arg("--override")
            .arg(format!("listeners=PLAINTEXT://127.0.0.1:{port}"))
            .arg("--override")
            .arg(format!(
                "log.dirs={}",
                self.data.path().join("logs").display()
            ));
        for (key, value) in &self.options.overrides {
            cmd.arg("--override").arg(format!("{key}={value}"));
        }
        for (key, _) in std::env::vars() {
            if key.starts_with("KAFKA") {
                cmd.env_remove(key);
            }
        }
        cmd.envs(self.options.env.iter().map(|(k, v)| (k, v)));
        cmd.env(
            "RUST_LOG",
            std::env::var("SHOAL_TEST_LOG").unwrap_or_else(|_| "info".into()),
        );
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        Ok(cmd)
    }

    fn launch(&mut self, port: u16) -> anyhow::Result<()> {
        let mut child = self.command(port)?.spawn().context("spawning shoal")?;
        let (ready_tx, ready_rx) = mpsc::channel();
        let stdout = child.stdout.take().context("no stdout")?;
        let stderr = child.stderr.take().context("no stderr")?;
        let output = self.output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.starts_with("shoal ready:") {
                    let _ = ready_tx.send(line.clone());
                }
                if let Ok(mut o) = output.lock() {
                    o.push(line);
                }
            }
        });
        let output = self.output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(mut o) = output.lock() {
                    o.push(line);
                }
            }
        });
        self.child = Some(child);

        let deadline = Instant::now() + STARTUP_DEADLINE;
        loop {
            match ready_rx.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => {
                    self.port = parse_port(&line)
                        .with_context(|| format!("unexpected readiness line: {line}"))?;
                    return Ok(());
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {}
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                bail!(
                    "shoal exited before it was ready ({status}):\n{}",
                    self.output()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "shoal did not become ready within {STARTUP_DEADLINE:?}:\n{}",
                    self.output()
                );
            }
        }
    }

    /// Sends SIGTERM and waits for the process to exit; returns its exit status.
    pub fn stop(&mut self) -> anyhow::Result<ExitStatus> {
        let Some(mut child) = self.child.take() else {
            bail!("broker is not running");
        };
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .context("running kill")?;
        if !status.success() {
            bail!("kill -TERM failed: {status}");
        }
        let deadline = Instant::now() + SHUTDOWN_DEADLINE;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "shoal did not exit within {SHUTDOWN_DEADLINE:?} of SIGTERM:\n{}",
                    self.output()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the process without letting it shut down (a crash).
    pub fn kill(&mut self) -> anyhow::Result<()> {
        let mut child = self.child.take().context("broker is not running")?;
        child.kill()?;
        child.wait()?;
        Ok(())
    }

    /// Starts the process again on the same port with the same data.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        if self.child.is_some() {
            self.stop()?;
        }
        let port = self.port;
        self.launch(port)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "--- shoal output ---\n{}\n--- end of shoal output ---",
                self.output()
            );
        }
    }
}

/// The port of the first `127.0.0.1:<port>` after "listening on" in the readiness line.
fn parse_port(line: &str) -> Option<u16> {
    let rest = &line[line.find("listening on")?..];
    let at = rest.find("127.0.0.1:")? + "127.0.0.1:".len();
    let digits: String = rest[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// Runs `shoal` with `args` and `env` to completion (for configuration errors); returns the exit
/// status and everything it printed.
pub fn run_to_exit(args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<(ExitStatus, String)> {
    let mut cmd = Command::new(shoal_binary()?);
    cmd.args(args);
    for (key, _) in std::env::vars() {
        if key.starts_with("KAFKA") {
            cmd.env_remove(key);
        }
    }
    cmd.envs(env.iter().copied());
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("spawning shoal")?;
    let deadline = Instant::now() + STARTUP_DEADLINE;
    loop {
        if child.try_wait()?.is_some() {
            let out = child.wait_with_output()?;
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            return Ok((out.status, text));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("shoal {args:?} kept running; expected it to exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_the_readiness_line() {
        let line = "shoal ready: node 1 listening on PLAINTEXT://127.0.0.1:40123 (advertised PLAINTEXT://localhost:9)";
        assert_eq!(super::parse_port(line), Some(40123));
        assert_eq!(super::parse_port("something else"), None);
    }
}
