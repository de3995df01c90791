//! One registry host as the resolver talks to it: plain `reqwest` requests
//! under a concurrency and rate limit, each counted and timed, with the
//! bearer/basic challenge flow, `Retry-After` and backoff.
//!
//! Why not oci-client here: its pull API hides the individual HTTP
//! requests, so it can't count each one by method and status, cap bodies
//! at 4 MiB before reading them, limit concurrency and rate per registry,
//! honour `Retry-After`, or HEAD with all four media types and read both
//! headers. The tests still push their images with oci-client.

use super::clock::Clock;
use super::metrics::{Metrics, status_class};
use super::pace::Pace;
use crate::facts::{ACCEPT_ALL, Credential, FailureCategory, LookupFailure, Secret};
use reqwest::Method;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, WWW_AUTHENTICATE};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::time::Instant;

/// Largest token-endpoint answer read.
const MAX_TOKEN_BYTES: usize = 1 << 20;

/// A failed request, with how long to leave the key alone (`Retry-After`
/// beyond what we wait inline).
#[derive(Debug, Clone)]
pub(crate) struct Fail {
    pub failure: LookupFailure,
    pub hold: Option<Duration>,
}

impl From<LookupFailure> for Fail {
    fn from(failure: LookupFailure) -> Fail {
        Fail {
            failure,
            hold: None,
        }
    }
}

pub(crate) fn fail(category: FailureCategory, detail: impl Into<String>) -> Fail {
    LookupFailure::new(category, detail).into()
}

/// A finished request: status, headers, and the body for a successful GET.
pub(crate) struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Option<Vec<u8>>,
}

impl Reply {
    /// A header as text, if present and printable.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// How a registry asked us to authenticate.
#[derive(Clone, Debug, PartialEq)]
enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

#[derive(Default)]
struct AuthState {
    challenge: Option<Challenge>,
    /// (scope, credential fingerprint) → (token, expiry)
    tokens: HashMap<(String, u64), (String, Instant)>,
}

/// One registry host and its limits and auth state.
pub(crate) struct Host {
    /// The host as written in references (metric label).
    pub label: String,
    /// Base URL, without trailing slash; `/v2/…` is appended.
    pub base: String,
    pub client: reqwest::Client,
    pub timeout: Duration,
    pub max_retries: u32,
    pub max_retry_wait: Duration,
    /// How long the host is left alone after it could not be reached.
    down_for: Duration,
    /// Until when, and why, the host is considered unreachable: lookups of
    /// other tags fail fast instead of each dialling a dead registry.
    down: Mutex<Option<(Instant, LookupFailure)>>,
    sem: Semaphore,
    /// Adaptive pacing (registry/pace.rs): generous start, halved on
    /// 429/5xx, slow recovery, the configured rate as ceiling.
    pace: Mutex<Pace>,
    auth: Mutex<AuthState>,
}

/// A stable fingerprint of a credential (0 for anonymous), for cache keys.
pub(crate) fn fingerprint(cred: Option<&Credential>) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    if let Some(c) = cred {
        1u8.hash(&mut h);
        c.hash(&mut h);
    }
    h.finish()
}

/// The failure a final HTTP status means, with what the registry's error
/// body says where it tells more (distribution answers a GET with
/// `{"errors": [{"code": "NAME_UNKNOWN"}]}` for a missing repository and
/// `MANIFEST_UNKNOWN` for a missing tag or digest; a HEAD has no body).
pub(crate) fn status_failure_with(status: u16, what: &str, body: Option<&[u8]>) -> Fail {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<ErrorCode>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorCode {
        code: String,
    }
    let mut f = status_failure(status, what);
    let code = body
        .and_then(|b| serde_json::from_slice::<Errors>(b).ok())
        .and_then(|e| e.errors.into_iter().next())
        .map(|e| e.code);
    let why = match code.as_deref() {
        Some("NAME_UNKNOWN") => {
            "the repository does not exist (NAME_UNKNOWN): check the repository path"
        }
        Some("MANIFEST_UNKNOWN") => {
            "the registry has no such tag or digest in this repository (MANIFEST_UNKNOWN)"
        }
        _ => return f,
    };
    f.failure.detail.push_str(&format!(": {why}"));
    f
}

/// The failure a final HTTP status means.
pub(crate) fn status_failure(status: u16, what: &str) -> Fail {
    let category = match status {
        401 => FailureCategory::Unauthorized,
        403 => FailureCategory::Denied,
        404 => FailureCategory::NotFound,
        429 => FailureCategory::RateLimited,
        500..=599 => FailureCategory::ServerError,
        _ => FailureCategory::InvalidResponse,
    };
    fail(category, format!("{what}: HTTP {status}"))
}

/// Maps a transport error to a category; the whole source chain is read
/// because reqwest wraps rustls and io errors.
fn classify(e: &reqwest::Error, what: &str) -> Fail {
    let mut chain = String::new();
    let mut src: Option<&dyn std::error::Error> = Some(e);
    while let Some(s) = src {
        chain.push_str(": ");
        chain.push_str(&s.to_string());
        src = s.source();
    }
    let lower = chain.to_ascii_lowercase();
    // rustls reading an HTTP answer as a TLS record.
    if lower.contains("invalidcontenttype") {
        let host = e
            .url()
            .and_then(|u| {
                u.host_str()
                    .map(|h| u.port().map_or(h.to_string(), |p| format!("{h}:{p}")))
            })
            .unwrap_or_else(|| "this host".into());
        return fail(
            FailureCategory::Tls,
            format!(
                "{what}: the registry at {host} answered plain HTTP to an HTTPS request; set registries.hosts.\"{host}\".insecureHttp: true (or use an https endpoint)"
            ),
        );
    }
    let category = if e.is_timeout() || lower.contains("timed out") {
        FailureCategory::Timeout
    } else if [
        "certificate",
        "tls",
        "handshake",
        "unknownissuer",
        "corrupt message",
    ]
    .iter()
    .any(|k| lower.contains(k))
    {
        FailureCategory::Tls
    } else {
        FailureCategory::Unreachable
    };
    fail(category, format!("{what}{chain}"))
}

/// Parses `Retry-After`: delay seconds, or an HTTP date (relative to `now`).
fn retry_after(headers: &HeaderMap, now: std::time::SystemTime) -> Option<Duration> {
    let v = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    // The other form RFC 9110 allows: an HTTP date; a past one means now.
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Exponential backoff with jitter: between half and all of 0.5 s × 2^n,
/// capped at 8 s.
fn backoff(attempt: u32) -> Duration {
    let full = 0.5 * f64::from(1u32 << attempt.min(4));
    Duration::from_secs_f64(full * (0.5 + 0.5 * fastrand::f64()))
}

/// Parses a `WWW-Authenticate` header (one challenge; Bearer or Basic).
fn parse_challenge(v: &str) -> Option<Challenge> {
    let v = v.trim();
    let (scheme, rest) = v.split_once(char::is_whitespace).unwrap_or((v, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut params = HashMap::new();
    let mut s = rest.trim();
    while !s.is_empty() {
        let (k, after) = s.split_once('=')?;
        let after = after.trim_start();
        let (val, remaining) = if let Some(q) = after.strip_prefix('"') {
            let end = q.find('"')?;
            (&q[..end], &q[end + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim(), &after[end..])
        };
        params.insert(k.trim().to_ascii_lowercase(), val.to_string());
        s = remaining.trim_start().trim_start_matches(',').trim_start();
    }
    Some(Challenge::Bearer {
        realm: params.remove("realm")?,
        service: params.remove("service"),
    })
}

fn basic_header(username: &str, password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
    )
}

#[derive(serde::Deserialize)]
struct TokenAnswer {
    token: Option<String>,
    access_token: Option<String>,
    expires_in: Option<u64>,
}

impl Host {
    /// A host with its own limits and empty auth state.
    pub fn new(
        label: String,
        base: String,
        client: reqwest::Client,
        limits: &super::config::Limits,
        max_retries: u32,
        max_retry_wait: Duration,
        down_for: Duration,
    ) -> Host {
        Host {
            label,
            base,
            client,
            timeout: limits.timeout,
            max_retries,
            max_retry_wait,
            down_for,
            down: Mutex::new(None),
            sem: Semaphore::new(limits.max_concurrent),
            pace: Mutex::new(Pace::new(limits.start_rate, limits.requests_per_second)),
            auth: Mutex::new(AuthState::default()),
        }
    }

    /// `GET`/`HEAD` `path` (under `/v2/`) for `repo`, authenticating with
    /// `cred` (or anonymously) as the registry asks, retrying 429 within
    /// `Retry-After`, 5xx and timeouts with backoff. Returns the final reply
    /// (any status the caller must judge) or a transport failure.
    pub async fn request(
        &self,
        env: &Env<'_>,
        method: Method,
        path: &str,
        repo: &str,
        cred: Option<&Credential>,
    ) -> Result<Reply, Fail> {
        let url = format!("{}/v2/{}", self.base, path);
        let scope = format!("repository:{repo}:pull");
        let mut attempt = 0u32;
        let mut challenged = false;
        if let Some((until, why)) = &*self.down.lock().unwrap_or_else(|e| e.into_inner())
            && *until > env.clock.now()
        {
            return Err(fail(
                why.category,
                format!(
                    "{} (not asked again until registries.defaults.failureTtl passes)",
                    why.detail
                ),
            ));
        }
        loop {
            let auth = self.auth_header(env, &scope, cred).await?;
            let result = self
                .send(env, method.clone(), &url, auth, attempt > 0)
                .await;
            let reply = match result {
                Ok(r) => r,
                Err(f)
                    if f.failure.category == FailureCategory::Timeout
                        && attempt < self.max_retries =>
                {
                    env.clock.sleep(backoff(attempt)).await;
                    attempt += 1;
                    continue;
                }
                Err(f) => {
                    if f.failure.category == FailureCategory::Unreachable {
                        let until = super::cache::until(env.clock.now(), self.down_for);
                        *self.down.lock().unwrap_or_else(|e| e.into_inner()) =
                            Some((until, f.failure.clone()));
                    }
                    return Err(f);
                }
            };
            match reply.status {
                401 if !challenged => {
                    challenged = true;
                    let Some(c) = reply
                        .header(WWW_AUTHENTICATE.as_str())
                        .and_then(parse_challenge)
                    else {
                        return Ok(reply);
                    };
                    // Basic auth without a password can't do better.
                    let hopeless = c == Challenge::Basic
                        && !matches!(cred.map(|c| &c.secret), Some(Secret::Basic { .. }));
                    {
                        let mut st = self.auth.lock().unwrap_or_else(|e| e.into_inner());
                        st.tokens.remove(&(scope.clone(), fingerprint(cred)));
                        st.challenge = Some(c);
                    }
                    if hopeless {
                        return Ok(reply);
                    }
                }
                429 => {
                    let wait = retry_after(&reply.headers, std::time::SystemTime::now());
                    // Every request to the host waits out the pause, up to
                    // the longest inline wait (a longer one fails lookups).
                    let hold = wait.map(|w| w.min(self.max_retry_wait));
                    self.pace().throttled(env.clock.now(), hold);
                    let inline = wait.is_none_or(|w| w <= self.max_retry_wait);
                    if attempt < self.max_retries && inline {
                        env.clock
                            .sleep(wait.unwrap_or_else(|| backoff(attempt)))
                            .await;
                        attempt += 1;
                        continue;
                    }
                    let mut f = status_failure(429, &format!("{method} {url}"));
                    if let Some(w) = wait {
                        f.failure
                            .detail
                            .push_str(&format!(" (Retry-After {}s)", w.as_secs()));
                    }
                    f.hold = wait;
                    return Err(f);
                }
                500..=599 if attempt < self.max_retries => {
                    // A 503 may say when to come back; otherwise back off.
                    let asked = retry_after(&reply.headers, std::time::SystemTime::now())
                        .filter(|w| *w <= self.max_retry_wait);
                    self.pace().throttled(env.clock.now(), asked);
                    let wait = asked.unwrap_or_else(|| backoff(attempt));
                    env.clock.sleep(wait).await;
                    attempt += 1;
                }
                500..=599 => {
                    self.pace().throttled(env.clock.now(), None);
                    return Ok(reply);
                }
                _ => {
                    self.pace().succeeded(env.clock.now());
                    return Ok(reply);
                }
            }
        }
    }

    fn pace(&self) -> std::sync::MutexGuard<'_, Pace> {
        self.pace.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The `Authorization` header for `cred` under the challenge this host
    /// last sent, fetching a bearer token when needed.
    async fn auth_header(
        &self,
        env: &Env<'_>,
        scope: &str,
        cred: Option<&Credential>,
    ) -> Result<Option<String>, Fail> {
        if let Some(Credential {
            secret: Secret::RegistryToken(t),
            ..
        }) = cred
        {
            return Ok(Some(format!("Bearer {t}")));
        }
        let key = (scope.to_string(), fingerprint(cred));
        let challenge = {
            let st = self.auth.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((tok, exp)) = st.tokens.get(&key)
                && *exp > env.clock.now()
            {
                return Ok(Some(format!("Bearer {tok}")));
            }
            st.challenge.clone()
        };
        match (challenge, cred.map(|c| &c.secret)) {
            (None, _) => Ok(None),
            (Some(Challenge::Basic), Some(Secret::Basic { username, password })) => {
                Ok(Some(basic_header(username, password)))
            }
            (Some(Challenge::Basic), _) => Ok(None),
            (Some(Challenge::Bearer { realm, service }), _) => {
                let (token, ttl) = self
                    .fetch_token(env, &realm, service.as_deref(), scope, cred)
                    .await?;
                let exp = super::cache::until(env.clock.now(), ttl);
                let now = env.clock.now();
                let mut st = self.auth.lock().unwrap_or_else(|e| e.into_inner());
                if st.tokens.len() > 1024 {
                    st.tokens.retain(|_, (_, exp)| *exp > now);
                }
                st.tokens.insert(key, (token.clone(), exp));
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }

    /// Asks the token endpoint for a pull token (basic credentials, a
    /// refresh token, or anonymously).
    async fn fetch_token(
        &self,
        env: &Env<'_>,
        realm: &str,
        service: Option<&str>,
        scope: &str,
        cred: Option<&Credential>,
    ) -> Result<(String, Duration), Fail> {
        let what = |m: &str| format!("token endpoint {realm}{m}");
        let mut url = reqwest::Url::parse(realm).map_err(|e| {
            fail(
                FailureCategory::InvalidResponse,
                what(&format!(" is not a URL ({e})")),
            )
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(fail(
                FailureCategory::InvalidResponse,
                what(" is not http(s)"),
            ));
        }
        let mut form = reqwest::Url::parse("x:/")
            .map_err(|e| fail(FailureCategory::InvalidResponse, e.to_string()))?;
        {
            let mut q = form.query_pairs_mut();
            if let Some(s) = service {
                q.append_pair("service", s);
            }
            q.append_pair("scope", scope);
        }
        let (method, req) = match cred.map(|c| &c.secret) {
            Some(Secret::IdentityToken(refresh)) => {
                form.query_pairs_mut()
                    .append_pair("grant_type", "refresh_token")
                    .append_pair("refresh_token", refresh)
                    .append_pair("client_id", "imagedrift");
                let rb = self
                    .client
                    .post(url)
                    .header(
                        reqwest::header::CONTENT_TYPE,
                        "application/x-www-form-urlencoded",
                    )
                    .body(form.query().unwrap_or("").to_string());
                ("POST", rb)
            }
            secret => {
                url.set_query(form.query());
                let rb = self.client.get(url);
                let rb = match secret {
                    Some(Secret::Basic { username, password }) => {
                        rb.header(AUTHORIZATION, basic_header(username, password))
                    }
                    _ => rb,
                };
                ("GET", rb)
            }
        };
        let started = std::time::Instant::now();
        let res = req.timeout(self.timeout).send().await;
        let (status, body) = match res {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let body = read_capped(resp, MAX_TOKEN_BYTES, &what("")).await;
                (Some(status), body)
            }
            Err(e) => (None, Err(classify(&e, &what("")))),
        };
        env.record(&self.label, method, status, started.elapsed(), false);
        let body = body?;
        let status = status.unwrap_or(0);
        if !(200..300).contains(&status) {
            let mut f = status_failure(status, &what(""));
            if let Some(c) = cred {
                f.failure
                    .detail
                    .push_str(&format!(" with credential from {}", c.origin));
            }
            return Err(f);
        }
        let answer: TokenAnswer = serde_json::from_slice(&body).map_err(|e| {
            fail(
                FailureCategory::InvalidResponse,
                what(&format!(" answered non-JSON: {e}")),
            )
        })?;
        let token = answer
            .token
            .or(answer.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                fail(
                    FailureCategory::InvalidResponse,
                    what(" answered without a token"),
                )
            })?;
        // Spec: tokens live at least 60 s; renew a little early.
        let secs = answer.expires_in.unwrap_or(60).max(60);
        Ok((token, Duration::from_secs(secs.saturating_sub(secs / 10))))
    }

    /// One HTTP request under the host's limits, counted and timed. A
    /// successful GET's body is read (at most 4 MiB).
    async fn send(
        &self,
        env: &Env<'_>,
        method: Method,
        url: &str,
        auth: Option<String>,
        retry: bool,
    ) -> Result<Reply, Fail> {
        let _permit = self
            .sem
            .acquire()
            .await
            .map_err(|_| fail(FailureCategory::RateLimited, "registry limiter closed"))?;
        // A retry has already waited its backoff or Retry-After (and
        // retries are bounded): it is counted, not paced again.
        let wait = if retry {
            self.pace().note(env.clock.now());
            Duration::ZERO
        } else {
            self.pace().reserve(env.clock.now())
        };
        if !wait.is_zero() {
            env.clock.sleep(wait).await;
        }
        let what = format!("{method} {url}");
        let started = std::time::Instant::now();
        let mut rb = self
            .client
            .request(method.clone(), url)
            .timeout(self.timeout)
            .header(ACCEPT, ACCEPT_ALL);
        if let Some(a) = auth {
            rb = rb.header(AUTHORIZATION, a);
        }
        let is_get = method == Method::GET;
        let (status, out) = match rb.send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let headers = resp.headers().clone();
                let body = if is_get && (200..300).contains(&status) {
                    read_capped(resp, super::manifest::MAX_MANIFEST_BYTES, &what)
                        .await
                        .map(Some)
                } else if is_get && status == 404 {
                    // The error body says which of repository or tag is missing.
                    Ok(read_capped(resp, 64 << 10, &what).await.ok())
                } else {
                    Ok(None)
                };
                (
                    Some(status),
                    body.map(|body| Reply {
                        status,
                        headers,
                        body,
                    }),
                )
            }
            Err(e) => (None, Err(classify(&e, &what))),
        };
        env.record(
            &self.label,
            method.as_str(),
            status,
            started.elapsed(),
            is_get,
        );
        tracing::debug!(registry = %self.label, %method, url, ?status, "registry request");
        out
    }
}

/// Reads a body, refusing more than `cap` bytes (by `Content-Length` before
/// reading, and while reading).
async fn read_capped(mut resp: reqwest::Response, cap: usize, what: &str) -> Result<Vec<u8>, Fail> {
    let too_big = |n: u64| {
        fail(
            FailureCategory::InvalidResponse,
            format!("{what}: body of {n}+ bytes exceeds the {cap}-byte limit; refused"),
        )
    };
    if let Some(n) = resp.content_length()
        && n > cap as u64
    {
        return Err(too_big(n));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| classify(&e, what))? {
        if body.len() + chunk.len() > cap {
            return Err(too_big((body.len() + chunk.len()) as u64));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// What a request needs from the resolver: its clock and metrics.
pub(crate) struct Env<'a> {
    pub clock: &'a dyn Clock,
    pub metrics: &'a Metrics,
}

impl Env<'_> {
    fn record(
        &self,
        registry: &str,
        method: &str,
        status: Option<u16>,
        took: Duration,
        manifest_get: bool,
    ) {
        let m = self.metrics;
        m.requests
            .with_label_values(&[registry, method, status_class(status)])
            .inc();
        m.duration
            .with_label_values(&[registry, method])
            .observe(took.as_secs_f64());
        if manifest_get {
            m.gets.with_label_values(&[registry]).inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into())
            })
        );
        assert_eq!(
            parse_challenge(r#"bearer realm="https://ghcr.io/token", service=ghcr.io"#),
            Some(Challenge::Bearer {
                realm: "https://ghcr.io/token".into(),
                service: Some("ghcr.io".into())
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Negotiate"), None);
        assert_eq!(parse_challenge(r#"Bearer service="x""#), None);
    }

    #[test]
    fn retry_after_and_backoff() {
        let mut h = HeaderMap::new();
        let now = httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        h.insert(reqwest::header::RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(7)));
        h.insert(
            reqwest::header::RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:30 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(30)));
        h.insert(
            reqwest::header::RETRY_AFTER,
            "Wed, 21 Oct 2015 07:00:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h, now), Some(Duration::ZERO), "a past date");
        h.insert(reqwest::header::RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&h, now), None);
        for n in 0..8 {
            let b = backoff(n);
            let full = 0.5 * f64::from(1u32 << n.min(4));
            assert!(
                b.as_secs_f64() >= full / 2.0 && b.as_secs_f64() <= full,
                "{n}: {b:?}"
            );
        }
    }
}
