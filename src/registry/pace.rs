//! Adaptive request pacing for one registry (AIMD): start generous, halve
//! the rate on 429 / 5xx (from what was actually being sent), hold every
//! request for a `Retry-After`, and recover slowly, one small additive step
//! per second without trouble, never above the configured ceiling. Pure:
//! the caller passes the time in.

use std::time::Duration;
use tokio::time::Instant;

/// Slowest pace a registry is ever asked at (requests per second).
pub const FLOOR: f64 = 0.5;
/// How long one cut covers: the 429s of requests already in flight when
/// the first arrived are the same signal, not new ones.
const CUT_WINDOW: Duration = Duration::from_secs(1);
/// Recovery per clean second, as a fraction of the rate after the cut
/// (back to the old rate in about 20 s).
const RECOVERY: f64 = 0.05;

/// One registry's pace.
#[derive(Debug)]
pub struct Pace {
    /// The configured ceiling (`f64::INFINITY` when none).
    ceiling: f64,
    /// The rate allowed now (`f64::INFINITY`: not paced).
    rate: f64,
    /// Additive recovery per clean second.
    step: f64,
    /// Token bucket state at `rate`.
    tokens: f64,
    last: Option<Instant>,
    /// Requests sent in the current and previous one-second windows (the
    /// observed rate a cut starts from when nothing paced it).
    window: Option<Instant>,
    current: u32,
    previous: u32,
    /// When the rate was last cut, and last raised.
    cut_at: Option<Instant>,
    raised_at: Option<Instant>,
    /// No request before this (a `Retry-After`).
    hold_until: Option<Instant>,
}

impl Pace {
    /// A pace starting at `start` requests per second, never above
    /// `ceiling`; `f64::INFINITY` (or 0) for either means "not paced".
    pub fn new(start: f64, ceiling: f64) -> Pace {
        let unpaced = |v: f64| if v > 0.0 { v } else { f64::INFINITY };
        let ceiling = unpaced(ceiling);
        let rate = unpaced(start).min(ceiling);
        Pace {
            ceiling,
            rate,
            step: 1.0,
            tokens: if rate.is_finite() { rate.max(1.0) } else { 0.0 },
            last: None,
            window: None,
            current: 0,
            previous: 0,
            cut_at: None,
            raised_at: None,
            hold_until: None,
        }
    }

    /// The rate allowed now (`f64::INFINITY` when not paced).
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Takes one request slot: how long to wait before sending it. Slots
    /// are reserved, so concurrent callers queue behind each other.
    pub fn reserve(&mut self, now: Instant) -> Duration {
        self.count(now);
        let held = self
            .hold_until
            .map(|t| t.saturating_duration_since(now))
            .unwrap_or_default();
        if !self.rate.is_finite() {
            return held;
        }
        // Time starts when the hold ends: the bucket fills from there.
        let at = now + held;
        // Bursts of a second's worth at a configured rate; once pushed
        // back, at most a tenth of one (the quota is per second too).
        let burst = if self.cut_at.is_some() {
            (self.rate / 10.0).max(1.0)
        } else {
            self.rate.max(1.0)
        };
        if let Some(last) = self.last {
            let elapsed = at.saturating_duration_since(last).as_secs_f64();
            self.tokens = (self.tokens + elapsed * self.rate).min(burst);
        }
        self.last = Some(self.last.map_or(at, |l| l.max(at)));
        self.tokens -= 1.0;
        let wait = if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        };
        held + wait
    }

    /// Counts a request sent without a slot (a retry that already waited).
    pub fn note(&mut self, now: Instant) {
        self.count(now);
    }

    fn count(&mut self, now: Instant) {
        match self.window {
            Some(w) if now.saturating_duration_since(w) < Duration::from_secs(1) => {}
            Some(w) if now.saturating_duration_since(w) < Duration::from_secs(2) => {
                self.previous = self.current;
                self.current = 0;
                self.window = Some(w + Duration::from_secs(1));
            }
            _ => {
                self.previous = 0;
                self.current = 0;
                self.window = Some(now);
            }
        }
        self.current += 1;
    }

    /// The registry pushed back (429, or 5xx): halve the rate (once per
    /// window), and hold every request for `retry_after` when given.
    pub fn throttled(&mut self, now: Instant, retry_after: Option<Duration>) {
        if let Some(wait) = retry_after {
            let until = now + wait;
            self.hold_until = Some(self.hold_until.map_or(until, |h| h.max(until)));
        }
        if self
            .cut_at
            .is_some_and(|c| now.saturating_duration_since(c) < CUT_WINDOW)
        {
            return;
        }
        let observed = f64::from(self.previous.max(self.current)).max(1.0);
        let from = self.rate.min(observed);
        self.rate = (from / 2.0).max(FLOOR).min(self.ceiling);
        self.step = (self.rate * RECOVERY).max(FLOOR / 2.0);
        // The bucket refills from the cut at the new rate.
        self.tokens = self.tokens.clamp(0.0, (self.rate / 10.0).max(1.0));
        self.last = Some(now);
        self.cut_at = Some(now);
        self.raised_at = Some(now);
    }

    /// A request went through: after a clean second, raise the rate by
    /// one step, up to the ceiling. An unpaced registry stays unpaced.
    pub fn succeeded(&mut self, now: Instant) {
        if !self.rate.is_finite() {
            return;
        }
        let Some(raised) = self.raised_at else {
            return;
        };
        let clean = now.saturating_duration_since(raised).as_secs_f64();
        if clean >= 1.0 {
            self.rate = (self.rate + self.step * clean.floor()).min(self.ceiling);
            self.raised_at = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn unpaced_without_ceiling_never_waits() {
        let t0 = Instant::now();
        let mut p = Pace::new(0.0, 0.0);
        for _ in 0..10_000 {
            assert_eq!(p.reserve(t0), Duration::ZERO);
        }
        p.succeeded(t0 + ms(5000));
        assert!(p.rate().is_infinite());
    }

    #[test]
    fn a_ceiling_spaces_requests() {
        let t0 = Instant::now();
        let mut p = Pace::new(f64::INFINITY, 2.0);
        assert_eq!(p.rate(), 2.0);
        assert_eq!(p.reserve(t0), Duration::ZERO);
        assert_eq!(p.reserve(t0), Duration::ZERO);
        assert_eq!(p.reserve(t0), ms(500));
        assert_eq!(p.reserve(t0), ms(1000));
    }

    #[test]
    fn throttling_halves_what_was_sent_once_per_window() {
        let t0 = Instant::now();
        let mut p = Pace::new(0.0, 0.0);
        for _ in 0..40 {
            p.reserve(t0);
        }
        p.throttled(t0, None);
        assert_eq!(p.rate(), 20.0, "half the 40/s that were being sent");
        // In-flight requests answering 429 in the same window: one cut.
        p.throttled(t0 + ms(300), None);
        assert_eq!(p.rate(), 20.0);
        p.throttled(t0 + ms(1200), None);
        assert_eq!(p.rate(), 10.0);
        for i in 0..20 {
            p.throttled(t0 + Duration::from_secs(2 + i), None);
        }
        assert_eq!(p.rate(), FLOOR, "never below the floor");
    }

    #[test]
    fn recovery_is_slow_and_stops_at_the_ceiling() {
        let t0 = Instant::now();
        let mut p = Pace::new(100.0, 100.0);
        for _ in 0..100 {
            p.reserve(t0);
        }
        p.throttled(t0, None);
        assert_eq!(p.rate(), 50.0);
        p.succeeded(t0 + ms(500));
        assert_eq!(p.rate(), 50.0, "not within the first second");
        p.succeeded(t0 + ms(1000));
        assert_eq!(p.rate(), 52.5, "one step of 5%");
        p.succeeded(t0 + ms(11_000));
        assert_eq!(p.rate(), 77.5, "ten more clean seconds");
        p.succeeded(t0 + ms(100_000));
        assert_eq!(p.rate(), 100.0, "capped at the ceiling");
    }

    #[test]
    fn retry_after_holds_every_request() {
        let t0 = Instant::now();
        let mut p = Pace::new(0.0, 0.0);
        p.reserve(t0);
        p.throttled(t0, Some(Duration::from_secs(3)));
        let first = p.reserve(t0 + ms(100));
        assert!(first >= ms(2900), "{first:?}");
        // A shorter Retry-After does not shorten the hold.
        p.throttled(t0 + ms(200), Some(Duration::from_secs(1)));
        assert!(p.reserve(t0 + ms(300)) >= ms(2700));
        // After the hold, requests go at the cut rate (half of 1/s sent).
        assert_eq!(p.rate(), FLOOR);
    }

    #[test]
    fn a_zero_start_or_ceiling_means_unpaced() {
        assert!(Pace::new(0.0, 0.0).rate().is_infinite());
        assert_eq!(Pace::new(0.0, 5.0).rate(), 5.0);
        assert_eq!(Pace::new(3.0, 0.0).rate(), 3.0);
    }
}
