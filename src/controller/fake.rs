//! An in-memory registry for tests and benchmarks: tags and manifests are
//! set by hand, lookups are counted.

use crate::facts::{Credential, Descriptor, FailureCategory, LookupFailure, Manifest, Registry};
use crate::reference::{Digest, ImageRef};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// A registry held in memory.
#[derive(Default)]
pub struct FakeRegistry {
    tags: Mutex<HashMap<String, Result<Descriptor, LookupFailure>>>,
    manifests: Mutex<HashMap<(String, Digest), Arc<Manifest>>>,
    resolves: AtomicUsize,
    fetches: AtomicUsize,
}

fn tag_key(image: &ImageRef) -> String {
    format!(
        "{}:{}",
        image.name(),
        image.effective_tag().unwrap_or_default()
    )
}

impl FakeRegistry {
    /// Points `image`'s tag at `descriptor`.
    pub fn set_tag(&self, image: &ImageRef, descriptor: Descriptor) {
        self.lock_tags().insert(tag_key(image), Ok(descriptor));
    }

    /// Makes resolving `image`'s tag fail.
    pub fn fail_tag(&self, image: &ImageRef, failure: LookupFailure) {
        self.lock_tags().insert(tag_key(image), Err(failure));
    }

    /// Stores a manifest of `image`'s repository.
    pub fn put_manifest(&self, image: &ImageRef, digest: Digest, manifest: Manifest) {
        self.lock_manifests()
            .insert((image.name(), digest), Arc::new(manifest));
    }

    /// How many tags were resolved.
    pub fn resolves(&self) -> usize {
        self.resolves.load(Ordering::Relaxed)
    }

    /// How many manifests were fetched.
    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::Relaxed)
    }

    fn lock_tags(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, Result<Descriptor, LookupFailure>>> {
        self.tags.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_manifests(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<(String, Digest), Arc<Manifest>>> {
        self.manifests.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Registry for FakeRegistry {
    async fn resolve_tag(
        &self,
        image: &ImageRef,
        _: &[Credential],
    ) -> Result<Descriptor, LookupFailure> {
        self.resolves.fetch_add(1, Ordering::Relaxed);
        self.lock_tags()
            .get(&tag_key(image))
            .cloned()
            .unwrap_or_else(|| {
                Err(LookupFailure::new(
                    FailureCategory::NotFound,
                    format!("tag {} not found", tag_key(image)),
                ))
            })
    }

    async fn manifest(
        &self,
        image: &ImageRef,
        digest: &Digest,
        _: &[Credential],
    ) -> Result<Arc<Manifest>, LookupFailure> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        self.lock_manifests()
            .get(&(image.name(), digest.clone()))
            .cloned()
            .ok_or_else(|| {
                LookupFailure::new(
                    FailureCategory::NotFound,
                    format!("manifest {digest} not found"),
                )
            })
    }
}
