//! `broker.rack=auto`: the broker finds its rack (availability zone) at startup.
//!
//! Sources, tried in the configured order (`broker.rack.auto.sources`), the first answer wins:
//! - `env`: an environment variable (`broker.rack.auto.env.name`, default `SHOAL_RACK`); on
//!   Kubernetes, fill it with the node's `topology.kubernetes.io/zone`;
//! - `aws`: IMDSv2, a session token (`PUT /latest/api/token`) then
//!   `/latest/meta-data/placement/availability-zone-id`: the zone **id** (`use1-az1`), which names
//!   the same physical zone in every account, unlike the zone name;
//! - `gcp`: `/computeMetadata/v1/instance/zone` with `Metadata-Flavor: Google` (the answer must
//!   carry that header too), whose last path segment is the zone (`europe-west1-b`);
//! - `azure`: IMDS `/metadata/instance/compute/{location,zone}` with `Metadata: true`, giving
//!   `location-zone` (`westeurope-2`; Azure zone numbers alone repeat in every region).
//!
//! The metadata services are asked concurrently, each exchange under
//! `broker.rack.auto.timeout.ms`, so a machine outside any cloud waits about one timeout. A rack
//! must be 1 to 255 printable characters without spaces. If no source answers, startup fails
//! with every source's reason.

use std::time::Duration;

use crate::config::{RackAutoConfig, RackSource};
use crate::http::HttpUrl;
use crate::http::client::{self, HttpResponse};

/// Azure IMDS API version used (supports the `zone` and `location` text endpoints).
const AZURE_API_VERSION: &str = "2021-02-01";
/// Longest rack accepted from a source.
const MAX_RACK_LEN: usize = 255;

/// A rack and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveredRack {
    /// The rack.
    pub rack: String,
    /// The source that gave it.
    pub source: RackSource,
    /// Where exactly, for the startup log line.
    pub detail: String,
}

/// No source gave a rack.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "broker.rack=auto found no rack (set broker.rack explicitly, or adjust broker.rack.auto.sources):\n  - {}",
    attempts.join("\n  - ")
)]
pub struct RackNotFound {
    /// One line per source tried: what failed.
    pub attempts: Vec<String>,
}

/// Finds the rack; `env` reads environment variables (injected for tests).
pub async fn discover(
    config: &RackAutoConfig,
    env: impl Fn(&str) -> Option<String>,
) -> Result<DiscoveredRack, RackNotFound> {
    let timeout = Duration::from_millis(config.timeout_ms.max(1));
    let wants = |s| config.sources.contains(&s);
    let skipped = || Err("not in broker.rack.auto.sources".to_string());
    let (aws, gcp, azure) = tokio::join!(
        async {
            if wants(RackSource::Aws) {
                aws(&config.aws_endpoint, timeout).await
            } else {
                skipped()
            }
        },
        async {
            if wants(RackSource::Gcp) {
                gcp(&config.gcp_endpoint, timeout).await
            } else {
                skipped()
            }
        },
        async {
            if wants(RackSource::Azure) {
                azure(&config.azure_endpoint, timeout).await
            } else {
                skipped()
            }
        },
    );
    let mut attempts = Vec::new();
    for source in &config.sources {
        let (result, detail) = match source {
            RackSource::Env => (
                from_env(&config.env_name, &env),
                format!("environment variable {}", config.env_name),
            ),
            RackSource::Aws => (
                aws.clone(),
                format!(
                    "AWS IMDSv2 availability-zone-id at {}",
                    config.aws_endpoint.authority()
                ),
            ),
            RackSource::Gcp => (
                gcp.clone(),
                format!(
                    "GCP metadata instance/zone at {}",
                    config.gcp_endpoint.authority()
                ),
            ),
            RackSource::Azure => (
                azure.clone(),
                format!(
                    "Azure IMDS compute location-zone at {}",
                    config.azure_endpoint.authority()
                ),
            ),
        };
        match result.and_then(|rack| valid_rack(rack.trim())) {
            Ok(rack) => {
                return Ok(DiscoveredRack {
                    rack,
                    source: *source,
                    detail,
                });
            }
            Err(reason) => attempts.push(format!("{} ({detail}): {reason}", source.name())),
        }
    }
    Err(RackNotFound { attempts })
}

fn valid_rack(rack: &str) -> Result<String, String> {
    if rack.is_empty() {
        return Err("empty".into());
    }
    if rack.len() > MAX_RACK_LEN || rack.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "'{}' is not a rack name (1 to {MAX_RACK_LEN} printable characters, no spaces)",
            rack.escape_debug()
        ));
    }
    Ok(rack.to_string())
}

fn from_env(name: &str, env: &impl Fn(&str) -> Option<String>) -> Result<String, String> {
    match env(name) {
        Some(value) if !value.trim().is_empty() => Ok(value),
        Some(_) => Err("set but empty".into()),
        None => Err("not set".into()),
    }
}

/// `base`'s path joined with `path`.
fn at(base: &HttpUrl, path: &str) -> String {
    format!("{}{path}", base.path.trim_end_matches('/'))
}

fn ok_text(response: &HttpResponse) -> Result<String, String> {
    if response.status != 200 {
        return Err(format!("HTTP status {}", response.status));
    }
    response
        .text()
        .map(str::to_string)
        .map_err(|e| e.to_string())
}

async fn aws(base: &HttpUrl, timeout: Duration) -> Result<String, String> {
    let token = client::request(
        base,
        "PUT",
        &at(base, "/latest/api/token"),
        &[("X-aws-ec2-metadata-token-ttl-seconds", "60")],
        timeout,
    )
    .await
    .map_err(|e| format!("token request: {e}"))?;
    let token = ok_text(&token).map_err(|e| format!("token request: {e}"))?;
    let zone = client::request(
        base,
        "GET",
        &at(base, "/latest/meta-data/placement/availability-zone-id"),
        &[("X-aws-ec2-metadata-token", &token)],
        timeout,
    )
    .await
    .map_err(|e| format!("availability-zone-id: {e}"))?;
    ok_text(&zone).map_err(|e| format!("availability-zone-id: {e}"))
}

async fn gcp(base: &HttpUrl, timeout: Duration) -> Result<String, String> {
    let response = client::request(
        base,
        "GET",
        &at(base, "/computeMetadata/v1/instance/zone"),
        &[("Metadata-Flavor", "Google")],
        timeout,
    )
    .await
    .map_err(|e| e.to_string())?;
    // Another cloud's metadata service on the same address must not be mistaken for GCP's.
    if !response
        .header("metadata-flavor")
        .is_some_and(|v| v.eq_ignore_ascii_case("Google"))
    {
        return Err(format!(
            "HTTP status {} without Metadata-Flavor: Google (not a GCP metadata server)",
            response.status
        ));
    }
    let zone = ok_text(&response)?;
    Ok(zone.rsplit('/').next().unwrap_or_default().to_string())
}

async fn azure(base: &HttpUrl, timeout: Duration) -> Result<String, String> {
    let get = |field: &'static str| async move {
        let response = client::request(
            base,
            "GET",
            &at(
                base,
                &format!(
                    "/metadata/instance/compute/{field}?api-version={AZURE_API_VERSION}&format=text"
                ),
            ),
            &[("Metadata", "true")],
            timeout,
        )
        .await
        .map_err(|e| format!("{field}: {e}"))?;
        ok_text(&response).map_err(|e| format!("{field}: {e}"))
    };
    let (location, zone) = tokio::join!(get("location"), get("zone"));
    let (location, zone) = (location?, zone?);
    if location.is_empty() {
        return Err("empty location".into());
    }
    if zone.is_empty() {
        return Err(format!(
            "the VM in {location} has no availability zone (a regional VM)"
        ));
    }
    Ok(format!("{location}-{zone}"))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// A fake metadata service: answers each request with `route(method, path, headers)`.
    type Route = dyn Fn(&str, &str, &HashMap<String, String>) -> (u16, Vec<(&'static str, String)>, String)
        + Send
        + Sync;

    async fn fake(route: Arc<Route>) -> HttpUrl {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = HttpUrl::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
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
                    let mut request_line = lines.next().unwrap_or_default().split(' ');
                    let method = request_line.next().unwrap_or_default().to_string();
                    let path = request_line.next().unwrap_or_default().to_string();
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
                    out.push_str(&body);
                    let _ = stream.write_all(out.as_bytes()).await;
                });
            }
        });
        url
    }

    /// An address where nothing listens.
    async fn closed() -> HttpUrl {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = HttpUrl::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
        drop(listener);
        url
    }

    fn config(
        sources: &[RackSource],
        aws: &HttpUrl,
        gcp: &HttpUrl,
        azure: &HttpUrl,
    ) -> RackAutoConfig {
        RackAutoConfig {
            sources: sources.to_vec(),
            env_name: "SHOAL_RACK".into(),
            timeout_ms: 2000,
            aws_endpoint: aws.clone(),
            gcp_endpoint: gcp.clone(),
            azure_endpoint: azure.clone(),
        }
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn fake_aws() -> Arc<Route> {
        Arc::new(|method, path, headers| match (method, path) {
            ("PUT", "/latest/api/token")
                if headers.contains_key("x-aws-ec2-metadata-token-ttl-seconds") =>
            {
                (200, vec![], "tok-123".into())
            }
            ("GET", "/latest/meta-data/placement/availability-zone-id") => {
                match headers.get("x-aws-ec2-metadata-token").map(String::as_str) {
                    Some("tok-123") => (200, vec![], "use1-az1".into()),
                    _ => (401, vec![], String::new()),
                }
            }
            _ => (404, vec![], String::new()),
        })
    }

    fn fake_gcp() -> Arc<Route> {
        Arc::new(|_, path, headers| {
            let flavor = vec![("Metadata-Flavor", "Google".to_string())];
            match (path, headers.get("metadata-flavor").map(String::as_str)) {
                ("/computeMetadata/v1/instance/zone", Some("Google")) => {
                    (200, flavor, "projects/123456/zones/europe-west1-b".into())
                }
                (_, None) => (403, flavor, String::new()),
                _ => (404, flavor, String::new()),
            }
        })
    }

    fn fake_azure(zone: &'static str) -> Arc<Route> {
        Arc::new(move |_, path, headers| {
            if headers.get("metadata").map(String::as_str) != Some("true") {
                return (400, vec![], "missing Metadata header".into());
            }
            let query = format!("?api-version={AZURE_API_VERSION}&format=text");
            if path == format!("/metadata/instance/compute/location{query}") {
                (200, vec![], "westeurope".into())
            } else if path == format!("/metadata/instance/compute/zone{query}") {
                (200, vec![], zone.into())
            } else {
                (404, vec![], String::new())
            }
        })
    }

    #[tokio::test]
    async fn aws_imdsv2_gives_the_availability_zone_id() {
        let (aws, none) = (fake(fake_aws()).await, closed().await);
        let found = discover(&config(&[RackSource::Aws], &aws, &none, &none), no_env)
            .await
            .unwrap();
        assert_eq!(found.rack, "use1-az1");
        assert_eq!(found.source, RackSource::Aws);
        assert!(found.detail.contains("AWS IMDSv2"), "{}", found.detail);
    }

    #[tokio::test]
    async fn gcp_gives_the_zone_from_its_path() {
        let (gcp, none) = (fake(fake_gcp()).await, closed().await);
        let found = discover(&config(&[RackSource::Gcp], &none, &gcp, &none), no_env)
            .await
            .unwrap();
        assert_eq!(
            (found.rack.as_str(), found.source),
            ("europe-west1-b", RackSource::Gcp)
        );
    }

    #[tokio::test]
    async fn gcp_requires_googles_flavor_header_in_the_answer() {
        let impostor = fake(Arc::new(|_, _, _| (200, vec![], "zones/x".into()))).await;
        let none = closed().await;
        let err = discover(&config(&[RackSource::Gcp], &none, &impostor, &none), no_env)
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("not a GCP metadata server"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn azure_gives_location_and_zone() {
        let (azure, none) = (fake(fake_azure("2")).await, closed().await);
        let found = discover(&config(&[RackSource::Azure], &none, &none, &azure), no_env)
            .await
            .unwrap();
        assert_eq!(
            (found.rack.as_str(), found.source),
            ("westeurope-2", RackSource::Azure)
        );

        let regional = fake(fake_azure("")).await;
        let err = discover(
            &config(&[RackSource::Azure], &none, &none, &regional),
            no_env,
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("no availability zone"), "{err}");
    }

    #[tokio::test]
    async fn the_environment_variable_is_read_by_name() {
        let none = closed().await;
        let env = |name: &str| (name == "SHOAL_RACK").then(|| " zone-a ".to_string());
        let found = discover(&config(&[RackSource::Env], &none, &none, &none), env)
            .await
            .unwrap();
        assert_eq!(found.rack, "zone-a");
        assert_eq!(found.detail, "environment variable SHOAL_RACK");
        let blank = |_: &str| Some("  ".to_string());
        let err = discover(&config(&[RackSource::Env], &none, &none, &none), blank)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("set but empty"), "{err}");
        let spaced = |_: &str| Some("zone a".to_string());
        let err = discover(&config(&[RackSource::Env], &none, &none, &none), spaced)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("not a rack name"), "{err}");
    }

    #[tokio::test]
    async fn sources_are_preferred_in_the_configured_order() {
        let aws = fake(fake_aws()).await;
        let gcp = fake(fake_gcp()).await;
        let azure = fake(fake_azure("1")).await;
        let env = |_: &str| Some("from-env".to_string());
        for (order, rack) in [
            (
                vec![RackSource::Env, RackSource::Aws, RackSource::Gcp],
                "from-env",
            ),
            (vec![RackSource::Gcp, RackSource::Aws], "europe-west1-b"),
            (vec![RackSource::Azure, RackSource::Env], "westeurope-1"),
            (vec![RackSource::Aws, RackSource::Env], "use1-az1"),
        ] {
            let found = discover(&config(&order, &aws, &gcp, &azure), env)
                .await
                .unwrap();
            assert_eq!(found.rack, rack, "{order:?}");
        }
    }

    #[tokio::test]
    async fn nothing_found_reports_every_source() {
        let none = closed().await;
        let wrong = fake(Arc::new(|_, _, _| (404, vec![], String::new()))).await;
        let all = [
            RackSource::Env,
            RackSource::Aws,
            RackSource::Gcp,
            RackSource::Azure,
        ];
        let err = discover(&config(&all, &wrong, &none, &wrong), no_env)
            .await
            .unwrap_err();
        assert_eq!(err.attempts.len(), 4, "{err}");
        let text = err.to_string();
        assert!(text.starts_with("broker.rack=auto found no rack"), "{text}");
        assert!(
            text.contains("env (environment variable SHOAL_RACK): not set"),
            "{text}"
        );
        assert!(text.contains("aws (AWS IMDSv2"), "{text}");
        assert!(text.contains("HTTP status 404"), "{text}");
        assert!(text.contains("gcp (GCP metadata"), "{text}");
        assert!(text.contains("azure (Azure IMDS"), "{text}");
    }

    #[tokio::test]
    async fn a_silent_metadata_service_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let silent = HttpUrl::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
        let mut cfg = config(&[RackSource::Aws], &silent, &silent, &silent);
        cfg.timeout_ms = 100;
        let err = discover(&cfg, no_env).await.unwrap_err();
        assert!(err.to_string().contains("no response within"), "{err}");
        drop(listener);
    }
}
