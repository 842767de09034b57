//! An emulated network link between the client and the emulator: round-trip
//! time, connection setup and bandwidth, so that a client on loopback meets
//! the costs of a real WAN (round trips per operation, new connections, idle
//! link time between sequential requests).
//!
//! - **Latency.** Half the RTT passes before a request is handled, and half
//!   before its response starts.
//! - **Connection setup.** A new TCP connection waits `setup` (default 2 × RTT,
//!   standing for the TCP and TLS handshakes) before its first request is read.
//! - **Bandwidth.** Token buckets, one per connection and one for the whole
//!   link, in each direction, charged for bytes as they cross the socket: the
//!   shaping holds no body, it only delays the next read or write.
//!
//! A profile applies to the connections opened after it is set; connections
//! already open keep the one they started with.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tokio::time::Instant;

/// The shape of an emulated link, written `rtt=40ms,rate=400mbit,conn_rate=200mbit`
/// (and optionally `setup=80ms`) on the command line, in the control API and in
/// JSON.
///
/// ```
/// use std::time::Duration;
/// use storage_emulator::LinkProfile;
///
/// let far: LinkProfile = "rtt=80ms,rate=200mbit,conn_rate=100mbit".parse()?;
/// assert_eq!(far.rtt(), Duration::from_millis(80));
/// assert_eq!(far.setup(), Duration::from_millis(160)); // 2 × RTT by default
/// assert_eq!(far.rate_bits(), Some(200_000_000));
/// assert_eq!(far.to_string(), "rtt=80ms,rate=200mbit,conn_rate=100mbit");
/// # Ok::<(), storage_emulator::LinkProfileError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkProfile {
    rtt: Duration,
    setup: Option<Duration>,
    rate_bits: Option<u64>,
    conn_rate_bits: Option<u64>,
}

impl LinkProfile {
    /// A link with this round-trip time and no bandwidth limit.
    #[must_use]
    pub fn new(rtt: Duration) -> Self {
        Self {
            rtt,
            setup: None,
            rate_bits: None,
            conn_rate_bits: None,
        }
    }

    /// The whole link's rate in bits per second, in each direction.
    #[must_use]
    pub fn rate(mut self, bits_per_second: u64) -> Self {
        self.rate_bits = Some(bits_per_second);
        self
    }

    /// Each connection's rate in bits per second, in each direction.
    #[must_use]
    pub fn conn_rate(mut self, bits_per_second: u64) -> Self {
        self.conn_rate_bits = Some(bits_per_second);
        self
    }

    /// What a new connection waits before its first request (default 2 × RTT).
    #[must_use]
    pub fn with_setup(mut self, setup: Duration) -> Self {
        self.setup = Some(setup);
        self
    }

    /// The round-trip time.
    #[must_use]
    pub fn rtt(&self) -> Duration {
        self.rtt
    }

    /// What a new connection waits before its first request.
    #[must_use]
    pub fn setup(&self) -> Duration {
        self.setup.unwrap_or(self.rtt * 2)
    }

    /// The link's rate in bits per second, `None` when unlimited.
    #[must_use]
    pub fn rate_bits(&self) -> Option<u64> {
        self.rate_bits
    }

    /// A connection's rate in bits per second, `None` when unlimited.
    #[must_use]
    pub fn conn_rate_bits(&self) -> Option<u64> {
        self.conn_rate_bits
    }
}

/// Why a link profile did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid link profile {text:?}: {why}")]
pub struct LinkProfileError {
    text: String,
    why: &'static str,
}

impl FromStr for LinkProfile {
    type Err = LinkProfileError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let fail = |why| LinkProfileError {
            text: text.to_owned(),
            why,
        };
        let mut profile = Self::new(Duration::ZERO);
        let mut rtt = None;
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part.split_once('=').ok_or_else(|| fail("expected key=value pairs"))?;
            match key.trim() {
                "rtt" => rtt = Some(duration(value).ok_or_else(|| fail("rtt takes a duration such as 40ms"))?),
                "setup" => {
                    profile.setup = Some(duration(value).ok_or_else(|| fail("setup takes a duration such as 80ms"))?);
                }
                "rate" => {
                    profile.rate_bits = Some(rate(value).ok_or_else(|| fail("rate takes a rate such as 400mbit"))?)
                }
                "conn_rate" => {
                    profile.conn_rate_bits =
                        Some(rate(value).ok_or_else(|| fail("conn_rate takes a rate such as 200mbit"))?);
                }
                _ => return Err(fail("known keys are rtt, setup, rate and conn_rate")),
            }
        }
        profile.rtt = rtt.ok_or_else(|| fail("rtt is required"))?;
        Ok(profile)
    }
}

/// `40ms`, `1.5s`, `500us`.
fn duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let (number, scale) = [("us", 1e-6), ("ms", 1e-3), ("s", 1.0)]
        .into_iter()
        .find_map(|(unit, scale)| text.strip_suffix(unit).map(|n| (n, scale)))?;
    let secs = number.trim().parse::<f64>().ok()? * scale;
    (0.0..3600.0).contains(&secs).then(|| Duration::from_secs_f64(secs))
}

/// `400mbit`, `1gbit`, `64kbit`, `9600bit`, in the units of tc(8).
fn rate(text: &str) -> Option<u64> {
    let text = text.trim().to_ascii_lowercase();
    let (number, scale) = [("gbit", 1e9), ("mbit", 1e6), ("kbit", 1e3), ("bit", 1.0)]
        .into_iter()
        .find_map(|(unit, scale)| text.strip_suffix(unit).map(|n| (n.to_owned(), scale)))?;
    let bits = number.trim().parse::<f64>().ok()? * scale;
    (1.0..=1e13).contains(&bits).then_some(bits as u64)
}

impl fmt::Display for LinkProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rtt={}", show_duration(self.rtt))?;
        if let Some(setup) = self.setup {
            write!(f, ",setup={}", show_duration(setup))?;
        }
        if let Some(r) = self.rate_bits {
            write!(f, ",rate={}", show_rate(r))?;
        }
        if let Some(r) = self.conn_rate_bits {
            write!(f, ",conn_rate={}", show_rate(r))?;
        }
        Ok(())
    }
}

fn show_duration(d: Duration) -> String {
    if d.subsec_micros().is_multiple_of(1000) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}us", d.as_micros())
    }
}

fn show_rate(bits: u64) -> String {
    for (unit, scale) in [("gbit", 1_000_000_000), ("mbit", 1_000_000), ("kbit", 1_000)] {
        if bits.is_multiple_of(scale) {
            return format!("{}{unit}", bits / scale);
        }
    }
    format!("{bits}bit")
}

impl Serialize for LinkProfile {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for LinkProfile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A token bucket that lends: a charge always succeeds and says until when
/// the caller must wait for the debt to be paid back, so that bytes already
/// read or written are never held.
#[derive(Debug)]
struct Bucket {
    bytes_per_second: f64,
    /// The most credit that builds up while idle.
    burst: f64,
    /// (tokens, when they were counted); negative tokens are debt.
    state: Mutex<(f64, Instant)>,
}

impl Bucket {
    fn new(bits_per_second: u64) -> Self {
        let bytes_per_second = bits_per_second as f64 / 8.0;
        // 5 ms of traffic, at least 16 KiB: enough to ride over the timer's
        // millisecond granularity without letting a burst distort the rate.
        let burst = (bytes_per_second * 0.005).max(16_384.0);
        Self {
            bytes_per_second,
            burst,
            state: Mutex::new((burst, Instant::now())),
        }
    }

    /// Charges `bytes`; `Some(when)` if the caller must wait until then.
    fn charge(&self, bytes: usize) -> Option<Instant> {
        let now = Instant::now();
        let mut state = self.state.lock();
        let (tokens, at) = *state;
        let refilled = (tokens + now.duration_since(at).as_secs_f64() * self.bytes_per_second).min(self.burst);
        let left = refilled - bytes as f64;
        *state = (left, now);
        (left < 0.0).then(|| now + Duration::from_secs_f64(-left / self.bytes_per_second))
    }
}

/// Both directions of a rate.
#[derive(Debug)]
struct Duplex {
    /// Client to emulator.
    up: Bucket,
    /// Emulator to client.
    down: Bucket,
}

impl Duplex {
    fn new(bits: Option<u64>) -> Option<Self> {
        bits.map(|b| Self {
            up: Bucket::new(b),
            down: Bucket::new(b),
        })
    }
}

/// A profile in force, with the link-wide buckets every connection shares.
#[derive(Debug)]
struct ActiveLink {
    profile: LinkProfile,
    link: Option<Duplex>,
}

/// The link settings of one emulator; [`Link::connection`] gives each new
/// connection its shaper.
#[derive(Debug, Default)]
pub(crate) struct Link {
    current: RwLock<Option<Arc<ActiveLink>>>,
}

impl Link {
    /// Sets (or with `None` removes) the profile for connections opened from now on.
    pub(crate) fn set(&self, profile: Option<LinkProfile>) {
        *self.current.write() = profile.map(|profile| {
            Arc::new(ActiveLink {
                link: Duplex::new(profile.rate_bits),
                profile,
            })
        });
    }

    /// The profile in force.
    pub(crate) fn profile(&self) -> Option<LinkProfile> {
        self.current.read().as_ref().map(|a| a.profile)
    }

    /// A shaper for a connection opened now, `None` when no profile is set.
    pub(crate) fn connection(&self) -> Option<Arc<ConnShaper>> {
        let active = self.current.read().clone()?;
        Some(Arc::new(ConnShaper {
            conn: Duplex::new(active.profile.conn_rate_bits),
            active,
        }))
    }
}

/// One connection's view of the link.
#[derive(Debug)]
pub(crate) struct ConnShaper {
    active: Arc<ActiveLink>,
    conn: Option<Duplex>,
}

/// Which way bytes travel.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Direction {
    /// Client to emulator: request bytes read.
    Up,
    /// Emulator to client: response bytes written.
    Down,
}

impl ConnShaper {
    /// Half the round trip: waited before a request is handled, and again
    /// before its response starts.
    pub(crate) fn half_rtt(&self) -> Duration {
        self.active.profile.rtt / 2
    }

    /// What the connection waits before its first request.
    pub(crate) fn setup(&self) -> Duration {
        self.active.profile.setup()
    }

    /// Whether bytes are rate-limited at all.
    pub(crate) fn shapes_bytes(&self) -> bool {
        self.conn.is_some() || self.active.link.is_some()
    }

    /// Charges `bytes` that crossed the socket; until when the next read (or
    /// write) in that direction must wait.
    pub(crate) fn charge(&self, direction: Direction, bytes: usize) -> Option<Instant> {
        let pick = |d: &Duplex| match direction {
            Direction::Up => d.up.charge(bytes),
            Direction::Down => d.down.charge(bytes),
        };
        let conn = self.conn.as_ref().and_then(pick);
        let link = self.active.link.as_ref().and_then(pick);
        conn.max(link)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_parse_and_print() {
        let p: LinkProfile = "rtt=40ms,rate=400mbit,conn_rate=200mbit".parse().unwrap();
        assert_eq!(p.rtt(), Duration::from_millis(40));
        assert_eq!(p.setup(), Duration::from_millis(80));
        assert_eq!(p.rate_bits(), Some(400_000_000));
        assert_eq!(p.conn_rate_bits(), Some(200_000_000));
        assert_eq!(p.to_string(), "rtt=40ms,rate=400mbit,conn_rate=200mbit");
        let q: LinkProfile = " rtt=1.5s , setup=0ms, rate=1gbit,conn_rate=64kbit".parse().unwrap();
        assert_eq!(q.rtt(), Duration::from_millis(1500));
        assert_eq!(q.setup(), Duration::ZERO);
        assert_eq!(q.to_string(), "rtt=1500ms,setup=0ms,rate=1gbit,conn_rate=64kbit");
        assert_eq!(q.to_string().parse::<LinkProfile>().unwrap(), q);
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(json, "\"rtt=40ms,rate=400mbit,conn_rate=200mbit\"");
        assert_eq!(serde_json::from_str::<LinkProfile>(&json).unwrap(), p);
        for bad in [
            "",
            "rate=1mbit",
            "rtt=40",
            "rtt=-1ms",
            "rtt=40ms,rate=0bit",
            "rtt=40ms,rate=fast",
            "rtt=40ms,mtu=1500",
            "rtt",
        ] {
            assert!(bad.parse::<LinkProfile>().is_err(), "{bad}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_bucket_lends_and_asks_for_the_time_the_debt_takes() {
        // 8 Mbit/s = 1 MB/s; the burst is 16 KiB.
        let b = Bucket::new(8_000_000);
        assert_eq!(b.charge(16_384), None, "the burst is free");
        let t0 = Instant::now();
        let until = b.charge(100_000).unwrap();
        assert_eq!(until - t0, Duration::from_millis(100));
        tokio::time::advance(Duration::from_millis(100)).await;
        assert_eq!(b.charge(0), None, "the debt is paid");
        // Idle time builds credit up to the burst, not beyond.
        tokio::time::advance(Duration::from_secs(10)).await;
        let t1 = Instant::now();
        let until = b.charge(16_384 + 50_000).unwrap();
        assert_eq!(until - t1, Duration::from_millis(50));
    }
}
