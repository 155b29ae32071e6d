//! Just enough HTTP/1.1 for the broker's two small HTTP needs, on tokio with `httparse` parsing
//! the heads: a client for cloud instance-metadata services ([`client`], used by `broker.rack=auto`)
//! and a one-path server for the Prometheus endpoint ([`server`]). Plain HTTP only (both talk to
//! link-local or loopback addresses); one request per connection; every read is bounded in size
//! and time.

pub mod client;
pub mod server;
pub mod url;

pub use url::HttpUrl;
