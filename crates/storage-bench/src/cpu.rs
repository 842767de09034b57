//! How much CPU the whole process (library, floor and the in-process emulator)
//! used: with both sides on one machine, a figure that keeps every core busy is
//! bound by the machine, not by the protocol.

use std::time::{Duration, Instant};

/// Linux's `USER_HZ`, the unit of `/proc/self/stat`'s times (100 on every
/// architecture Linux exports it for; `getconf CLK_TCK`).
const TICKS_PER_SECOND: f64 = 100.0;

/// User plus system CPU time of every thread of this process so far, or `None`
/// off Linux.
fn process_cpu() -> Option<Duration> {
    cpu_in("/proc/self/stat")
}

/// The user plus system CPU time a `/proc/…/stat` file reports.
fn cpu_in(path: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(path).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces:
    // utime and stime are fields 14 and 15 of the whole line (11 and 12 here).
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split(' ').skip(11);
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some(Duration::from_secs_f64((utime + stime) / TICKS_PER_SECOND))
}

/// A running measure of cores kept busy: CPU time over wall time since
/// [`CoresBusy::start`].
pub(crate) struct CoresBusy {
    wall: Instant,
    cpu: Option<Duration>,
}

impl CoresBusy {
    pub(crate) fn start() -> Self {
        Self {
            wall: Instant::now(),
            cpu: process_cpu(),
        }
    }

    /// Cores busy on average since the start (2.0 is both cores of a 2-core
    /// machine); `None` off Linux.
    pub(crate) fn cores(&self) -> Option<f64> {
        let cpu = process_cpu()?.checked_sub(self.cpu?)?;
        Some(cpu.as_secs_f64() / self.wall.elapsed().as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// However busy the machine, the process's CPU time includes what this
    /// thread spent: spin until the thread's own clock shows 300 ms, and the
    /// process must show at least that (less one tick of each reading), over a
    /// wall time no machine's cores can exceed.
    #[test]
    fn the_process_counts_the_cpu_a_thread_spends() {
        let thread = || cpu_in("/proc/thread-self/stat").expect("linux");
        let busy = CoresBusy::start();
        let process = process_cpu().expect("linux");
        let (t, from) = (Instant::now(), thread());
        let mut x = 0u64;
        while thread() - from < Duration::from_millis(300) {
            assert!(t.elapsed() < Duration::from_secs(60), "the thread got no CPU");
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let spent = process_cpu().expect("linux") - process;
        assert!(
            spent >= Duration::from_millis(280),
            "the process shows {spent:?} of CPU"
        );
        let wall = t.elapsed().as_secs_f64();
        let cores = busy.cores().expect("linux");
        let cpus = std::thread::available_parallelism().map_or(1, usize::from) as f64;
        assert!(cores <= cpus + 0.02 / wall, "{cores} cores busy on {cpus}");
    }
}
