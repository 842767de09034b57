//! Which HTTP a backend speaks: API calls on one multiplexed connection where
//! the server allows it, transfers on connections of their own.
//!
//! Both services offer HTTP/2 over TLS, chosen by ALPN. HTTP/2 carries any
//! number of small API calls on one warm connection (no handshake per call,
//! no connection per call in flight), but every stream of a connection shares
//! that connection's congestion window: parallel ranged reads or an upload on
//! it would move no faster than one TCP connection. So the API client speaks
//! the [`HttpVersion`] chosen, and transfers (resumable chunks, upload
//! fragments, ranged reads) always go on HTTP/1.1 connections of their own.
//!
//! What hyper (and so reqwest) does, checked before writing anything here: on
//! HTTP/2 it keeps one connection per origin and queues calls beyond the
//! server's stream limit instead of dialling another (RFC 9113 §9.1;
//! hyperium/hyper#2197), which caps the API's connections at one per origin;
//! on HTTP/1.1 it caps only idle connections per host, never open ones
//! (hyperium/hyper#1641, #2236), so transfers open one connection per stream
//! in flight.
//!
//! No hard cap is added on top: reqwest's `connector_layer` sees neither the
//! URI nor the life of the connection it makes, so a cap could only count
//! requests, and a cap on bodies that callers read at their own pace can
//! deadlock a caller that holds a download open while it uploads.

/// The HTTP versions a backend's API calls speak.
///
/// ```
/// use storage_core::protocol::HttpVersion;
/// assert_eq!(HttpVersion::default(), HttpVersion::Negotiated);
/// let (api, transfers) = storage_core::protocol::clients(HttpVersion::H2c, reqwest::Client::builder)?;
/// # let _ = (api, transfers);
/// # Ok::<(), reqwest::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum HttpVersion {
    /// HTTP/2 where TLS negotiates it (ALPN), else HTTP/1.1: right for the
    /// real services.
    #[default]
    Negotiated,
    /// HTTP/1.1 only: a connection per call in flight.
    Http1,
    /// HTTP/2 by prior knowledge, without TLS on a loopback endpoint (h2c):
    /// for an emulator that speaks it, such as `storage-emulator`. On https it
    /// insists on HTTP/2.
    H2c,
}

impl HttpVersion {
    /// Sets this version on the builder of an API client.
    pub fn api_client(self, builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
        match self {
            Self::Negotiated => builder,
            Self::Http1 => builder.http1_only(),
            Self::H2c => builder.http2_prior_knowledge(),
        }
    }
}

/// An API client speaking `version` and a transfer client on HTTP/1.1, each
/// from a builder `builder` makes: each transfer stream then has a TCP
/// connection, and its rate, of its own. On [`HttpVersion::Http1`] every call
/// has a connection of its own anyway, so one client serves both and one pool
/// keeps idle connections for both.
///
/// # Errors
/// reqwest's, when a client cannot be built (its TLS backend fails to start).
pub fn clients(
    version: HttpVersion,
    builder: impl Fn() -> reqwest::ClientBuilder,
) -> reqwest::Result<(reqwest::Client, reqwest::Client)> {
    let api = version.api_client(builder()).build()?;
    let transfer = match version {
        HttpVersion::Http1 => api.clone(),
        _ => transfer_client(builder()).build()?,
    };
    Ok((api, transfer))
}

/// Sets what a transfer client speaks on its builder: HTTP/1.1, whatever the
/// API speaks, so that each transfer stream has a TCP connection of its own.
/// For a backend that needs the transfer client alone.
pub fn transfer_client(builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
    builder.http1_only()
}
