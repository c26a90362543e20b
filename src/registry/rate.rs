//! How patient a transfer is with a slow registry: a minimum rate over a sliding window
//! and an overall deadline. A registry (or anything between us and it) that drips one
//! byte every few seconds never trips a per-read timeout and would hold a pull, and a
//! server worker, for as long as it likes. A stream that falls below the rate fails with
//! `TimedOut`, which the pull retries like any broken stream; the deadline ends the whole
//! operation, retries included.

use std::io::{self, Read};
use std::time::{Duration, Instant};

/// Limits on the speed and length of registry transfers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransferLimits {
    /// No byte for this long ends a read (and the length of the rate window).
    pub idle_timeout: Duration,
    /// Bytes per second a stream must average over each `idle_timeout` window. 1 KiB/s
    /// is far below any working link, far above a drip.
    pub min_rate: u64,
    /// The whole pull or push must end by then, retries included; `None`: no deadline.
    pub deadline: Option<Duration>,
}

impl Default for TransferLimits {
    fn default() -> TransferLimits {
        TransferLimits {
            idle_timeout: Duration::from_secs(30),
            min_rate: 1024,
            deadline: None,
        }
    }
}

/// A reader that fails with `TimedOut` when the bytes of a window fall short of the rate,
/// or when the deadline has passed.
pub(crate) struct RateGuard<R> {
    inner: R,
    window: Duration,
    min_bytes: u64,
    deadline: Option<Instant>,
    window_start: Instant,
    window_bytes: u64,
}

impl<R> RateGuard<R> {
    pub(crate) fn new(inner: R, limits: &TransferLimits, deadline: Option<Instant>) -> Self {
        let window = limits.idle_timeout.max(Duration::from_millis(1));
        RateGuard {
            inner,
            window,
            min_bytes: (u128::from(limits.min_rate) * window.as_millis() / 1000) as u64,
            deadline,
            window_start: Instant::now(),
            window_bytes: 0,
        }
    }
}

impl<R: Read> Read for RateGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the transfer deadline passed",
            ));
        }
        let n = self.inner.read(buf)?;
        self.window_bytes += n as u64;
        let elapsed = self.window_start.elapsed();
        if elapsed >= self.window {
            if self.window_bytes < self.min_bytes {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "the registry sent {} bytes in {:.1} s, below the minimum of {} bytes per {:.1} s",
                        self.window_bytes,
                        elapsed.as_secs_f64(),
                        self.min_bytes,
                        self.window.as_secs_f64()
                    ),
                ));
            }
            self.window_start = Instant::now();
            self.window_bytes = 0;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One byte per read, each read taking `delay`.
    struct Drip(Duration);

    impl Read for Drip {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            std::thread::sleep(self.0);
            buf[0] = b'x';
            Ok(1)
        }
    }

    #[test]
    fn a_drip_fails_after_one_window_and_a_fast_stream_passes() {
        let limits = TransferLimits {
            idle_timeout: Duration::from_millis(100),
            min_rate: 1000,
            deadline: None,
        };
        let mut slow = RateGuard::new(Drip(Duration::from_millis(20)), &limits, None);
        let started = Instant::now();
        let error = io::copy(&mut slow, &mut io::sink()).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() < Duration::from_secs(1));

        let mut fast = RateGuard::new(io::repeat(7).take(1 << 20), &limits, None);
        assert_eq!(io::copy(&mut fast, &mut io::sink()).unwrap(), 1 << 20);

        let past = Some(Instant::now());
        let mut late = RateGuard::new(io::repeat(7).take(10), &limits, past);
        assert!(io::copy(&mut late, &mut io::sink()).is_err());
    }
}
