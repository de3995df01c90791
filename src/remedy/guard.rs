//! Guardrails: the loop-guard record (which digests a remedy already
//! targeted, and when), rollout state, and the cluster-wide in-flight
//! tracker. Pure data and functions; the shell owns the instances.

use super::WorkloadRef;
use crate::policy::Remedy;
use crate::reference::Digest;
use k8s_openapi::jiff::Timestamp;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

/// Annotation on the workload: the digests the last remedy targeted
/// (comma-separated, sorted).
pub const REMEDIED_DIGEST: &str = "imagedrift.io/remedied-digest";
/// Annotation on the workload: when the last remedy ran (RFC 3339, UTC).
pub const REMEDIED_AT: &str = "imagedrift.io/remedied-at";
/// Annotation on the workload: which remedies ran (`refresh,restart`).
pub const REMEDIED_WITH: &str = "imagedrift.io/remedied-with";

/// What the last remedy on a workload targeted, and when.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GuardRecord {
    /// The current digests it targeted.
    pub digests: BTreeSet<Digest>,
    /// When it ran.
    pub at: Option<Timestamp>,
}

impl GuardRecord {
    /// Reads the record from a workload's annotations. Entries that don't
    /// parse are ignored (anyone can write annotations).
    pub fn from_annotations(annotations: &BTreeMap<String, String>) -> Option<GuardRecord> {
        let digests: BTreeSet<Digest> = annotations
            .get(REMEDIED_DIGEST)
            .map(|v| {
                v.split(',')
                    .filter_map(|d| Digest::parse(d.trim()).ok())
                    .collect()
            })
            .unwrap_or_default();
        let at = annotations
            .get(REMEDIED_AT)
            .and_then(|v| v.trim().parse::<Timestamp>().ok());
        (!digests.is_empty() || at.is_some()).then_some(GuardRecord { digests, at })
    }

    /// The more recent of two records (the annotation may lag this
    /// process's memory, or be newer after a leader change).
    pub fn latest(a: Option<GuardRecord>, b: Option<GuardRecord>) -> Option<GuardRecord> {
        match (a, b) {
            (Some(a), Some(b)) => Some(if b.at > a.at { b } else { a }),
            (a, b) => a.or(b),
        }
    }

    /// Whether every digest in `targets` was already targeted.
    pub fn covers(&self, targets: &BTreeSet<Digest>) -> bool {
        !targets.is_empty() && targets.is_subset(&self.digests)
    }

    /// When the cooldown that started at `at` ends, if it hasn't yet.
    pub fn cooling_until(&self, now: Timestamp, cooldown: Duration) -> Option<Timestamp> {
        let at = self.at?;
        let end = at.checked_add(cooldown).ok()?;
        (end > now).then_some(end)
    }
}

/// The annotation value for a set of digests.
pub fn digests_value(digests: &BTreeSet<Digest>) -> String {
    digests
        .iter()
        .map(Digest::as_str)
        .collect::<Vec<_>>()
        .join(",")
}

/// RFC 3339 at one-second precision in UTC, as `kubectl rollout restart` writes.
pub fn rfc3339(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Where a rolling workload stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RolloutState {
    /// `metadata.generation`.
    pub generation: i64,
    /// `status.observedGeneration`.
    pub observed_generation: i64,
    /// Replicas not available now.
    pub unavailable: i32,
    /// Pods still to be moved to the current template.
    pub updating: i32,
}

impl RolloutState {
    /// Why a rollout is in progress, or `None` when it is settled.
    pub fn in_progress(&self) -> Option<String> {
        if self.observed_generation < self.generation {
            Some(format!(
                "its controller has not observed generation {} yet (observed {})",
                self.generation, self.observed_generation
            ))
        } else if self.unavailable > 0 {
            Some(format!("{} replica(s) are unavailable", self.unavailable))
        } else if self.updating > 0 {
            Some(format!(
                "{} replica(s) are still being updated",
                self.updating
            ))
        } else {
            None
        }
    }
}

/// One remedy counted as in flight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InFlightEntry {
    /// Which remedy.
    pub remedy: Remedy,
    /// When it started.
    pub since: Timestamp,
    /// For a restart or pin, the generation the patch produced: the
    /// remedy is over once that generation has rolled out.
    pub generation: Option<i64>,
    /// Whether this process is still executing it (a refresh waiting for
    /// its pods); such entries are only removed by their executor.
    pub executing: bool,
}

/// Remedies in flight across the cluster (as far as this leader knows).
#[derive(Clone, Debug, Default)]
pub struct InFlight {
    entries: HashMap<WorkloadRef, InFlightEntry>,
}

impl InFlight {
    /// How many are in flight.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none are.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry for a workload.
    pub fn get(&self, w: &WorkloadRef) -> Option<&InFlightEntry> {
        self.entries.get(w)
    }

    /// Starts (or replaces) a workload's entry.
    pub fn start(&mut self, w: WorkloadRef, entry: InFlightEntry) {
        self.entries.insert(w, entry);
    }

    /// Ends a workload's entry.
    pub fn finish(&mut self, w: &WorkloadRef) {
        self.entries.remove(w);
    }

    /// Ends a restart/pin entry once its workload has rolled out.
    pub fn settle(&mut self, w: &WorkloadRef, rollout: &RolloutState) {
        if let Some(e) = self.entries.get(w)
            && !e.executing
            && e.generation
                .is_none_or(|g| rollout.observed_generation >= g)
            && rollout.in_progress().is_none()
        {
            self.entries.remove(w);
        }
    }

    /// Ends entries older than `timeout` that no executor holds.
    pub fn expire(&mut self, now: Timestamp, timeout: Duration) {
        self.entries.retain(|_, e| {
            e.executing
                || e.since
                    .checked_add(timeout)
                    .map(|end| end > now)
                    .unwrap_or(true)
        });
    }

    /// The workloads whose restart/pin entries could be settled by reading them.
    pub fn settleable(&self) -> Vec<WorkloadRef> {
        self.entries
            .iter()
            .filter(|(_, e)| !e.executing)
            .map(|(w, _)| w.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remedy::WorkloadKind;

    fn d(c: char) -> Digest {
        Digest::parse(&format!("sha256:{}", c.to_string().repeat(64))).unwrap()
    }
    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }
    fn w(name: &str) -> WorkloadRef {
        WorkloadRef {
            kind: WorkloadKind::Deployment,
            namespace: "ns".into(),
            name: name.into(),
            uid: None,
        }
    }

    #[test]
    fn record_from_annotations() {
        let mut a = BTreeMap::new();
        assert_eq!(GuardRecord::from_annotations(&a), None);
        a.insert(
            REMEDIED_DIGEST.to_string(),
            format!("{}, junk ,{}", d('b'), d('a')),
        );
        a.insert(REMEDIED_AT.to_string(), "2026-01-02T03:04:05Z".to_string());
        let r = GuardRecord::from_annotations(&a).unwrap();
        assert_eq!(r.digests, BTreeSet::from([d('a'), d('b')]));
        assert_eq!(r.at, Some(ts("2026-01-02T03:04:05Z")));
        assert_eq!(digests_value(&r.digests), format!("{},{}", d('a'), d('b')));
        // A garbled time is no time; the digests still count.
        a.insert(REMEDIED_AT.to_string(), "yesterday".to_string());
        assert_eq!(GuardRecord::from_annotations(&a).unwrap().at, None);
    }

    #[test]
    fn covers_and_cooldown() {
        let r = GuardRecord {
            digests: BTreeSet::from([d('a')]),
            at: Some(ts("2026-01-01T00:00:00Z")),
        };
        assert!(r.covers(&BTreeSet::from([d('a')])));
        assert!(!r.covers(&BTreeSet::from([d('a'), d('b')])));
        assert!(!r.covers(&BTreeSet::new()));
        let cd = Duration::from_secs(1800);
        assert_eq!(
            r.cooling_until(ts("2026-01-01T00:29:59Z"), cd),
            Some(ts("2026-01-01T00:30:00Z"))
        );
        assert_eq!(r.cooling_until(ts("2026-01-01T00:30:00Z"), cd), None);
    }

    #[test]
    fn latest_record_wins() {
        let old = GuardRecord {
            digests: BTreeSet::from([d('a')]),
            at: Some(ts("2026-01-01T00:00:00Z")),
        };
        let new = GuardRecord {
            digests: BTreeSet::from([d('b')]),
            at: Some(ts("2026-01-01T01:00:00Z")),
        };
        assert_eq!(
            GuardRecord::latest(Some(old.clone()), Some(new.clone())),
            Some(new.clone())
        );
        assert_eq!(
            GuardRecord::latest(Some(new.clone()), Some(old.clone())),
            Some(new)
        );
        assert_eq!(GuardRecord::latest(None, Some(old.clone())), Some(old));
    }

    #[test]
    fn rollout_states() {
        let settled = RolloutState {
            generation: 3,
            observed_generation: 3,
            unavailable: 0,
            updating: 0,
        };
        assert_eq!(settled.in_progress(), None);
        for s in [
            RolloutState {
                observed_generation: 2,
                ..settled
            },
            RolloutState {
                unavailable: 1,
                ..settled
            },
            RolloutState {
                updating: 2,
                ..settled
            },
        ] {
            assert!(s.in_progress().is_some(), "{s:?}");
        }
    }

    #[test]
    fn in_flight_settles_and_expires() {
        let t0 = ts("2026-01-01T00:00:00Z");
        let mut f = InFlight::default();
        f.start(
            w("a"),
            InFlightEntry {
                remedy: Remedy::Restart,
                since: t0,
                generation: Some(5),
                executing: false,
            },
        );
        f.start(
            w("b"),
            InFlightEntry {
                remedy: Remedy::RefreshNode,
                since: t0,
                generation: None,
                executing: true,
            },
        );
        assert_eq!(f.len(), 2);
        // Generation 5 not yet observed: still in flight.
        let mut r = RolloutState {
            generation: 5,
            observed_generation: 4,
            unavailable: 0,
            updating: 0,
        };
        f.settle(&w("a"), &r);
        assert_eq!(f.len(), 2);
        r.observed_generation = 5;
        f.settle(&w("a"), &r);
        assert_eq!(f.len(), 1);
        // An executing refresh never expires on time alone.
        f.expire(ts("2026-01-02T00:00:00Z"), Duration::from_secs(60));
        assert_eq!(f.len(), 1);
        f.finish(&w("b"));
        assert!(f.is_empty());
    }
}
