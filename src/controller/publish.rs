//! Writing Events so that none is lost and none is duplicated across
//! replicas. The Events on the objects are the shared record: every
//! replica judges, only the leader writes, and before writing about a
//! subject (a container of a pod, or a workload) whose last word this
//! process did not write itself, the leader reads the subject's Events back
//! and writes only what they don't already say.
//!
//! A follower never counts its transitions as reported: they wait here
//! (the latest per subject) and, when the replica becomes leader, are
//! reconciled together with everything the state says is open (stale, or
//! failing for too long). The same happens to a write the guard refused
//! (lease expired by this replica's clock) or the API rejected.
//!
//! Reading back: one `list` per object, in its namespace, with the field
//! selector `regarding.kind`, `regarding.name` (and `regarding.uid` when
//! known), filtered here by `regarding.fieldPath` (the container) and the
//! reporting controller. Per object rather than one cluster-wide list by
//! reason: answers stay small however many Events the cluster holds, and
//! the number of lists is bounded by what is open, read once per subject
//! per leadership term.

use super::leader::Leader;
use super::reconcile::EventEffect;
use super::report::{ACTION, Notice};
use crate::controller::events::{Event, EventType, Recorder};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use kube::Client;
use kube::api::{Api, ListParams};
use std::collections::HashMap;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The reporting controller of imagedrift's Events.
pub const CONTROLLER: &str = "imagedrift";

/// At most this many unannounced transitions are kept (the latest per
/// subject); past it new ones are dropped with a warning (the state still
/// reports them as open at the next takeover).
const PENDING_LIMIT: usize = 50_000;

/// What the runner hands the publisher.
#[derive(Debug)]
pub enum Publish {
    /// A transition, as it happens.
    Live(EventEffect),
    /// This replica became leader: everything the state has open.
    Takeover(Vec<EventEffect>),
}

/// The thing an Event is about: the object and, for a container, its field path.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Subject {
    namespace: String,
    kind: String,
    name: String,
    uid: Option<String>,
    field_path: Option<String>,
}

impl Subject {
    /// The subject of an Event about `r`.
    pub fn of(r: &ObjectReference) -> Subject {
        Subject {
            namespace: r.namespace.clone().unwrap_or_default(),
            kind: r.kind.clone().unwrap_or_default(),
            name: r.name.clone().unwrap_or_default(),
            uid: r.uid.clone().filter(|u| !u.is_empty()),
            field_path: r.field_path.clone().filter(|f| !f.is_empty()),
        }
    }

    fn object(&self) -> Object {
        (
            self.namespace.clone(),
            self.kind.clone(),
            self.name.clone(),
            self.uid.clone(),
        )
    }
}

/// An object Events are about: namespace, kind, name, uid.
type Object = (String, String, String, Option<String>);

/// Which reasons are one family: a stale episode's open and close, or a
/// failing spell.
fn family(reason: &str) -> u8 {
    match reason {
        "StaleImage" | "ImageUpToDate" => 0,
        _ => 1,
    }
}

/// What the record says of one subject: the latest reason per family.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Said {
    /// The latest of `StaleImage` / `ImageUpToDate`.
    pub episode: Option<String>,
    /// Whether a `DriftCheckFailed` stands.
    pub failing: bool,
}

/// Whether writing `notice` adds to what the record says. `live`: the
/// transition was seen as leader (a close without a recorded open is then
/// still news: the open may have expired with the Events' TTL).
pub fn is_news(notice: Notice, said: &Said, live: bool) -> bool {
    match notice {
        Notice::BecameStale => said.episode.as_deref() != Some("StaleImage"),
        Notice::BecameFresh => match said.episode.as_deref() {
            Some("StaleImage") => true,
            Some(_) => false,
            None => live,
        },
        Notice::CheckFailing => !said.failing,
    }
}

/// Folds a subject's Events (any order) into what they say.
pub fn what_events_say<'a>(events: impl IntoIterator<Item = &'a K8sEvent>) -> Said {
    let mut latest: Option<(k8s_openapi::jiff::Timestamp, String)> = None;
    let mut failing = false;
    for e in events {
        let Some(reason) = e.reason.as_deref() else {
            continue;
        };
        if family(reason) == 1 {
            failing |= reason == Notice::CheckFailing.reason();
            continue;
        }
        let at = [
            e.series.as_ref().map(|s| s.last_observed_time.0),
            e.event_time.as_ref().map(|t| t.0),
            e.deprecated_last_timestamp.as_ref().map(|t| t.0),
            e.metadata.creation_timestamp.as_ref().map(|t| t.0),
        ]
        .into_iter()
        .flatten()
        .max();
        let Some(at) = at else { continue };
        if latest.as_ref().is_none_or(|(t, _)| at >= *t) {
            latest = Some((at, reason.to_string()));
        }
    }
    Said {
        episode: latest.map(|(_, r)| r),
        failing,
    }
}

struct Publisher {
    recorder: Recorder,
    client: Client,
    leader: Leader,
    /// What this process wrote last per subject during the current term.
    announced: HashMap<Subject, Said>,
    /// Transitions not written yet (follower, guard closed, write failed).
    pending: HashMap<Subject, EventEffect>,
    was_leader: bool,
    /// Events written since the heap was last trimmed.
    since_trim: usize,
}

impl Publisher {
    fn keep_pending(&mut self, subject: Subject, effect: EventEffect) {
        if self.pending.len() >= PENDING_LIMIT && !self.pending.contains_key(&subject) {
            tracing::warn!(
                reason = effect.notice.reason(),
                "too many unannounced transitions; dropping one"
            );
            return;
        }
        self.pending.insert(subject, effect);
    }

    /// Lists the Events about one object, grouped by subject.
    async fn read_back(
        &self,
        object: &Object,
    ) -> Result<HashMap<Option<String>, Said>, kube::Error> {
        let (ns, kind, name, uid) = object;
        let mut fields = format!("regarding.kind={kind},regarding.name={name}");
        if let Some(u) = uid {
            fields.push_str(&format!(",regarding.uid={u}"));
        }
        let api: Api<K8sEvent> = Api::namespaced(self.client.clone(), ns);
        let list = api.list(&ListParams::default().fields(&fields)).await?;
        let mut by_path: HashMap<Option<String>, Vec<K8sEvent>> = HashMap::new();
        for e in list.items {
            if e.reporting_controller
                .as_deref()
                .is_some_and(|c| c != CONTROLLER)
            {
                continue;
            }
            let path = e
                .regarding
                .as_ref()
                .and_then(|r| r.field_path.clone())
                .filter(|f| !f.is_empty());
            by_path.entry(path).or_default().push(e);
        }
        Ok(by_path
            .into_iter()
            .map(|(p, es)| (p, what_events_say(&es)))
            .collect())
    }

    /// Writes the effects the record lacks. `live`: seen as leader.
    async fn write_all(&mut self, effects: Vec<(EventEffect, bool)>) {
        let mut read: HashMap<Object, HashMap<Option<String>, Said>> = HashMap::new();
        for (effect, live) in effects {
            let subject = Subject::of(&effect.regarding);
            let said = match self.announced.get(&subject) {
                Some(s) => s.clone(),
                None => {
                    let object = subject.object();
                    if !read.contains_key(&object) {
                        match self.read_back(&object).await {
                            Ok(r) => {
                                read.insert(object.clone(), r);
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, namespace = %subject.namespace, kind = %subject.kind, name = %subject.name, "cannot read back Events; will retry");
                                self.keep_pending(subject, effect);
                                continue;
                            }
                        }
                    }
                    read.get(&object)
                        .and_then(|m| m.get(&subject.field_path))
                        .cloned()
                        .unwrap_or_default()
                }
            };
            if !is_news(effect.notice, &said, live) {
                tracing::debug!(reason = effect.notice.reason(), namespace = %subject.namespace, name = %subject.name, "already on record");
                self.announced.insert(subject, said);
                continue;
            }
            self.write(subject, said, effect).await;
        }
    }

    async fn write(&mut self, subject: Subject, mut said: Said, effect: EventEffect) {
        let ev = Event {
            type_: if effect.notice.is_warning() {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: effect.notice.reason().into(),
            note: Some(effect.note.clone()),
            action: ACTION.into(),
            secondary: None,
        };
        // The write guard, right before the write.
        if !self.leader.may_write() {
            tracing::info!(
                reason = effect.notice.reason(),
                "lease not held by this replica's clock; Event kept for the next leader term"
            );
            self.keep_pending(subject, effect);
            return;
        }
        match self.recorder.publish(&ev, &effect.regarding).await {
            Ok(()) => {
                match effect.notice {
                    Notice::CheckFailing => said.failing = true,
                    n => {
                        said.episode = Some(n.reason().into());
                        said.failing = false;
                    }
                }
                self.pending.remove(&subject);
                self.announced.insert(subject, said);
                self.since_trim += 1;
            }
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    reason = effect.notice.reason(),
                    namespace = %subject.namespace,
                    name = %subject.name,
                    "cannot write Event; will retry"
                );
                self.keep_pending(subject, effect);
            }
        }
    }
}

/// Writes Events while this replica leads; keeps them for reconciliation
/// otherwise. Retries what is pending every `retry` while leading.
pub async fn publish_events(
    recorder: Recorder,
    client: Client,
    leader: Leader,
    mut rx: mpsc::Receiver<Publish>,
    retry: std::time::Duration,
    token: CancellationToken,
) {
    let mut p = Publisher {
        recorder,
        client,
        was_leader: leader.may_write(),
        leader,
        announced: HashMap::new(),
        pending: HashMap::new(),
        since_trim: 0,
    };
    let mut tick = tokio::time::interval(retry);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let msg = tokio::select! {
            _ = token.cancelled() => return,
            m = rx.recv() => match m { Some(m) => Some(m), None => return },
            _ = tick.tick() => None,
        };
        let leading = p.leader.may_write();
        if leading != p.was_leader {
            // Another replica may have written meanwhile: forget what we knew.
            p.announced.clear();
            p.was_leader = leading;
        }
        match msg {
            Some(Publish::Live(effect)) if leading => p.write_all(vec![(effect, true)]).await,
            Some(Publish::Live(effect)) => {
                let s = Subject::of(&effect.regarding);
                p.keep_pending(s, effect);
            }
            Some(Publish::Takeover(open)) => {
                p.announced.clear();
                let mut all: HashMap<Subject, (EventEffect, bool)> =
                    p.pending.drain().map(|(s, e)| (s, (e, false))).collect();
                for e in open {
                    all.insert(Subject::of(&e.regarding), (e, false));
                }
                let mut list: Vec<(EventEffect, bool)> = all.into_values().collect();
                list.sort_by(|a, b| {
                    (
                        &a.0.regarding.namespace,
                        &a.0.regarding.name,
                        &a.0.regarding.field_path,
                    )
                        .cmp(&(
                            &b.0.regarding.namespace,
                            &b.0.regarding.name,
                            &b.0.regarding.field_path,
                        ))
                });
                tracing::info!(
                    open = list.len(),
                    "leader: reconciling open transitions with the Events on record"
                );
                p.write_all(list).await;
            }
            None if leading && !p.pending.is_empty() => {
                let list: Vec<(EventEffect, bool)> =
                    p.pending.drain().map(|(_, e)| (e, false)).collect();
                p.write_all(list).await;
            }
            None => {}
        }
        // A burst of Events (thousands after a first verdict) leaves its
        // request and response buffers' holes between what is kept: hand
        // them back once a burst of a hundred or more is over, or every
        // thousand Events.
        if p.since_trim >= TRIM_EVERY_EVENTS || (p.since_trim >= 100 && rx.is_empty()) {
            p.since_trim = 0;
            super::runner::release_free_heap();
        }
    }
}

/// Events written between two heap trims during a burst.
const TRIM_EVERY_EVENTS: usize = 1000;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(reason: &str, at: &str) -> K8sEvent {
        serde_json::from_value(json!({
            "metadata": {"name": "x", "namespace": "shop"},
            "eventTime": at, "reason": reason, "reportingController": "imagedrift",
            "reportingInstance": "a", "action": "CheckImage"
        }))
        .unwrap()
    }

    #[test]
    fn news_table() {
        let stale = Said {
            episode: Some("StaleImage".into()),
            failing: false,
        };
        let fresh = Said {
            episode: Some("ImageUpToDate".into()),
            failing: false,
        };
        let none = Said::default();
        let failing = Said {
            episode: Some("StaleImage".into()),
            failing: true,
        };
        // (notice, record, live, write?)
        let rows = [
            (Notice::BecameStale, &none, true, true),
            (Notice::BecameStale, &stale, false, false),
            (Notice::BecameStale, &fresh, false, true),
            (Notice::BecameFresh, &stale, false, true),
            (Notice::BecameFresh, &fresh, true, false),
            (Notice::BecameFresh, &none, false, false),
            (Notice::BecameFresh, &none, true, true),
            (Notice::CheckFailing, &none, false, true),
            (Notice::CheckFailing, &failing, false, false),
            (Notice::BecameStale, &failing, false, false),
        ];
        for (i, (n, said, live, want)) in rows.into_iter().enumerate() {
            assert_eq!(
                is_news(n, said, live),
                want,
                "row {i}: {n:?} {said:?} live={live}"
            );
        }
    }

    #[test]
    fn the_latest_episode_event_wins() {
        let a = ev("StaleImage", "2026-01-01T10:00:00.000000Z");
        let b = ev("ImageUpToDate", "2026-01-01T10:05:00.000000Z");
        let c = ev("DriftCheckFailed", "2026-01-01T10:06:00.000000Z");
        let said = what_events_say([&b, &a, &c]);
        assert_eq!(said.episode.as_deref(), Some("ImageUpToDate"));
        assert!(said.failing);
        let mut a2 = ev("StaleImage", "2026-01-01T10:00:00.000000Z");
        a2.series = Some(
            serde_json::from_value(
                json!({"count": 2, "lastObservedTime": "2026-01-01T10:07:00.000000Z"}),
            )
            .unwrap(),
        );
        assert_eq!(
            what_events_say([&b, &a2]).episode.as_deref(),
            Some("StaleImage"),
            "a series' last observation counts"
        );
        assert_eq!(what_events_say([]), Said::default());
    }
}
