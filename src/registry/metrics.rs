//! The resolver's Prometheus series (names fixed: the dashboard and alerts
//! use them). The `registry` label is the host as written in the reference.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts};

/// Counters and histograms of the registry resolver.
#[derive(Clone)]
pub(crate) struct Metrics {
    pub requests: IntCounterVec,
    pub gets: IntCounterVec,
    pub cache: IntCounterVec,
    pub duration: HistogramVec,
    pub failures: IntCounterVec,
    /// Credential plugin and helper runs, and their failures, by provider.
    pub providers: crate::credentials::Counters,
}

impl Metrics {
    /// Every request counted so far, whatever its registry and status.
    pub fn requests_total(&self) -> u64 {
        use prometheus::core::Collector as _;
        self.requests
            .collect()
            .iter()
            .flat_map(|f| f.get_metric())
            .map(|m| m.get_counter().get_value() as u64)
            .sum()
    }

    /// Creates the series and registers them on `registry`.
    pub fn register(registry: &prometheus::Registry) -> Result<Metrics, prometheus::Error> {
        let requests = IntCounterVec::new(
            Opts::new(
                "imagedrift_registry_requests_total",
                "HTTP requests to registries, by status class",
            ),
            &["registry", "method", "status_class"],
        )?;
        let gets = IntCounterVec::new(
            Opts::new(
                "imagedrift_registry_get_requests_total",
                "Manifest GETs (they count against Docker Hub pull quota)",
            ),
            &["registry"],
        )?;
        let cache = IntCounterVec::new(
            Opts::new(
                "imagedrift_registry_cache_lookups_total",
                "Tag and manifest cache lookups",
            ),
            &["cache", "result"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "imagedrift_registry_request_duration_seconds",
                "Duration of registry HTTP requests",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
            &["registry", "method"],
        )?;
        let failures = IntCounterVec::new(
            Opts::new(
                "imagedrift_registry_lookup_failures_total",
                "Failed tag or manifest lookups, by category",
            ),
            &["registry", "category"],
        )?;
        let provider_execs = IntCounterVec::new(
            Opts::new(
                "imagedrift_credential_provider_execs_total",
                "Runs of kubelet credential-provider plugins and docker credential helpers",
            ),
            &["provider"],
        )?;
        let provider_failures = IntCounterVec::new(
            Opts::new(
                "imagedrift_credential_provider_failures_total",
                "Plugin or helper runs that gave no credentials (exit status, timeout, bad answer)",
            ),
            &["provider"],
        )?;
        registry.register(Box::new(provider_execs.clone()))?;
        registry.register(Box::new(provider_failures.clone()))?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(gets.clone()))?;
        registry.register(Box::new(cache.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(failures.clone()))?;
        Ok(Metrics {
            requests,
            gets,
            cache,
            duration,
            failures,
            providers: crate::credentials::Counters {
                execs: provider_execs,
                failures: provider_failures,
            },
        })
    }

    /// Counts a cache lookup.
    pub fn cache(&self, cache: &str, hit: bool) {
        self.cache
            .with_label_values(&[cache, if hit { "hit" } else { "miss" }])
            .inc();
    }
}

/// `2xx`… for a status, `error` when no status came back.
pub(crate) fn status_class(status: Option<u16>) -> &'static str {
    match status {
        Some(200..=299) => "2xx",
        Some(300..=399) => "3xx",
        Some(400..=499) => "4xx",
        Some(500..=599) => "5xx",
        _ => "error",
    }
}
