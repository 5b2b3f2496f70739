//! The admin API's listener: accepting connections so that clients, slow
//! or hostile, can never take what delivery needs.
//!
//! - a request's head must arrive within `header_read_timeout` (slowloris);
//! - a connection with no bytes either way for `idle_timeout` is closed;
//! - at most `max_connections` are open at once; past that, accepting
//!   waits (the kernel's backlog holds the rest) until one closes;
//! - that cap is also held under a quarter of the process's open-file
//!   limit, so however many clients connect, three quarters of the file
//!   descriptors stay for delivery (sockets to receivers, Redis);
//! - `accept` failing for lack of descriptors waits a moment instead of
//!   spinning.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt;

/// How the listener treats connections (`[admin]` settings).
#[derive(Debug, Clone, Copy)]
pub struct ListenerSettings {
    /// Most connections served at once (held under a quarter of the open-file limit).
    pub max_connections: usize,
    /// Longest a client may take to send a request's head.
    pub header_read_timeout: Duration,
    /// Longest a kept-alive connection may sit idle.
    pub idle_timeout: Duration,
}

/// The connection cap: the setting, held under a quarter of the process's
/// open-file limit when that is known.
pub fn connection_cap(settings: &ListenerSettings) -> usize {
    let fd_share = open_file_limit().map(|n| (n / 4).max(1) as usize);
    settings
        .max_connections
        .max(1)
        .min(fd_share.unwrap_or(usize::MAX))
}

/// The soft limit on open files, from `/proc/self/limits` (Linux; `None`
/// elsewhere or when unlimited).
fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Serves `app` on `listener` until `shutdown` turns true, then lets open
/// requests finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    settings: ListenerSettings,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let cap = connection_cap(&settings);
    tracing::debug!(max_connections = cap, "admin listener");
    let slots = Arc::new(Semaphore::new(cap));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout)
        .keep_alive(true);
    let builder = Arc::new(builder);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot,
            _ = stopped(&mut shutdown) => break,
        };
        let Ok(slot) = slot else { break };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors (EMFILE/ENFILE) or a connection
                    // reset before it was taken: wait, do not spin.
                    tracing::warn!(error = %e, "admin listener: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stopped(&mut shutdown) => break,
        };
        let _ = stream.set_nodelay(true);
        let (app, builder, mut stop) = (app.clone(), builder.clone(), shutdown.clone());
        let idle_timeout = settings.idle_timeout;
        connections.spawn(async move {
            let _slot = slot;
            let activity = Arc::new(AtomicU64::new(0));
            let started = Instant::now();
            let io = TokioIo::new(Tracked {
                inner: stream,
                activity: activity.clone(),
                started,
            });
            let service = hyper::service::service_fn(
                move |mut req: hyper::Request<hyper::body::Incoming>| {
                    // The peer address keys the rate limit of requests without a valid key.
                    req.extensions_mut()
                        .insert(axum::extract::ConnectInfo::<SocketAddr>(peer));
                    app.clone().oneshot(req.map(axum::body::Body::new))
                },
            );
            let conn = builder.serve_connection(io, service);
            tokio::pin!(conn);
            let mut stopping = false;
            loop {
                let last = Duration::from_millis(activity.load(Ordering::Relaxed));
                let idle_until = tokio::time::Instant::from_std(started + last + idle_timeout);
                tokio::select! {
                    _ = conn.as_mut() => break,
                    _ = tokio::time::sleep_until(idle_until) => {
                        let last = Duration::from_millis(activity.load(Ordering::Relaxed));
                        if started.elapsed() >= last + idle_timeout {
                            break; // idle: dropped, the socket closes
                        }
                    }
                    _ = stopped(&mut stop), if !stopping => {
                        stopping = true;
                        conn.as_mut().graceful_shutdown();
                    }
                }
            }
        });
    }
    // Open requests finish (each is bounded by the request timeout).
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    Ok(())
}

/// Returns once `shutdown` turns true (the guard it reads is never held
/// across an await).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// A socket that notes when bytes last moved (ms since `started`).
struct Tracked<T> {
    inner: T,
    activity: Arc<AtomicU64>,
    started: Instant,
}

impl<T> Tracked<T> {
    fn touch(&self) {
        self.activity
            .store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.touch();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_three_quarters_of_the_descriptors_to_delivery() {
        let settings = ListenerSettings {
            max_connections: usize::MAX,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        };
        let cap = connection_cap(&settings);
        if let Some(limit) = open_file_limit() {
            assert_eq!(cap as u64, (limit / 4).max(1));
        }
        let small = ListenerSettings {
            max_connections: 3,
            ..settings
        };
        assert_eq!(connection_cap(&small), 3);
    }
}
