//! The accept loop: one task per TCP connection, each with an id and a kill switch so that
//! faults can reset or close the connection from inside a handler.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};

use crate::journal::Origin;
use crate::state::Shared;

/// How a killed connection ends.
#[derive(Debug, Default)]
pub(crate) struct Kill {
    notify: Notify,
    reset: AtomicBool,
}

impl Kill {
    /// Ends the connection: with `reset`, by RST (SO_LINGER 0), otherwise by an orderly close.
    pub(crate) fn fire(&self, reset: bool) {
        self.reset.store(reset, Ordering::SeqCst);
        self.notify.notify_one();
    }
}

/// Per-connection facts, inserted into every request's extensions.
#[derive(Debug, Clone)]
pub(crate) struct ConnInfo {
    pub id: u64,
    /// The peer's address: the control API answers loopback peers only.
    pub peer: std::net::SocketAddr,
    pub origin: Origin,
    pub kill: Arc<Kill>,
}

/// Serves `router` on `listener` until `shutdown` turns true.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    shared: Arc<Shared>,
    origin: Origin,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => break,
        };
        let Ok((stream, peer)) = accepted else {
            // Accept errors (e.g. too many open files) are transient; keep serving.
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            continue;
        };
        let id = shared.next_connection.fetch_add(1, Ordering::SeqCst) + 1;
        let router = router.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(serve_connection(stream, peer, router, origin, id, shutdown));
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: std::net::SocketAddr,
    router: Router,
    origin: Origin,
    id: u64,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let stream = Arc::new(stream);
    let kill = Arc::new(Kill::default());
    let info = ConnInfo {
        id,
        peer,
        origin,
        kill: Arc::clone(&kill),
    };
    let tower = TowerToHyperService::new(router);
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(info.clone());
        hyper::service::Service::call(&tower, req)
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(SharedIo(Arc::clone(&stream))), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        () = kill.notify.notified() => {
            if kill.reset.load(Ordering::SeqCst) {
                // SO_LINGER 0 makes close() send RST instead of FIN (RFC 9293 §3.6,
                // "ABORT"; Linux socket(7) SO_LINGER).
                let _ = stream.set_zero_linger();
            }
        }
        _ = shutdown.changed() => {}
    }
}

/// A TCP stream shared between hyper and the connection task, so the task can still set
/// socket options (SO_LINGER) after hyper took the stream.
#[derive(Debug)]
struct SharedIo(Arc<TcpStream>);

impl AsyncRead for SharedIo {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        loop {
            ready!(self.0.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match self.0.try_read(unfilled) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for SharedIo {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.0.poll_write_ready(cx))?;
            match self.0.try_write(buf) {
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The socket closes when the last handle drops, right after hyper finishes.
        Poll::Ready(Ok(()))
    }
}
