//! The accept loop: one task per TCP connection, each with an id and a kill switch so that
//! faults can reset or close the connection from inside a handler. A connection
//! speaks HTTP/1.1 or, by prior knowledge, HTTP/2 (h2c); on HTTP/2 a kill ends
//! every stream the connection carries, as a reset does on the real services.

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
use crate::link::{ConnShaper, Direction};
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
    /// The emulated link this connection crosses, when a profile is set.
    pub shaper: Option<Arc<ConnShaper>>,
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
        let conn = NewConnection {
            stream,
            peer,
            origin,
            id,
            shaper: shared.link.connection(),
        };
        tokio::spawn(serve_connection(conn, router, shutdown));
    }
}

/// An accepted connection and what it was given.
struct NewConnection {
    stream: TcpStream,
    peer: std::net::SocketAddr,
    origin: Origin,
    id: u64,
    shaper: Option<Arc<ConnShaper>>,
}

async fn serve_connection(conn: NewConnection, router: Router, mut shutdown: watch::Receiver<bool>) {
    let NewConnection {
        stream,
        peer,
        origin,
        id,
        shaper,
    } = conn;
    let _ = stream.set_nodelay(true);
    if let Some(shaper) = &shaper {
        // The handshakes a new connection costs on the emulated link.
        tokio::time::sleep(shaper.setup()).await;
    }
    let stream = Arc::new(stream);
    let kill = Arc::new(Kill::default());
    let io = SharedIo {
        stream: Arc::clone(&stream),
        shaper: shaper.clone().filter(|s| s.shapes_bytes()),
        read_wait: None,
        scratch: Vec::new(),
        write_wait: None,
    };
    let info = ConnInfo {
        id,
        peer,
        origin,
        kill: Arc::clone(&kill),
        shaper,
    };
    let tower = TowerToHyperService::new(router);
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(info.clone());
        hyper::service::Service::call(&tower, req)
    });
    let mut builder = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
    builder.http1().keep_alive(true);
    // Both services speak HTTP/2 over TLS (ALPN); over the emulator's plain
    // http a client uses it by prior knowledge (h2c, RFC 9113 §3.3), which
    // the auto builder tells from HTTP/1.1 by the connection preface. 100
    // concurrent streams: the least RFC 9113 §6.5.2 recommends, and the
    // stricter reading (neither service documents its figure).
    builder.http2().max_concurrent_streams(MAX_STREAMS);
    let conn = builder.serve_connection(TokioIo::new(io), service);
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

/// The streams one HTTP/2 connection may carry at once.
pub(crate) const MAX_STREAMS: u32 = 100;

/// The most bytes one read or write moves on a shaped connection, so that
/// the buckets are charged in small steps.
const SHAPED_STEP: usize = 16 * 1024;

/// A TCP stream shared between hyper and the connection task, so the task can still set
/// socket options (SO_LINGER) after hyper took the stream. On an emulated link it
/// waits after each read or write until the link's buckets have paid for it.
#[derive(Debug)]
struct SharedIo {
    stream: Arc<TcpStream>,
    shaper: Option<Arc<ConnShaper>>,
    read_wait: Option<Pin<Box<tokio::time::Sleep>>>,
    write_wait: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Where a read lands before it is copied into hyper's buffer. It grows to
    /// the largest read so far, zeroed once. Reading straight into hyper's
    /// buffer would zero all of its free space on every read (hyper hands it
    /// over uninitialised, and reading safely needs it initialised):
    /// `cargo xtask bench`, profiled, spent 2.3 % of all CPU in that `memset`.
    scratch: Vec<u8>,
}

/// Waits out a pending pause; `Pending` while it lasts.
fn pause(wait: &mut Option<Pin<Box<tokio::time::Sleep>>>, cx: &mut Context<'_>) -> Poll<()> {
    if let Some(sleep) = wait {
        ready!(sleep.as_mut().poll(cx));
        *wait = None;
    }
    Poll::Ready(())
}

/// The pause that pays for `n` bytes that crossed in `direction`.
fn charge(shaper: Option<&ConnShaper>, direction: Direction, n: usize) -> Option<Pin<Box<tokio::time::Sleep>>> {
    let until = shaper?.charge(direction, n)?;
    Some(Box::pin(tokio::time::sleep_until(until)))
}

impl AsyncRead for SharedIo {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        ready!(pause(&mut this.read_wait, cx));
        let step = if this.shaper.is_some() { SHAPED_STEP } else { usize::MAX };
        let len = buf.remaining().min(step);
        if this.scratch.len() < len {
            this.scratch.resize(len, 0);
        }
        loop {
            ready!(this.stream.poll_read_ready(cx))?;
            match this.stream.try_read(&mut this.scratch[..len]) {
                Ok(n) => {
                    buf.put_slice(&this.scratch[..n]);
                    this.read_wait = charge(this.shaper.as_deref(), Direction::Up, n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for SharedIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        ready!(pause(&mut this.write_wait, cx));
        let step = if this.shaper.is_some() { SHAPED_STEP } else { usize::MAX };
        let buf = &buf[..buf.len().min(step)];
        loop {
            ready!(this.stream.poll_write_ready(cx))?;
            match this.stream.try_write(buf) {
                Ok(n) => {
                    this.write_wait = charge(this.shaper.as_deref(), Direction::Down, n);
                    return Poll::Ready(Ok(n));
                }
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
