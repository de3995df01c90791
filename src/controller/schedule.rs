//! When each unique reference is checked: registry cost follows unique
//! references, never pods. A pure structure driven by an injected `now`
//! and an injected jitter source, so tests need no clock.

use super::store::Str;
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;

/// A source of jitter: a value in `[-1, 1]` each call.
pub trait Jitter: Send {
    /// The next value in `[-1, 1]`.
    fn next(&mut self) -> f64;
}

/// No jitter at all (tests, benchmarks).
pub struct NoJitter;

impl Jitter for NoJitter {
    fn next(&mut self) -> f64 {
        0.0
    }
}

/// A small xorshift generator seeded from the process's random hasher keys.
pub struct RandomJitter(u64);

impl Default for RandomJitter {
    fn default() -> Self {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(0x9e37_79b9_7f4a_7c15);
        RandomJitter(h.finish() | 1)
    }
}

impl Jitter for RandomJitter {
    fn next(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        (x >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    due: Instant,
    in_flight: bool,
    /// A webhook said the tag moved (when it arrived); not yet handed out.
    hint: Option<Instant>,
    /// The hint the check in flight answers.
    flight_hint: Option<Instant>,
    /// A hint that arrived while a check was in flight (which may have read
    /// the tag before the push): one more check once it ends, due then.
    follow_up: Option<(Instant, Instant)>,
}

/// Which references are due for a registry check.
pub struct Schedule {
    interval: Duration,
    spread: Duration,
    jitter: Box<dyn Jitter>,
    entries: HashMap<Str, Entry>,
}

impl Schedule {
    /// A schedule checking every reference each `interval` ± `spread`.
    pub fn new(interval: Duration, spread: Duration, jitter: Box<dyn Jitter>) -> Schedule {
        Schedule {
            interval,
            spread: spread.min(interval / 2),
            jitter,
            entries: HashMap::new(),
        }
    }

    /// Notes that `reference` is in use; a reference never seen before is
    /// due at once. Returns whether it was new.
    pub fn observe(&mut self, reference: &Str, now: Instant) -> bool {
        if self.entries.contains_key(reference) {
            return false;
        }
        self.entries.insert(
            reference.clone(),
            Entry {
                due: now,
                in_flight: false,
                hint: None,
                flight_hint: None,
                follow_up: None,
            },
        );
        true
    }

    /// Stops checking a reference no container uses any more.
    pub fn forget(&mut self, reference: &str) {
        self.entries.remove(reference);
    }

    /// References due at `now`, at most `limit`, oldest first; they are
    /// marked in flight so they are not handed out twice.
    pub fn take_due(&mut self, now: Instant, limit: usize) -> Vec<Str> {
        let mut due: Vec<(Instant, &Str)> = self
            .entries
            .iter()
            .filter(|(_, e)| !e.in_flight && e.due <= now)
            .map(|(k, e)| (e.due, k))
            .collect();
        due.sort();
        let picked: Vec<Str> = due
            .into_iter()
            .take(limit)
            .map(|(_, k)| k.clone())
            .collect();
        for k in &picked {
            if let Some(e) = self.entries.get_mut(k) {
                e.in_flight = true;
                e.flight_hint = e.hint.take();
            }
        }
        picked
    }

    /// A webhook announced a push of `reference` at `received`: due within
    /// `window` of it (pushes within the window share one check), or, if a
    /// check is in flight, once more after it. Never adds a reference:
    /// returns whether `reference` is scheduled at all.
    pub fn hint(&mut self, reference: &str, received: Instant, window: Duration) -> bool {
        let Some(e) = self.entries.get_mut(reference) else {
            return false;
        };
        let due = received + window;
        if e.in_flight {
            let f = e.follow_up.get_or_insert((received, due));
            f.1 = f.1.min(due);
        } else {
            e.due = e.due.min(due);
            e.hint.get_or_insert(received);
        }
        true
    }

    /// When the webhook that the in-flight check of `reference` answers arrived.
    pub fn flight_hint(&self, reference: &str) -> Option<Instant> {
        self.entries.get(reference).and_then(|e| e.flight_hint)
    }

    /// A check of `reference` finished at `now`: next one in one jittered
    /// interval.
    pub fn completed(&mut self, reference: &str, now: Instant) {
        let j = self.jitter.next().clamp(-1.0, 1.0);
        let secs = self.interval.as_secs_f64() + self.spread.as_secs_f64() * j;
        let next = Duration::from_secs_f64(secs.max(0.0));
        if let Some(e) = self.entries.get_mut(reference) {
            e.due = now + next;
            e.in_flight = false;
            e.flight_hint = None;
            if let Some((received, due)) = e.follow_up.take() {
                e.due = due.max(now);
                e.hint = Some(received);
            }
        }
    }

    /// The earliest time a reference not in flight becomes due.
    pub fn next_due(&self) -> Option<Instant> {
        self.entries
            .values()
            .filter(|e| !e.in_flight)
            .map(|e| e.due)
            .min()
    }

    /// How many references are scheduled.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no reference is scheduled.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether `reference` is being checked now.
    pub fn in_flight(&self, reference: &str) -> bool {
        self.entries.get(reference).is_some_and(|e| e.in_flight)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(Vec<f64>);
    impl Jitter for Fixed {
        fn next(&mut self) -> f64 {
            self.0.remove(0)
        }
    }

    fn s(x: &str) -> Str {
        Str::from(x)
    }

    #[test]
    fn new_reference_is_due_at_once_and_deduplicated() {
        let t0 = Instant::now();
        let mut sch = Schedule::new(Duration::from_secs(300), Duration::ZERO, Box::new(NoJitter));
        assert!(sch.observe(&s("a"), t0));
        assert!(
            !sch.observe(&s("a"), t0),
            "second pod with the same reference"
        );
        assert!(sch.observe(&s("b"), t0));
        assert_eq!(sch.len(), 2);
        let mut due = sch.take_due(t0, 10);
        due.sort();
        assert_eq!(due, vec![s("a"), s("b")]);
        assert!(
            sch.take_due(t0, 10).is_empty(),
            "in flight: not handed out twice"
        );
        assert_eq!(sch.next_due(), None);
    }

    #[test]
    fn completed_reference_is_due_one_interval_later() {
        let t0 = Instant::now();
        let mut sch = Schedule::new(Duration::from_secs(300), Duration::ZERO, Box::new(NoJitter));
        sch.observe(&s("a"), t0);
        sch.take_due(t0, 10);
        sch.completed("a", t0);
        assert!(!sch.in_flight("a"));
        assert_eq!(sch.next_due(), Some(t0 + Duration::from_secs(300)));
        assert!(sch.take_due(t0 + Duration::from_secs(299), 10).is_empty());
        assert_eq!(
            sch.take_due(t0 + Duration::from_secs(300), 10),
            vec![s("a")]
        );
    }

    #[test]
    fn jitter_spreads_within_bounds() {
        let t0 = Instant::now();
        let interval = Duration::from_secs(300);
        let mut sch = Schedule::new(
            interval,
            Duration::from_secs(30),
            Box::new(Fixed(vec![1.0, -0.5])),
        );
        sch.observe(&s("a"), t0);
        sch.observe(&s("b"), t0);
        sch.completed("a", t0);
        sch.completed("b", t0);
        let mut dues: Vec<Instant> = sch.entries.values().map(|e| e.due).collect();
        dues.sort();
        assert_eq!(
            dues,
            vec![t0 + Duration::from_secs(285), t0 + Duration::from_secs(330)]
        );
    }

    #[test]
    fn limit_takes_oldest_first_and_forget_drops() {
        let t0 = Instant::now();
        let mut sch = Schedule::new(Duration::from_secs(60), Duration::ZERO, Box::new(NoJitter));
        sch.observe(&s("late"), t0 + Duration::from_secs(5));
        sch.observe(&s("early"), t0);
        assert_eq!(
            sch.take_due(t0 + Duration::from_secs(10), 1),
            vec![s("early")]
        );
        sch.forget("late");
        assert!(sch.take_due(t0 + Duration::from_secs(10), 1).is_empty());
        assert!(
            sch.observe(&s("late"), t0),
            "forgotten reference is new again"
        );
    }

    #[test]
    fn hints_collapse_into_one_check_and_never_add_a_reference() {
        let t0 = Instant::now();
        let w = Duration::from_millis(250);
        let mut sch = Schedule::new(Duration::from_secs(300), Duration::ZERO, Box::new(NoJitter));
        assert!(
            !sch.hint("unwatched", t0, w),
            "a hint never adds a reference"
        );
        assert!(sch.is_empty());
        sch.observe(&s("a"), t0);
        sch.take_due(t0, 10);
        sch.completed("a", t0);
        // A burst of 100 pushes within the window: one check, due at the
        // window's end after the first push, answering the first push.
        let t1 = t0 + Duration::from_secs(10);
        for i in 0..100 {
            assert!(sch.hint("a", t1 + Duration::from_millis(i), w));
        }
        assert_eq!(sch.next_due(), Some(t1 + w));
        assert!(
            sch.take_due(t1 + w - Duration::from_millis(1), 10)
                .is_empty()
        );
        assert_eq!(sch.take_due(t1 + w, 10), vec![s("a")]);
        assert_eq!(sch.flight_hint("a"), Some(t1));
        assert!(sch.take_due(t1 + w, 10).is_empty(), "not resolved twice");
        sch.completed("a", t1 + w);
        assert_eq!(sch.flight_hint("a"), None);
        assert_eq!(sch.next_due(), Some(t1 + w + Duration::from_secs(300)));
    }

    #[test]
    fn a_hint_during_a_check_asks_for_one_more_after_it() {
        let t0 = Instant::now();
        let w = Duration::from_millis(100);
        let mut sch = Schedule::new(Duration::from_secs(300), Duration::ZERO, Box::new(NoJitter));
        sch.observe(&s("a"), t0);
        assert_eq!(sch.take_due(t0, 10), vec![s("a")]);
        // In flight: neither handed out again nor lost.
        for i in 0..5 {
            assert!(sch.hint("a", t0 + Duration::from_millis(10 + i), w));
        }
        assert!(sch.take_due(t0 + Duration::from_secs(1), 10).is_empty());
        let done = t0 + Duration::from_millis(50);
        sch.completed("a", done);
        assert_eq!(sch.next_due(), Some(t0 + Duration::from_millis(110)));
        assert_eq!(
            sch.take_due(t0 + Duration::from_millis(110), 10),
            vec![s("a")]
        );
        assert_eq!(sch.flight_hint("a"), Some(t0 + Duration::from_millis(10)));
        sch.completed("a", t0 + Duration::from_millis(120));
        assert_eq!(
            sch.next_due(),
            Some(t0 + Duration::from_millis(120) + Duration::from_secs(300)),
            "one follow-up only"
        );
        // A hint for a reference due anyway keeps the earlier time.
        sch.forget("a");
        sch.observe(&s("b"), t0);
        assert!(sch.hint("b", t0 + Duration::from_secs(1), w));
        assert_eq!(sch.next_due(), Some(t0));
    }

    #[test]
    fn random_jitter_stays_in_range() {
        let mut j = RandomJitter::default();
        for _ in 0..1000 {
            let v = j.next();
            assert!((-1.0..=1.0).contains(&v), "{v}");
        }
    }
}
