//! Time as the resolver sees it: `now` for cache lifetimes and rate limits,
//! `sleep` for backoff and `Retry-After`. The system clock follows tokio's
//! (so `tokio::time::pause()` drives it); tests with real sockets inject a
//! [`ManualClock`] instead, because a paused tokio clock fires request
//! timeouts while a socket waits.

use futures::future::BoxFuture;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// A source of time for the resolver.
pub trait Clock: Send + Sync + 'static {
    /// The current instant.
    fn now(&self) -> Instant;
    /// Waits for `d`.
    fn sleep(&self, d: Duration) -> BoxFuture<'static, ()>;
}

/// tokio's clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn sleep(&self, d: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(d))
    }
}

/// A clock that moves only when told to (or when slept on, which advances
/// it at once and records the wait).
#[derive(Clone, Debug)]
pub struct ManualClock {
    inner: Arc<Mutex<ManualState>>,
}

#[derive(Debug)]
struct ManualState {
    now: Instant,
    sleeps: Vec<Duration>,
}

impl Default for ManualClock {
    fn default() -> ManualClock {
        ManualClock::new()
    }
}

impl ManualClock {
    /// A clock starting now.
    pub fn new() -> ManualClock {
        ManualClock {
            inner: Arc::new(Mutex::new(ManualState {
                now: Instant::now(),
                sleeps: Vec::new(),
            })),
        }
    }
    /// Moves the clock forward.
    pub fn advance(&self, d: Duration) {
        let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        s.now += d;
    }
    /// Every wait asked of this clock so far, in order.
    pub fn sleeps(&self) -> Vec<Duration> {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .sleeps
            .clone()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).now
    }
    fn sleep(&self, d: Duration) -> BoxFuture<'static, ()> {
        let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        s.now += d;
        s.sleeps.push(d);
        Box::pin(std::future::ready(()))
    }
}
