//! A few HTTP/2 connections to Drive's API origin instead of one, used in
//! order: a call goes on the first one with a free stream.
//!
//! hyper's pool keeps one HTTP/2 connection per origin and never dials a
//! second when the server's stream limit is reached: the calls past it wait
//! for a stream to end (<https://github.com/hyperium/hyper/issues/2197>,
//! <https://github.com/hyperium/hyper/issues/3623>; RFC 9113 §9.1 says a
//! client "SHOULD NOT" open more than one). An application shares one
//! [`DrivePool`](crate::DrivePool) between all its users' connections, so more
//! calls in flight than one connection's streams is an ordinary load there,
//! and each call past the limit would wait a round trip or more. So the pool
//! holds a few hyper clients, each with a pool of its own, and these lanes
//! count the calls each one carries. A light load stays on the first lane,
//! one connection, as before; the next lane's connection opens only when the
//! first one's streams are all taken.
//!
//! This module knows nothing of hyper: it hands out lane numbers.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The streams a lane carries before the next lane is used: the least that
/// RFC 9113 §6.5.2 recommends a server to allow, and the emulator's figure.
/// Google does not document its own; a server that allows more only makes
/// the next lane open a little early.
pub(crate) const STREAMS_PER_LANE: usize = 100;

/// The lanes of a pool that speaks HTTP/2: at most this many connections to
/// the API origin, whatever the load.
pub(crate) const LANES: usize = 4;

/// The calls in flight on each lane.
#[derive(Debug)]
pub(crate) struct Lanes {
    in_flight: Box<[AtomicUsize]>,
    per_lane: usize,
}

impl Lanes {
    /// `count` lanes (at least one), each full at `per_lane` calls.
    pub fn new(count: usize, per_lane: usize) -> Arc<Self> {
        Arc::new(Self {
            in_flight: (0..count.max(1)).map(|_| AtomicUsize::new(0)).collect(),
            per_lane: per_lane.max(1),
        })
    }

    /// The number of lanes.
    pub fn len(&self) -> usize {
        self.in_flight.len()
    }

    /// A place for one call: the first lane that is not full, or, when all
    /// are, the least loaded one. The ticket frees its place when dropped.
    pub fn take(self: &Arc<Self>) -> Ticket {
        for (index, load) in self.in_flight.iter().enumerate() {
            let mut now = load.load(Ordering::Relaxed);
            while now < self.per_lane {
                match load.compare_exchange_weak(now, now + 1, Ordering::AcqRel, Ordering::Relaxed) {
                    Ok(_) => return self.ticket(index),
                    Err(seen) => now = seen,
                }
            }
        }
        let index = self
            .in_flight
            .iter()
            .enumerate()
            .min_by_key(|(_, load)| load.load(Ordering::Relaxed))
            .map_or(0, |(index, _)| index);
        self.in_flight[index].fetch_add(1, Ordering::AcqRel);
        self.ticket(index)
    }

    fn ticket(self: &Arc<Self>, index: usize) -> Ticket {
        Ticket {
            lanes: Arc::clone(self),
            index,
        }
    }
}

/// One call's place on a lane, freed on drop.
#[derive(Debug)]
pub(crate) struct Ticket {
    lanes: Arc<Lanes>,
    index: usize,
}

impl Ticket {
    /// The lane's number, below [`Lanes::len`].
    pub fn index(&self) -> usize {
        self.index
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.lanes.in_flight[self.index].fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loads(lanes: &Lanes) -> Vec<usize> {
        lanes.in_flight.iter().map(|l| l.load(Ordering::SeqCst)).collect()
    }

    #[test]
    fn calls_fill_the_first_lane_before_the_next() {
        let lanes = Lanes::new(3, 2);
        let tickets: Vec<Ticket> = (0..5).map(|_| lanes.take()).collect();
        let order: Vec<usize> = tickets.iter().map(Ticket::index).collect();
        assert_eq!(order, [0, 0, 1, 1, 2]);
        assert_eq!(loads(&lanes), [2, 2, 1]);
    }

    #[test]
    fn a_freed_place_is_taken_again_on_its_own_lane() {
        let lanes = Lanes::new(2, 2);
        let a = lanes.take();
        let _b = lanes.take();
        let _c = lanes.take();
        assert_eq!(loads(&lanes), [2, 1]);
        drop(a);
        assert_eq!(loads(&lanes), [1, 1]);
        assert_eq!(lanes.take().index(), 0, "the first lane has a free stream again");
    }

    #[test]
    fn past_every_limit_the_least_loaded_lane_takes_the_call() {
        let lanes = Lanes::new(2, 1);
        let a = lanes.take();
        let b = lanes.take();
        let c = lanes.take();
        assert_eq!((a.index(), b.index(), c.index()), (0, 1, 0));
        drop(b);
        let d = lanes.take();
        assert_eq!(d.index(), 1, "the lane that has a free stream again");
        drop((a, c));
        assert_eq!(loads(&lanes), [0, 1]);
    }

    #[test]
    fn one_lane_takes_every_call() {
        let lanes = Lanes::new(1, STREAMS_PER_LANE);
        let tickets: Vec<Ticket> = (0..STREAMS_PER_LANE + 5).map(|_| lanes.take()).collect();
        assert!(tickets.iter().all(|t| t.index() == 0));
        assert_eq!(lanes.len(), 1);
    }

    #[test]
    fn concurrent_takes_never_overfill_a_lane() {
        let lanes = Lanes::new(LANES, 8);
        let held: Vec<Ticket> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..4)
                .map(|_| s.spawn(|| (0..8).map(|_| lanes.take()).collect::<Vec<_>>()))
                .collect();
            workers.into_iter().flat_map(|w| w.join().unwrap_or_default()).collect()
        });
        assert_eq!(held.len(), 32);
        assert_eq!(loads(&lanes), [8, 8, 8, 8]);
    }
}
