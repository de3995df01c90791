//! Webhook metrics: requests by source and outcome, and the time from a
//! webhook's arrival to the verdict of the re-resolve it asked for.

use prometheus::{Histogram, HistogramOpts, IntCounterVec, Opts, Registry};

/// Every outcome label value (bounded).
pub const OUTCOMES: [&str; 8] = [
    "accepted",
    "no_match",
    "ignored",
    "unauthorized",
    "malformed",
    "too_large",
    "rate_limited",
    "unavailable",
];

/// The webhook metrics.
#[derive(Clone)]
pub struct WebhookMetrics {
    /// `imagedrift_webhook_requests_total{source, outcome}`.
    pub requests: IntCounterVec,
    /// `imagedrift_webhook_to_verdict_seconds`.
    pub to_verdict: Histogram,
}

impl WebhookMetrics {
    /// Registers the metrics on `registry`.
    pub fn register(registry: &Registry) -> prometheus::Result<WebhookMetrics> {
        let requests = IntCounterVec::new(
            Opts::new(
                "imagedrift_webhook_requests_total",
                "Webhook requests by source and outcome (accepted: matched a watched reference; no_match; ignored: not a tag push; unauthorized; malformed; too_large; rate_limited; unavailable: queue full or secret unreadable)",
            ),
            &["source", "outcome"],
        )?;
        let to_verdict = Histogram::with_opts(
            HistogramOpts::new(
                "imagedrift_webhook_to_verdict_seconds",
                "From a webhook's arrival to the verdicts of the re-resolve it triggered",
            )
            .buckets(vec![
                0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0,
            ]),
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(to_verdict.clone()))?;
        Ok(WebhookMetrics {
            requests,
            to_verdict,
        })
    }

    /// Counts one request of `source` (a source name or `unknown`) with `outcome`.
    pub fn count(&self, source: &str, outcome: &'static str) {
        debug_assert!(OUTCOMES.contains(&outcome), "{outcome}");
        self.requests.with_label_values(&[source, outcome]).inc();
    }
}
