//! Writes Kubernetes Events (`events.k8s.io/v1`) exactly as kube's
//! `kube::runtime::events::Recorder` does (kube-runtime 5.0): the first
//! Event for a key is created, a repeat within six minutes patches that
//! Event into a series (count, last observed time). The cache differs:
//! kube's keeps every Event written in the last six minutes as a full
//! `Event` object inline in its table (about 1.5 KB a slot, never shrunk),
//! which at 10,000 pods with 3,000 stale containers was the largest
//! single item of the controller's heap (17 MiB while it grew). This one
//! keeps, per key, a 128-bit digest of the key and the Event's two times
//! (64 bytes, no allocation of its own), rebuilds the Event to patch, and
//! gives the memory back once the burst has expired. The one difference on
//! the wire: a series patch carries no `note` (the server keeps the first
//! one's, which is what kube's patch, carrying it again, leaves too).

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as K8sEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::sync::{Arc, Mutex};

pub use kube::runtime::events::{Event, EventType, Reporter};

/// How long a written Event takes repeats as a series (kube's `CACHE_TTL`).
const CACHE_TTL: SignedDuration = SignedDuration::from_mins(6);

/// kube's `EventKey` without the reporter (one per recorder): type,
/// action, reason and every field of both object references, kept as a
/// 128-bit keyed digest instead of the strings themselves (equal keys give
/// equal digests; two different keys sharing one has odds of about 2^-128
/// per pair, and the random keys keep them out of a pod author's hands).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct EventKey(u64, u64);

/// The two random hash keys of a recorder's [`EventKey`]s.
#[derive(Clone, Default)]
struct KeyHasher(RandomState, RandomState);

impl KeyHasher {
    fn key(&self, ev: &Event, regarding: &ObjectReference) -> EventKey {
        let digest = |state: &RandomState| {
            let mut h = state.build_hasher();
            ev.type_.hash(&mut h);
            ev.action.hash(&mut h);
            ev.reason.hash(&mut h);
            hash_reference(regarding, &mut h);
            match &ev.secondary {
                Some(r) => {
                    1u8.hash(&mut h);
                    hash_reference(r, &mut h);
                }
                None => 0u8.hash(&mut h),
            }
            h.finish()
        };
        EventKey(digest(&self.0), digest(&self.1))
    }
}

/// Every field of a reference (kube compares them all).
fn hash_reference(r: &ObjectReference, h: &mut impl Hasher) {
    r.api_version.hash(h);
    r.field_path.hash(h);
    r.kind.hash(h);
    r.name.hash(h);
    r.namespace.hash(h);
    r.resource_version.hash(h);
    r.uid.hash(h);
}

/// What is kept of a written Event: its times. Its name is rebuilt from
/// the reference and the creation time, and a series patch leaves out the
/// note, which the server keeps from the first (a merge patch changes only
/// the fields it names): no string is held per Event, so a burst of
/// thousands of Events leaves no small allocations behind between the
/// requests' buffers.
#[derive(Clone, Copy, Debug)]
struct Written {
    event_time: Timestamp,
    series: Option<(i32, Timestamp)>,
}

impl Written {
    /// The Event's name, as kube's recorder makes it: the object's name
    /// (the controller's without one) and the creation time in hex.
    fn name(&self, reference: &ObjectReference, controller: &str) -> String {
        format!(
            "{}.{:x}",
            reference.name.as_deref().unwrap_or(controller),
            self.event_time.as_nanosecond()
        )
    }

    fn last_seen(&self) -> Timestamp {
        self.series.map_or(self.event_time, |(_, t)| t)
    }
}

/// Publishes Events; clones share one cache (create it once).
#[derive(Clone)]
pub struct Recorder {
    client: Client,
    reporter: Reporter,
    keys: KeyHasher,
    cache: Arc<Mutex<HashMap<EventKey, Written>>>,
}

impl Recorder {
    /// A recorder writing as `reporter`.
    pub fn new(client: Client, reporter: Reporter) -> Recorder {
        Recorder {
            client,
            reporter,
            keys: KeyHasher::default(),
            cache: Arc::default(),
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<EventKey, Written>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many Events are held for series.
    pub fn cached(&self) -> usize {
        self.cache().len()
    }

    /// The Event object kube's recorder writes for `ev` about `reference`.
    fn event(
        &self,
        ev: &Event,
        reference: &ObjectReference,
        written: &Written,
        series: Option<EventSeries>,
    ) -> K8sEvent {
        // A series patch leaves the first note in place.
        let note = if series.is_some() {
            None
        } else {
            ev.note.clone()
        };
        K8sEvent {
            action: Some(ev.action.clone()),
            reason: Some(ev.reason.clone()),
            deprecated_count: None,
            deprecated_first_timestamp: None,
            deprecated_last_timestamp: None,
            deprecated_source: None,
            event_time: Some(MicroTime(written.event_time)),
            regarding: Some(reference.clone()),
            note,
            metadata: ObjectMeta {
                namespace: reference.namespace.clone(),
                name: Some(written.name(reference, &self.reporter.controller)),
                ..Default::default()
            },
            reporting_controller: Some(self.reporter.controller.clone()),
            reporting_instance: Some(
                self.reporter
                    .instance
                    .clone()
                    .unwrap_or_else(|| self.reporter.controller.clone()),
            ),
            series,
            type_: Some(match ev.type_ {
                EventType::Normal => "Normal".into(),
                EventType::Warning => "Warning".into(),
            }),
            related: ev.secondary.clone(),
        }
    }

    /// Publishes `ev` about `reference`: a new Event, or, when the same
    /// (type, action, reason, objects) was written within six minutes, that
    /// Event patched into a series. (The note of a series stays the first
    /// one's, as with kube's recorder.)
    pub async fn publish(
        &self,
        ev: &Event,
        reference: &ObjectReference,
    ) -> Result<(), kube::Error> {
        let now = Timestamp::now();
        let key = self.keys.key(ev, reference);
        let seen = {
            let mut cache = self.cache();
            cache.retain(|_, w| w.last_seen() + CACHE_TTL > now);
            // A burst that has expired gives its memory back.
            if cache.capacity() > 64 && cache.len() < cache.capacity() / 4 {
                cache.shrink_to_fit();
            }
            cache.get(&key).copied()
        };
        let (written, event) = match seen {
            Some(mut w) => {
                let count = w.series.map_or(2, |(c, _)| c + 1);
                w.series = Some((count, now));
                let series = EventSeries {
                    count,
                    last_observed_time: MicroTime(now),
                };
                let event = self.event(ev, reference, &w, Some(series));
                (w, event)
            }
            None => {
                let w = Written {
                    event_time: now,
                    series: None,
                };
                let event = self.event(ev, reference, &w, None);
                (w, event)
            }
        };
        let default_ns = "default".to_string();
        let events: Api<K8sEvent> = Api::namespaced(
            self.client.clone(),
            reference.namespace.as_ref().unwrap_or(&default_ns),
        );
        if event.series.is_some() {
            events
                .patch(
                    &written.name(reference, &self.reporter.controller),
                    &PatchParams::default(),
                    &Patch::Merge(&event),
                )
                .await?;
        } else {
            events.create(&PostParams::default(), &event).await?;
        }
        self.cache().insert(key, written);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{Request, Response};
    use kube::client::Body;

    fn reference(name: &str) -> ObjectReference {
        ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: Some(name.into()),
            namespace: Some("ns".into()),
            uid: Some(format!("uid-{name}")),
            field_path: Some("spec.containers{app}".into()),
            ..Default::default()
        }
    }

    fn stale(note: &str) -> Event {
        Event {
            type_: EventType::Warning,
            reason: "StaleImage".into(),
            note: Some(note.into()),
            action: "Check".into(),
            secondary: None,
        }
    }

    /// Answers each request with its own body and hands back (method, path, body).
    async fn answer(
        api: &mut tower_test::mock::Handle<Request<Body>, Response<Body>>,
    ) -> (String, String, serde_json::Value) {
        let (req, send) = api.next_request().await.expect("a request");
        let method = req.method().to_string();
        let path = req.uri().path().to_string();
        let body = req.into_body().collect_bytes().await.unwrap();
        send.send_response(Response::builder().body(Body::from(body.to_vec())).unwrap());
        (method, path, serde_json::from_slice(&body).unwrap())
    }

    #[test]
    fn a_key_covers_every_field_of_the_reference() {
        let keys = KeyHasher::default();
        let a = reference("p1");
        assert_eq!(
            keys.key(&stale("x"), &a),
            keys.key(&stale("other note"), &a)
        );
        let mut other_field = a.clone();
        other_field.field_path = Some("spec.containers{sidecar}".into());
        assert_ne!(
            keys.key(&stale("x"), &a),
            keys.key(&stale("x"), &other_field)
        );
        let mut other_uid = a.clone();
        other_uid.uid = Some("uid-new".into());
        assert_ne!(keys.key(&stale("x"), &a), keys.key(&stale("x"), &other_uid));
        let mut fresh = stale("x");
        fresh.reason = "FreshImage".into();
        assert_ne!(keys.key(&stale("x"), &a), keys.key(&fresh, &a));
        let mut related = stale("x");
        related.secondary = Some(reference("p2"));
        assert_ne!(keys.key(&stale("x"), &a), keys.key(&related, &a));
    }

    #[tokio::test]
    async fn a_repeat_becomes_a_series_of_the_first_event_as_with_kube() {
        let (service, mut api) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service, "default");
        let reporter = Reporter {
            controller: "imagedrift".into(),
            instance: Some("imagedrift-0".into()),
        };
        let recorder = Recorder::new(client, reporter);
        let server = tokio::spawn(async move {
            let first = answer(&mut api).await;
            let again = answer(&mut api).await;
            let other = answer(&mut api).await;
            (first, again, other)
        });
        recorder
            .publish(&stale("first"), &reference("p1"))
            .await
            .unwrap();
        recorder
            .publish(&stale("second"), &reference("p1"))
            .await
            .unwrap();
        recorder
            .publish(&stale("first"), &reference("p2"))
            .await
            .unwrap();
        let (first, again, other) = server.await.unwrap();
        assert_eq!(first.0, "POST");
        assert_eq!(first.1, "/apis/events.k8s.io/v1/namespaces/ns/events");
        assert_eq!(first.2["note"], "first");
        assert_eq!(first.2["reportingController"], "imagedrift");
        assert_eq!(first.2["reportingInstance"], "imagedrift-0");
        assert_eq!(first.2["regarding"]["fieldPath"], "spec.containers{app}");
        assert!(first.2.get("series").is_none(), "{}", first.2);
        let name = first.2["metadata"]["name"].as_str().unwrap().to_string();
        assert!(name.starts_with("p1."), "{name}");
        // The same key again: that Event, patched into a series; the patch
        // leaves the first note in place (a merge patch names no note).
        assert_eq!(again.0, "PATCH");
        assert_eq!(
            again.1,
            format!("/apis/events.k8s.io/v1/namespaces/ns/events/{name}")
        );
        assert_eq!(again.2["series"]["count"], 2);
        assert!(again.2.get("note").is_none(), "{}", again.2);
        assert_eq!(again.2["eventTime"], first.2["eventTime"]);
        // Another object: an Event of its own.
        assert_eq!(other.0, "POST");
        assert_eq!(other.2["regarding"]["name"], "p2");
        assert_eq!(recorder.cached(), 2);
    }
}
