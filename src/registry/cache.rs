//! The resolver's memory: answers shared by every caller asking the same
//! key at once (one in-flight lookup per key), kept for a lifetime chosen
//! per answer (tag TTL, failure TTL, `Retry-After`); and manifests by digest,
//! kept until the byte bound evicts the least recently used.

use crate::facts::Manifest;
use crate::reference::Digest;
use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::OnceCell;
use tokio::time::Instant;

/// Entries beyond which expired answers are swept on insert; the bound
/// then doubles past what survived, so sweeping stays linear overall.
const SWEEP_ABOVE: usize = 4096;

/// Answers by key, fetched once however many callers ask at the same time.
pub(crate) struct Flights<K, V> {
    map: Mutex<HashMap<K, Slot<V>>>,
    sweep_above: std::sync::atomic::AtomicUsize,
}

/// An answer with its expiry, or the lookup producing it.
type Slot<V> = Arc<OnceCell<(V, Instant)>>;

impl<K: Eq + Hash + Clone, V: Clone> Flights<K, V> {
    pub fn new() -> Self {
        Flights {
            map: Mutex::new(HashMap::new()),
            sweep_above: std::sync::atomic::AtomicUsize::new(SWEEP_ABOVE),
        }
    }

    /// The live answer for `key`, or the one `fetch` produces (with its
    /// lifetime). The flag says whether the answer was already there or on
    /// its way (a hit) rather than fetched by this call.
    pub async fn get<F, Fut>(&self, key: K, now: Instant, fetch: F) -> (V, bool)
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = (V, Instant)>,
    {
        let cell = {
            let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
            let live = map
                .get(&key)
                .filter(|c| c.get().is_none_or(|(_, exp)| *exp > now))
                .cloned();
            match live {
                Some(c) => c,
                None => {
                    use std::sync::atomic::Ordering::Relaxed;
                    if map.len() > self.sweep_above.load(Relaxed) {
                        map.retain(|_, c| c.get().is_none_or(|(_, exp)| *exp > now));
                        self.sweep_above
                            .store(SWEEP_ABOVE.max(map.len() * 2), Relaxed);
                    }
                    let c = Arc::new(OnceCell::new());
                    map.insert(key, c.clone());
                    c
                }
            }
        };
        let fetched = std::sync::atomic::AtomicBool::new(false);
        let (v, _) = cell
            .get_or_init(|| async {
                fetched.store(true, std::sync::atomic::Ordering::Relaxed);
                fetch().await
            })
            .await;
        (
            v.clone(),
            !fetched.load(std::sync::atomic::Ordering::Relaxed),
        )
    }

    /// Drops every answer whose key matches `pred` (a lookup in progress
    /// finishes for its callers; the next caller fetches anew).
    pub fn forget(&self, pred: impl Fn(&K) -> bool) {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|k, _| !pred(k));
    }

    /// Number of keys held (live or expired).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// Manifests by digest, bounded by the bytes of their bodies.
pub(crate) struct ManifestStore {
    bound: u64,
    inner: Mutex<StoreInner>,
}

struct StoreInner {
    bytes: u64,
    tick: u64,
    /// digest → (manifest, media type, body size, last use)
    map: HashMap<Digest, (Arc<Manifest>, String, u64, u64)>,
}

impl ManifestStore {
    pub fn new(bound: u64) -> Self {
        ManifestStore {
            bound,
            inner: Mutex::new(StoreInner {
                bytes: 0,
                tick: 0,
                map: HashMap::new(),
            }),
        }
    }

    /// The manifest and its media type, if held.
    pub fn get(&self, digest: &Digest) -> Option<(Arc<Manifest>, String)> {
        let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        s.tick += 1;
        let tick = s.tick;
        s.map.get_mut(digest).map(|e| {
            e.3 = tick;
            (e.0.clone(), e.1.clone())
        })
    }

    /// Keeps `manifest` (whose body was `size` bytes), evicting the least
    /// recently used ones over the bound. A body larger than the bound is
    /// not kept.
    pub fn insert(&self, digest: Digest, manifest: Arc<Manifest>, media_type: String, size: u64) {
        if size > self.bound {
            return;
        }
        let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        s.tick += 1;
        let tick = s.tick;
        if let Some(old) = s.map.insert(digest, (manifest, media_type, size, tick)) {
            s.bytes -= old.2;
        }
        s.bytes += size;
        while s.bytes > self.bound {
            let Some(oldest) = s
                .map
                .iter()
                .min_by_key(|(_, e)| e.3)
                .map(|(d, _)| d.clone())
            else {
                break;
            };
            if let Some(e) = s.map.remove(&oldest) {
                s.bytes -= e.2;
            }
        }
    }

    #[cfg(test)]
    pub fn bytes(&self) -> u64 {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).bytes
    }
}

/// `now + d`, saturating far in the future.
pub(crate) fn until(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .unwrap_or(now + Duration::from_secs(86_400 * 365))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(start_paused = true)]
    async fn one_fetch_per_key_until_expiry() {
        let f: Flights<&str, u32> = Flights::new();
        let calls = AtomicUsize::new(0);
        let fetch = || async {
            calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_secs(1)).await;
            (7, until(Instant::now(), Duration::from_secs(60)))
        };
        let now = Instant::now();
        let (a, b, c) = tokio::join!(
            f.get("k", now, fetch),
            f.get("k", now, fetch),
            f.get("k", now, fetch)
        );
        assert_eq!([a.0, b.0, c.0], [7, 7, 7]);
        assert_eq!([a.1, b.1, c.1].iter().filter(|hit| !**hit).count(), 1);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        tokio::time::advance(Duration::from_secs(30)).await;
        assert!(f.get("k", Instant::now(), fetch).await.1);
        tokio::time::advance(Duration::from_secs(31)).await;
        assert!(!f.get("k", Instant::now(), fetch).await.1);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert!(!f.get("other", Instant::now(), fetch).await.1);
        assert_eq!(f.len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn forgotten_answers_are_fetched_again_and_only_those() {
        let f: Flights<(&str, u64), u32> = Flights::new();
        let now = Instant::now();
        let answer = |v| move || async move { (v, until(Instant::now(), Duration::from_secs(60))) };
        f.get(("a", 1), now, answer(1)).await;
        f.get(("a", 2), now, answer(1)).await;
        f.get(("b", 1), now, answer(1)).await;
        // A push of `a` was announced: every credentials fingerprint of it goes.
        f.forget(|(name, _)| *name == "a");
        assert_eq!(f.get(("a", 1), now, answer(2)).await, (2, false));
        assert_eq!(f.get(("a", 2), now, answer(2)).await, (2, false));
        assert_eq!(f.get(("b", 1), now, answer(2)).await, (1, true));
    }

    #[tokio::test(start_paused = true)]
    async fn cancelled_fetch_is_taken_over() {
        let f: Flights<&str, u32> = Flights::new();
        let now = Instant::now();
        let slow = f.get("k", now, || async {
            tokio::time::sleep(Duration::from_secs(100)).await;
            (1, until(Instant::now(), Duration::from_secs(60)))
        });
        // The first caller gives up; a later caller fetches on its own.
        assert!(
            tokio::time::timeout(Duration::from_secs(1), slow)
                .await
                .is_err()
        );
        let (v, hit) = f
            .get("k", now, || async {
                (2, until(Instant::now(), Duration::from_secs(60)))
            })
            .await;
        assert_eq!((v, hit), (2, false));
    }

    #[test]
    fn store_evicts_least_recently_used_over_bound() {
        let s = ManifestStore::new(100);
        let m = |n: u8| {
            Arc::new(Manifest::Image {
                config: Digest::sha256_of(&[n]),
                platform: None,
            })
        };
        let d = |n: u8| Digest::sha256_of(&[n, n]);
        s.insert(d(1), m(1), "t".into(), 40);
        s.insert(d(2), m(2), "t".into(), 40);
        assert!(s.get(&d(1)).is_some()); // 1 is now more recent than 2
        s.insert(d(3), m(3), "t".into(), 40);
        assert!(s.get(&d(2)).is_none());
        assert!(s.get(&d(1)).is_some() && s.get(&d(3)).is_some());
        assert_eq!(s.bytes(), 80);
        s.insert(d(4), m(4), "t".into(), 101);
        assert!(s.get(&d(4)).is_none());
    }
}
