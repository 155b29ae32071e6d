//! The Prometheus endpoint on `metrics.listener`.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::FetchMetrics;
use crate::http::HttpUrl;
use crate::http::server::{self, Actions, Resource};
use crate::metadata::MetadataStore;

struct Exposition {
    metrics: Arc<FetchMetrics>,
    metadata: Arc<dyn MetadataStore>,
}

impl Resource for Exposition {
    fn content_type(&self) -> &'static str {
        "text/plain; version=0.0.4; charset=utf-8"
    }

    fn render(&self) -> String {
        let image = self.metadata.image();
        self.metrics
            .retain_topics(|id| image.topic_by_id(id).is_some());
        self.metrics.render()
    }
}

/// Binds `url`'s host and port and serves the metrics on its path (and `actions`, the test
/// fault endpoints, when given) until `shutdown` fires; returns the bound address (the port is
/// the kernel's choice for port 0).
pub async fn start(
    url: &HttpUrl,
    metrics: Arc<FetchMetrics>,
    metadata: Arc<dyn MetadataStore>,
    actions: Option<Arc<dyn Actions>>,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(url.authority()).await?;
    let local = listener.local_addr()?;
    let task = tokio::spawn(server::serve(
        listener,
        url.path.clone(),
        Arc::new(Exposition { metrics, metadata }),
        actions,
        shutdown,
    ));
    Ok((local, task))
}
