//! Whether a remedy worked. After imagedrift applies remedies to a workload
//! whose pods a remedy replaces (Deployment, StatefulSet, DaemonSet), the
//! workload's stale episode must close with its pods running the current
//! digest within the verify window (`remedies.verifyTimeout`): `verified`;
//! otherwise `failed`. A refresh of a bare pod, Job, CronJob or ReplicaSet
//! serves the pods started after it, not the running ones, so it is only
//! ever `applied`. Pure bookkeeping on the controller's monotonic clock
//! ([`Instant`]); [`super::reconcile::State`] decides when an episode closes.

use crate::policy::Remedy;
use crate::remedy::WorkloadRef;
use std::collections::{BTreeSet, HashMap};
use tokio::time::Instant;

/// A workload's identity as the state keys it: namespace, kind, name.
pub type Key = (super::store::Str, super::store::Str, super::store::Str);

/// Remedies applied to one workload, waiting for its pods to run the
/// current digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verifying {
    /// The workload (for the metric and the Event).
    pub workload: WorkloadRef,
    /// What was applied, in order.
    pub remedies: Vec<Remedy>,
    /// When the first of them was applied.
    pub since: Instant,
    /// The pods must run the current digest before this.
    pub deadline: Instant,
}

/// How a verification ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemedyCheck {
    /// The workload.
    pub workload: WorkloadRef,
    /// The remedies judged.
    pub remedies: Vec<Remedy>,
    /// Whether the pods ran the current digest in time.
    pub verified: bool,
    /// For a failure, what was tried and what is still stale (the Warning
    /// Event's note); empty when verified.
    pub note: String,
}

/// Open verifications, by workload and by deadline.
#[derive(Debug, Default)]
pub struct Verifications {
    open: HashMap<Key, Verifying>,
    by_deadline: BTreeSet<(Instant, Key)>,
}

impl Verifications {
    /// Starts (or extends) the verification of `key` at `now`: a later
    /// remedy joins the list and moves the deadline to its own window's end.
    pub fn start(
        &mut self,
        key: Key,
        workload: WorkloadRef,
        remedies: &[Remedy],
        now: Instant,
        deadline: Instant,
    ) {
        let (mut list, since) = match self.open.remove(&key) {
            Some(v) => {
                self.by_deadline.remove(&(v.deadline, key.clone()));
                (v.remedies, v.since)
            }
            None => (Vec::new(), now),
        };
        for r in remedies {
            if !list.contains(r) {
                list.push(*r);
            }
        }
        self.by_deadline.insert((deadline, key.clone()));
        self.open.insert(
            key,
            Verifying {
                workload,
                remedies: list,
                since,
                deadline,
            },
        );
    }

    /// Ends the verification of `key` (the episode closed, or the workload
    /// is gone); returns it if one was open.
    pub fn end(&mut self, key: &Key) -> Option<Verifying> {
        let v = self.open.remove(key)?;
        self.by_deadline.remove(&(v.deadline, key.clone()));
        Some(v)
    }

    /// The verifications whose deadline is not after `now`, removed.
    pub fn expired(&mut self, now: Instant) -> Vec<(Key, Verifying)> {
        let mut out = Vec::new();
        while let Some((at, _)) = self.by_deadline.first() {
            if *at > now {
                break;
            }
            let Some((_, key)) = self.by_deadline.pop_first() else {
                break;
            };
            if let Some(v) = self.open.remove(&key) {
                out.push((key, v));
            }
        }
        out
    }

    /// The earliest deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.by_deadline.first().map(|(at, _)| *at)
    }

    /// How many are open.
    pub fn len(&self) -> usize {
        self.open.len()
    }

    /// Whether none is open.
    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }
}

/// `refresh,restart`: the remedies' names as annotations and notes write them.
pub fn names(remedies: &[Remedy]) -> String {
    remedies
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remedy::WorkloadKind;
    use std::time::Duration;

    fn web() -> (Key, WorkloadRef) {
        (
            ("shop".into(), "Deployment".into(), "web".into()),
            WorkloadRef {
                kind: WorkloadKind::Deployment,
                namespace: "shop".into(),
                name: "web".into(),
                uid: None,
            },
        )
    }

    #[test]
    fn a_verification_expires_at_its_deadline_not_before() {
        let t0 = Instant::now();
        let (key, w) = web();
        let mut v = Verifications::default();
        v.start(
            key.clone(),
            w,
            &[Remedy::Restart],
            t0,
            t0 + Duration::from_secs(60),
        );
        assert_eq!(v.next_deadline(), Some(t0 + Duration::from_secs(60)));
        assert!(v.expired(t0 + Duration::from_secs(59)).is_empty());
        let gone = v.expired(t0 + Duration::from_secs(60));
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].1.remedies, vec![Remedy::Restart]);
        assert!(v.is_empty());
        assert_eq!(v.next_deadline(), None);
    }

    #[test]
    fn a_later_remedy_joins_and_moves_the_deadline() {
        let t0 = Instant::now();
        let (key, w) = web();
        let mut v = Verifications::default();
        v.start(
            key.clone(),
            w.clone(),
            &[Remedy::RefreshNode],
            t0,
            t0 + Duration::from_secs(10),
        );
        v.start(
            key.clone(),
            w,
            &[Remedy::RefreshNode, Remedy::Restart],
            t0 + Duration::from_secs(10),
            t0 + Duration::from_secs(70),
        );
        assert_eq!(v.len(), 1);
        assert!(
            v.expired(t0 + Duration::from_secs(30)).is_empty(),
            "the old deadline is gone"
        );
        let ended = v.end(&key).unwrap();
        assert_eq!(names(&ended.remedies), "refresh,restart");
        assert_eq!(
            ended.since, t0,
            "the window is counted from the first remedy"
        );
        assert!(v.end(&key).is_none(), "ended once");
        assert!(v.expired(t0 + Duration::from_secs(3600)).is_empty());
    }
}
