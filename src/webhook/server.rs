//! The webhook listener: `POST /webhooks/<source>`, on its own address so it
//! can be exposed (through an Ingress) without exposing `/metrics`. Every
//! request is answered at once: rate limit, body cap, authentication and
//! parsing happen inline; matching and re-resolving happen in the
//! controller loop, after the 202.

use super::auth::{self, AuthError};
use super::config::{ConfigError, Enabled, WebhookConfig};
use super::matcher::Matcher;
use super::{Hint, Source, WebhookMetrics, parse};
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Largest body accepted (registries send a few KiB).
pub const MAX_BODY: usize = 1 << 20;

/// A token bucket per source.
#[derive(Debug)]
struct Limiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<Source, (f64, Instant)>>,
}

impl Limiter {
    fn allow(&self, source: Source, now: Instant) -> bool {
        let mut b = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let (tokens, last) = b.entry(source).or_insert((self.burst, now));
        let refill = now.saturating_duration_since(*last).as_secs_f64() * self.rate;
        *tokens = (*tokens + refill).min(self.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

struct Shared {
    sources: HashMap<Source, Enabled>,
    matcher: Matcher,
    limiter: Limiter,
    metrics: WebhookMetrics,
    hints: mpsc::Sender<Hint>,
}

/// The listener's router.
#[derive(Clone)]
pub struct Webhooks {
    shared: Arc<Shared>,
}

impl Webhooks {
    /// A listener for the enabled sources of `config`, matching through
    /// `matcher` and handing hints to `hints`.
    pub fn new(
        config: &WebhookConfig,
        matcher: Matcher,
        metrics: WebhookMetrics,
        hints: mpsc::Sender<Hint>,
    ) -> Result<Webhooks, ConfigError> {
        let sources: HashMap<Source, Enabled> = config
            .enabled_sources()?
            .into_iter()
            .map(|e| (e.source, e))
            .collect();
        let mut names: Vec<&str> = sources.keys().map(|s| s.as_str()).collect();
        names.sort();
        let open: Vec<&str> = sources
            .values()
            .filter(|e| e.secret.is_none())
            .map(|e| e.source.as_str())
            .collect();
        tracing::info!(sources = ?names, unauthenticated = ?open, "webhook sources enabled");
        Ok(Webhooks {
            shared: Arc::new(Shared {
                sources,
                matcher,
                limiter: Limiter {
                    rate: config.requests_per_second,
                    burst: f64::from(config.burst),
                    buckets: Mutex::new(HashMap::new()),
                },
                metrics,
                hints,
            }),
        })
    }

    /// The router serving `POST /webhooks/{source}`.
    pub fn router(self) -> Router {
        Router::new()
            .route("/webhooks/{source}", post(receive))
            .with_state(self)
    }
}

fn answer(code: StatusCode, text: impl Into<String>) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text.into(),
    )
        .into_response()
}

fn query_token(query: Option<&str>) -> Option<String> {
    query?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == "token").then(|| {
            // Tokens are URL-safe by advice; decode %XX anyway.
            let mut out = Vec::new();
            let b = v.as_bytes();
            let mut i = 0;
            while i < b.len() {
                let hex = b
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok());
                if b[i] == b'%'
                    && let Some(Ok(x)) = hex.map(|h| u8::from_str_radix(h, 16))
                {
                    out.push(x);
                    i += 3;
                } else {
                    out.push(if b[i] == b'+' { b' ' } else { b[i] });
                    i += 1;
                }
            }
            String::from_utf8_lossy(&out).into_owned()
        })
    })
}

async fn receive(
    State(w): State<Webhooks>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let received = Instant::now();
    let s = &w.shared;
    let Some(source) = Source::from_name(&name) else {
        s.metrics.count("unknown", "malformed");
        return answer(
            StatusCode::NOT_FOUND,
            format!("unknown webhook source {name:?}"),
        );
    };
    let Some(enabled) = s.sources.get(&source) else {
        s.metrics.count(source.as_str(), "malformed");
        return answer(
            StatusCode::NOT_FOUND,
            format!("webhook source {source} is not enabled (webhooks.sources.{source})"),
        );
    };
    let label = source.as_str();
    if !s.limiter.allow(source, received) {
        s.metrics.count(label, "rate_limited");
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "1")],
            "rate limited",
        )
            .into_response();
    }
    let too_large = || {
        s.metrics.count(label, "too_large");
        answer(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("body larger than {MAX_BODY} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return too_large();
    }
    let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => return too_large(),
    };
    if let Some(secret) = &enabled.secret {
        let header_value = headers
            .get(enabled.header.as_str())
            .and_then(|v| v.to_str().ok());
        let checked = secret.get().and_then(|key| {
            if source.signs_body() {
                auth::verify_hmac(&key, &bytes, &enabled.header, header_value)
            } else {
                let q = query_token(query.as_deref());
                auth::verify_token(&key, &enabled.header, header_value, q.as_deref())
            }
        });
        if let Err(e) = checked {
            return match e {
                AuthError::Secret { .. } => {
                    tracing::error!(source = label, error = %e, "webhook refused: secret unreadable");
                    s.metrics.count(label, "unavailable");
                    answer(StatusCode::SERVICE_UNAVAILABLE, "secret unavailable")
                }
                _ => {
                    tracing::warn!(source = label, error = %e, "webhook refused");
                    s.metrics.count(label, "unauthorized");
                    answer(StatusCode::UNAUTHORIZED, e.to_string())
                }
            };
        }
    }
    let event = headers.get("x-github-event").and_then(|v| v.to_str().ok());
    let pushes = match parse::parse(source, event, &bytes) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(source = label, error = %e, "webhook refused");
            s.metrics.count(label, "malformed");
            return answer(StatusCode::BAD_REQUEST, e.to_string());
        }
    };
    if pushes.is_empty() {
        s.metrics.count(label, "ignored");
        return answer(StatusCode::ACCEPTED, "no tag push in this event");
    }
    let mut references: Vec<String> = pushes
        .iter()
        .flat_map(|p| s.matcher.candidates(p))
        .collect();
    references.sort();
    references.dedup();
    tracing::debug!(source = label, pushes = ?pushes, "webhook received");
    let hint = Hint {
        source,
        references,
        received,
    };
    // The loop counts accepted / no_match once it has matched.
    match s.hints.try_send(hint) {
        Ok(()) => answer(StatusCode::ACCEPTED, "accepted"),
        Err(_) => {
            s.metrics.count(label, "unavailable");
            tracing::warn!(
                source = label,
                "webhook refused: the hint queue is full or closed"
            );
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, "1")],
                "busy",
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn token_bucket_refills_at_the_rate() {
        let l = Limiter {
            rate: 2.0,
            burst: 3.0,
            buckets: Mutex::new(HashMap::new()),
        };
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(l.allow(Source::Github, t0));
        }
        assert!(!l.allow(Source::Github, t0));
        assert!(l.allow(Source::Quay, t0), "buckets are per source");
        assert!(l.allow(Source::Github, t0 + Duration::from_millis(500)));
        assert!(!l.allow(Source::Github, t0 + Duration::from_millis(500)));
    }

    #[test]
    fn query_tokens_are_decoded() {
        assert_eq!(query_token(Some("a=1&token=x%2By")).as_deref(), Some("x+y"));
        assert_eq!(query_token(Some("token=abc")).as_deref(), Some("abc"));
        assert_eq!(query_token(Some("tokens=abc")), None);
        assert_eq!(query_token(None), None);
    }
}
