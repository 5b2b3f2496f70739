//! Opening connections to receivers under the network policy. Every
//! connection the sender makes goes through here, literal IPs included: the
//! host is read as the IP it spells or resolved asynchronously (hickory,
//! within the connect timeout, so a nameserver that never answers holds no
//! thread), each address is checked against the policy, and the address the
//! socket actually connected to is checked again before a byte is written.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hookd_core::network::NetworkPolicy;
use http::Uri;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Why no connection was made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The destination is internal and the policy does not allow it. The
    /// message names the host as the endpoint gave it, never what it resolved
    /// to (that would let a tenant map internal DNS).
    #[error("blocked by network policy: {0}")]
    Blocked(String),
    /// The host name did not resolve.
    #[error("could not resolve {0}")]
    Dns(String),
    /// No address of the host accepted a connection.
    #[error("could not connect: {0}")]
    Connect(#[source] std::io::Error),
    /// No address answered within the connect timeout.
    #[error("connect timed out")]
    Timeout,
    /// The URL names no host to connect to.
    #[error("the URL has no host")]
    NoHost,
}

impl ConnectError {
    /// Refused: `host` (as the endpoint gave it) is or resolves to an internal address.
    fn internal(host: &str) -> Self {
        Self::Blocked(format!("{host} is or resolves to an internal address"))
    }
}

/// A hyper connector that resolves and connects under a [`NetworkPolicy`].
#[derive(Clone)]
pub struct PolicyConnector {
    policy: Arc<NetworkPolicy>,
    resolver: Arc<TokioResolver>,
    timeout: Duration,
}

impl PolicyConnector {
    /// Resolves with `nameservers` (UDP and TCP), or with the system's
    /// configuration (`/etc/resolv.conf`, hosts file) when there are none.
    pub fn new(
        policy: NetworkPolicy,
        timeout: Duration,
        nameservers: &[SocketAddr],
    ) -> std::io::Result<Self> {
        let builder = if nameservers.is_empty() {
            TokioResolver::builder_tokio().map_err(std::io::Error::other)?
        } else {
            let servers = nameservers
                .iter()
                .map(|a| {
                    let on_port = |mut c: ConnectionConfig| {
                        c.port = a.port();
                        c
                    };
                    NameServerConfig::new(
                        a.ip(),
                        true,
                        vec![
                            on_port(ConnectionConfig::udp()),
                            on_port(ConnectionConfig::tcp()),
                        ],
                    )
                })
                .collect();
            TokioResolver::builder_with_config(
                ResolverConfig::from_name_servers(servers),
                TokioRuntimeProvider::default(),
            )
        };
        let resolver = builder.build().map_err(std::io::Error::other)?;
        Ok(Self {
            policy: Arc::new(policy),
            resolver: Arc::new(resolver),
            timeout,
        })
    }

    async fn connect(self, uri: Uri) -> Result<TokioIo<TcpStream>, ConnectError> {
        let host = uri.host().ok_or(ConnectError::NoHost)?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = uri
            .port_u16()
            .unwrap_or(if uri.scheme_str() == Some("https") {
                443
            } else {
                80
            });
        let candidates: Vec<IpAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => self
                .resolver
                .lookup_ip(host)
                .await
                .map_err(|_| ConnectError::Dns(host.to_string()))?
                .iter()
                .collect(),
        };
        let allowed: Vec<IpAddr> = candidates
            .iter()
            .copied()
            .filter(|ip| self.policy.permits(*ip))
            .collect();
        if allowed.is_empty() {
            return Err(if candidates.is_empty() {
                ConnectError::Dns(host.to_string())
            } else {
                ConnectError::internal(host)
            });
        }
        let mut last = None;
        for ip in allowed {
            match TcpStream::connect(SocketAddr::new(ip, port)).await {
                Ok(stream) => {
                    // The address the socket reached, whatever led to it.
                    let peer = stream.peer_addr().map_err(ConnectError::Connect)?;
                    if !self.policy.permits(peer.ip()) {
                        return Err(ConnectError::internal(host));
                    }
                    let _ = stream.set_nodelay(true);
                    return Ok(TokioIo::new(stream));
                }
                Err(e) => last = Some(e),
            }
        }
        Err(ConnectError::Connect(last.unwrap_or_else(|| {
            std::io::Error::other("no address to connect to")
        })))
    }
}

impl tower_service::Service<Uri> for PolicyConnector {
    type Response = TokioIo<TcpStream>;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, ConnectError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ConnectError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let this = self.clone();
        let timeout = self.timeout;
        Box::pin(async move {
            tokio::time::timeout(timeout, this.connect(uri))
                .await
                .map_err(|_| ConnectError::Timeout)?
        })
    }
}
