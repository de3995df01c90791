//! The `registries:` section of the controller's configuration: defaults,
//! per-host overrides (mirror endpoint, plain HTTP, CA bundle, limits) and
//! the controller's own credentials file. Validated once, at start-up.
//!
//! ```yaml
//! registries:
//!   defaults:
//!     timeout: 10s               # one HTTP request, body included
//!     maxConcurrent: 8           # concurrent requests per registry
//!     requestsPerSecond: 0       # ceiling per registry; 0 = none (adaptive; Docker Hub: 5)
//!     tagTtl: 60s                # how long a tag's digest is reused (below `interval`)
//!     failureTtl: 30s            # how long a failed lookup is remembered
//!     manifestCacheBytes: 67108864
//!     maxRetries: 2              # after 429 / 5xx / timeout
//!     maxRetryWait: 30s          # longer Retry-After fails the lookup
//!   hosts:
//!     "docker.io":
//!       endpoint: https://mirror.internal:5000   # the mirror the nodes pull through
//!     "registry.internal:5000":
//!       caBundle: /etc/imagedrift/ca.pem
//!       timeout: 5s
//!       maxConcurrent: 4
//!       requestsPerSecond: 5
//!     "dev-registry.local:5000":
//!       insecureHttp: true
//!   credentialsFile: /etc/imagedrift/registry-credentials/config.json
//! ```
//!
//! Unconfigured loopback hosts (`localhost`, `127.0.0.1`) are spoken to in
//! plain HTTP, as Docker does; `/v2/` is appended to `endpoint`.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::duration_str;

/// Limits and lifetimes that apply to every registry unless a host
/// overrides them.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Defaults {
    /// Timeout of one HTTP request, body included.
    #[serde(with = "duration_str")]
    pub timeout: Duration,
    /// Concurrent requests per registry.
    pub max_concurrent: usize,
    /// Ceiling of requests per second per registry (0 = none: the pace
    /// adapts to what the registry answers; Docker Hub has its own).
    pub requests_per_second: f64,
    /// How long a tag's answer is reused.
    #[serde(with = "duration_str")]
    pub tag_ttl: Duration,
    /// How long a failed lookup is remembered before asking again.
    #[serde(with = "duration_str")]
    pub failure_ttl: Duration,
    /// Bound of the manifest cache, in bytes of manifest bodies.
    pub manifest_cache_bytes: u64,
    /// Retries after a 429, 5xx or timeout.
    pub max_retries: u32,
    /// Longest `Retry-After` waited for inline; longer ones fail the lookup
    /// (rate_limited) and are remembered for that long.
    #[serde(with = "duration_str")]
    pub max_retry_wait: Duration,
}

impl Default for Defaults {
    fn default() -> Defaults {
        Defaults {
            timeout: Duration::from_secs(10),
            max_concurrent: 8,
            requests_per_second: 0.0,
            tag_ttl: Duration::from_secs(60),
            failure_ttl: Duration::from_secs(30),
            manifest_cache_bytes: 64 << 20,
            max_retries: 2,
            max_retry_wait: Duration::from_secs(30),
        }
    }
}

/// Settings of one registry host, keyed by the host as written in image
/// references (`registry.example:5000`, `docker.io`).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct HostConfig {
    /// Base URL to ask instead of the host itself (a mirror or pull-through
    /// cache the nodes use), e.g. `https://mirror.internal:5000`.
    pub endpoint: Option<String>,
    /// Speak plain HTTP to the host.
    pub insecure_http: bool,
    /// PEM file of extra CA certificates trusted for this host.
    pub ca_bundle: Option<PathBuf>,
    /// Accept any certificate (logged loudly; for tests and emergencies).
    pub skip_tls_verify: bool,
    /// Overrides `defaults.timeout`.
    #[serde(with = "duration_str::option")]
    pub timeout: Option<Duration>,
    /// Overrides `defaults.maxConcurrent`.
    pub max_concurrent: Option<usize>,
    /// Overrides `defaults.requestsPerSecond`.
    pub requests_per_second: Option<f64>,
}

/// The whole `registries:` section.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct RegistriesConfig {
    /// Settings for every registry.
    pub defaults: Defaults,
    /// Per-host overrides.
    pub hosts: BTreeMap<String, HostConfig>,
    /// A docker `config.json` (`{"auths": …}`) with credentials the nodes
    /// have but the API doesn't show (node config, cloud credential plugins).
    pub credentials_file: Option<PathBuf>,
    /// kubelet credential-provider plugins (`config`, `binDir`, `timeout`).
    pub credential_providers: crate::credentials::CredentialProvidersConfig,
    /// Docker config files tried after `credentialsFile` (the CLI's
    /// `~/.docker/config.json`); not a configuration key.
    #[serde(skip)]
    pub more_credentials_files: Vec<PathBuf>,
}

/// A configuration error: which key, what is wrong, how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value is out of range or malformed.
    #[error("registries.{key}: {problem}; {fix}")]
    Invalid {
        /// Dotted key path under `registries`.
        key: String,
        /// What is wrong.
        problem: String,
        /// How to fix it.
        fix: String,
    },
    /// A file named by the configuration can't be read.
    #[error(
        "registries.{key}: cannot read {path}: {}; mount the file there or correct the path",
        plain_io(source)
    )]
    Unreadable {
        /// Dotted key path under `registries`.
        key: String,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The credentials file is not a valid docker config.
    #[error("registries.credentialsFile: {0}")]
    Credentials(#[from] crate::keyring::KeyringError),
    /// A credential provider config, docker config or related setting is invalid.
    #[error("{0}")]
    Node(#[from] crate::credentials::CredentialsError),
    /// The metrics could not be registered (e.g. registered twice).
    #[error("registry metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// An OS error without Rust's `(os error N)` suffix.
fn plain_io(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

fn invalid(
    key: impl Into<String>,
    problem: impl Into<String>,
    fix: impl Into<String>,
) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        problem: problem.into(),
        fix: fix.into(),
    }
}

/// A file the configuration names must exist at start-up: a missing mount
/// (a Secret not created yet, a typo in the path) is a configuration error,
/// not a lookup that fails later.
fn readable_file(key: &str, path: &std::path::Path) -> Result<(), ConfigError> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(_) => Err(invalid(
            key,
            format!("{} is not a file", path.display()),
            "name the file itself (a PEM bundle, or a docker config.json)",
        )),
        Err(source) => Err(ConfigError::Unreadable {
            key: key.to_string(),
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// The limits for one host, defaults and overrides merged.
#[derive(Clone, Debug)]
pub(crate) struct Limits {
    pub timeout: Duration,
    pub max_concurrent: usize,
    /// The ceiling (0 = none).
    pub requests_per_second: f64,
    /// Where the adaptive pace starts (0 = unpaced until pushed back).
    pub start_rate: f64,
}

/// Docker Hub's default ceiling and start, requests per second. Its
/// documented limits count manifest GETs ("pulls": 10 an hour per IP
/// anonymous, 100 an hour authenticated Personal), not HEADs; the resolver
/// HEADs tags and GETs a manifest only for a digest it has not cached, so
/// the ceiling here keeps the HEADs polite (Hub answers 429 to bursts).
pub const DOCKER_HUB_REQUESTS_PER_SECOND: f64 = 5.0;

fn check_duration(key: &str, v: Duration, allow_zero: bool) -> Result<(), ConfigError> {
    let ok = (allow_zero || !v.is_zero()) && v <= Duration::from_secs(86_400 * 30);
    if ok {
        Ok(())
    } else {
        let range = if allow_zero { "0s" } else { "more than 0s" };
        Err(invalid(
            key,
            format!("{v:?} is out of range"),
            format!("use a duration of {range} up to 720h, e.g. 10s or 5m"),
        ))
    }
}

impl RegistriesConfig {
    /// Checks every value; the error names the key and the fix.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.credential_providers.validate()?;
        let d = &self.defaults;
        check_duration("defaults.timeout", d.timeout, false)?;
        check_duration("defaults.tagTtl", d.tag_ttl, true)?;
        check_duration("defaults.failureTtl", d.failure_ttl, true)?;
        check_duration("defaults.maxRetryWait", d.max_retry_wait, true)?;
        if d.max_concurrent == 0 {
            return Err(invalid(
                "defaults.maxConcurrent",
                "0 would block every request",
                "use 1 or more",
            ));
        }
        if !(d.requests_per_second.is_finite() && d.requests_per_second >= 0.0) {
            return Err(invalid(
                "defaults.requestsPerSecond",
                format!("{} is not a rate", d.requests_per_second),
                "use 0 (unlimited) or a positive number",
            ));
        }
        if d.max_retries > 10 {
            return Err(invalid(
                "defaults.maxRetries",
                format!("{} retries would hammer a failing registry", d.max_retries),
                "use 0 to 10",
            ));
        }
        for (host, h) in &self.hosts {
            let k = |f: &str| format!("hosts.\"{host}\".{f}");
            if host.is_empty()
                || host.contains('/')
                || host.contains("://")
                || host.chars().any(|c| c.is_whitespace())
            {
                return Err(invalid(
                    format!("hosts.\"{host}\""),
                    "a host key must be a registry host as written in image references",
                    "write it as host[:port], without scheme or path, e.g. registry.example:5000",
                ));
            }
            // Image references normalise Docker Hub to `docker.io`; settings
            // under another spelling would never apply.
            if matches!(
                host.to_ascii_lowercase().as_str(),
                "index.docker.io" | "registry-1.docker.io"
            ) {
                return Err(invalid(
                    format!("hosts.\"{host}\""),
                    "image references name Docker Hub `docker.io`, so settings under this key never apply",
                    "write the key as \"docker.io\" (its API is asked at registry-1.docker.io unless endpoint says otherwise)",
                ));
            }
            if let Some(t) = h.timeout {
                check_duration(&k("timeout"), t, false)?;
            }
            if h.max_concurrent == Some(0) {
                return Err(invalid(
                    k("maxConcurrent"),
                    "0 would block every request",
                    "use 1 or more",
                ));
            }
            if let Some(r) = h.requests_per_second
                && !(r.is_finite() && r >= 0.0)
            {
                return Err(invalid(
                    k("requestsPerSecond"),
                    format!("{r} is not a rate"),
                    "use 0 (unlimited) or a positive number",
                ));
            }
            if let Some(e) = &h.endpoint {
                let url = reqwest::Url::parse(e).map_err(|err| {
                    invalid(
                        k("endpoint"),
                        format!("{e:?} is not a URL ({err})"),
                        "write a base URL such as https://mirror.internal:5000",
                    )
                })?;
                // Request URLs appear in logs, Event notes and `scan` output;
                // never echo the value, it holds the secret.
                if !url.username().is_empty() || url.password().is_some() {
                    return Err(invalid(
                        k("endpoint"),
                        "holds credentials (user:password@), which would appear in every logged request URL",
                        "remove them from the URL and put them in the file named by registries.credentialsFile",
                    ));
                }
                if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                    return Err(invalid(
                        k("endpoint"),
                        format!("{e:?} is not an http(s) URL with a host"),
                        "write a base URL such as https://mirror.internal:5000",
                    ));
                }
                if url.query().is_some() || url.fragment().is_some() {
                    return Err(invalid(
                        k("endpoint"),
                        format!("{e:?} has a query or fragment"),
                        "remove everything after the path",
                    ));
                }
                if h.insecure_http {
                    return Err(invalid(
                        k("insecureHttp"),
                        "conflicts with endpoint, whose scheme already says http or https",
                        "remove insecureHttp and write the scheme in endpoint",
                    ));
                }
            }
            if h.skip_tls_verify && h.ca_bundle.is_some() {
                return Err(invalid(
                    k("skipTlsVerify"),
                    "set together with caBundle",
                    "keep caBundle and remove skipTlsVerify",
                ));
            }
        }
        Ok(())
    }

    /// Checks that the files the section names (`caBundle`,
    /// `credentialsFile`) exist, so a missing mount stops start-up with
    /// the key named rather than failing every lookup later.
    pub fn check_files(&self) -> Result<(), ConfigError> {
        for (host, h) in &self.hosts {
            if let Some(path) = &h.ca_bundle {
                readable_file(&format!("hosts.\"{host}\".caBundle"), path)?;
            }
        }
        if let Some(path) = &self.credentials_file {
            readable_file("credentialsFile", path)?;
        }
        Ok(())
    }

    /// Limits for `host`: its overrides over the defaults.
    pub(crate) fn limits(&self, host: &str) -> Limits {
        let h = self.hosts.get(host);
        let d = &self.defaults;
        // Docker Hub itself (not a mirror configured in its place) gets its
        // own ceiling unless one is configured for it; a lower default wins.
        let hub = host == "docker.io" && h.and_then(|h| h.endpoint.as_ref()).is_none();
        let requests_per_second = match h.and_then(|h| h.requests_per_second) {
            Some(r) => r,
            None if hub && d.requests_per_second > 0.0 => {
                d.requests_per_second.min(DOCKER_HUB_REQUESTS_PER_SECOND)
            }
            None if hub => DOCKER_HUB_REQUESTS_PER_SECOND,
            None => d.requests_per_second,
        };
        Limits {
            timeout: h.and_then(|h| h.timeout).unwrap_or(d.timeout),
            max_concurrent: h.and_then(|h| h.max_concurrent).unwrap_or(d.max_concurrent),
            requests_per_second,
            start_rate: requests_per_second,
        }
    }
}

/// Whether `host` (with optional port) is a loopback name or address;
/// Docker talks plain HTTP to those without being told.
pub(crate) fn is_loopback(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        host.rsplit_once(':').map_or(host, |(h, p)| {
            if p.chars().all(|c| c.is_ascii_digit()) {
                h
            } else {
                host
            }
        })
    };
    name == "localhost"
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(json: &str) -> RegistriesConfig {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn defaults_are_valid() {
        RegistriesConfig::default().validate().unwrap();
        let c = cfg(
            r#"{"defaults":{"timeout":"2500ms"},"hosts":{"r.example:5000":{"maxConcurrent":2}}}"#,
        );
        c.validate().unwrap();
        let l = c.limits("r.example:5000");
        assert_eq!(
            (l.timeout, l.max_concurrent),
            (Duration::from_millis(2500), 2)
        );
        assert_eq!(c.limits("other").max_concurrent, 8);
    }

    #[test]
    fn errors_name_key_and_fix() {
        let cases = [
            (r#"{"defaults":{"timeout":0}}"#, "defaults.timeout"),
            (
                r#"{"defaults":{"maxConcurrent":0}}"#,
                "defaults.maxConcurrent",
            ),
            (
                r#"{"defaults":{"requestsPerSecond":-1}}"#,
                "defaults.requestsPerSecond",
            ),
            (
                r#"{"hosts":{"https://r.example":{}}}"#,
                "hosts.\"https://r.example\"",
            ),
            (
                r#"{"hosts":{"r.example":{"endpoint":"mirror"}}}"#,
                "hosts.\"r.example\".endpoint",
            ),
            (
                r#"{"hosts":{"r.example":{"endpoint":"ftp://m"}}}"#,
                "hosts.\"r.example\".endpoint",
            ),
            (
                r#"{"hosts":{"r.example":{"endpoint":"http://m","insecureHttp":true}}}"#,
                "insecureHttp",
            ),
            (
                r#"{"hosts":{"r.example":{"caBundle":"/x","skipTlsVerify":true}}}"#,
                "skipTlsVerify",
            ),
            (
                r#"{"hosts":{"r.example":{"timeout":"0s"}}}"#,
                "hosts.\"r.example\".timeout",
            ),
        ];
        for (json, key) in cases {
            let e = cfg(json).validate().unwrap_err().to_string();
            assert!(e.contains(key), "{json}: {e}");
            assert!(e.contains("; "), "{json}: no fix in {e}");
        }
    }

    #[test]
    fn endpoint_credentials_are_refused_without_echoing_them() {
        // The endpoint ends up in request URLs, and those in logs, Event
        // notes and `scan` output: a password in it would leak everywhere.
        for json in [
            r#"{"hosts":{"docker.io":{"endpoint":"https://bob:s3cr3t@mirror.internal"}}}"#,
            r#"{"hosts":{"docker.io":{"endpoint":"https://s3cr3t@mirror.internal"}}}"#,
        ] {
            let e = cfg(json).validate().unwrap_err().to_string();
            assert!(e.contains("hosts.\"docker.io\".endpoint"), "{e}");
            assert!(e.contains("credentialsFile"), "{e}");
            assert!(!e.contains("s3cr3t"), "{e} leaks the password");
        }
    }

    #[test]
    fn docker_hub_gets_its_own_ceiling_others_none() {
        let c = cfg("{}");
        assert_eq!(c.limits("registry.example").requests_per_second, 0.0);
        assert_eq!(
            c.limits("docker.io").requests_per_second,
            DOCKER_HUB_REQUESTS_PER_SECOND
        );
        let c = cfg(r#"{"defaults":{"requestsPerSecond":2}}"#);
        assert_eq!(c.limits("docker.io").requests_per_second, 2.0, "lower wins");
        assert_eq!(c.limits("registry.example").requests_per_second, 2.0);
        let c = cfg(r#"{"hosts":{"docker.io":{"requestsPerSecond":50}}}"#);
        assert_eq!(
            c.limits("docker.io").requests_per_second,
            50.0,
            "configured"
        );
        let c = cfg(r#"{"hosts":{"docker.io":{"endpoint":"https://m.internal"}}}"#);
        assert_eq!(c.limits("docker.io").requests_per_second, 0.0, "a mirror");
    }

    #[test]
    fn docker_hub_aliases_as_host_keys_are_refused() {
        // References normalise to docker.io, so settings under another
        // spelling would silently never apply (e.g. a mirror left unused).
        for alias in ["index.docker.io", "registry-1.docker.io"] {
            let json = format!(r#"{{"hosts":{{"{alias}":{{"endpoint":"https://m.internal"}}}}}}"#);
            let e = cfg(&json).validate().unwrap_err().to_string();
            assert!(e.contains(alias) && e.contains("docker.io\""), "{e}");
        }
        cfg(r#"{"hosts":{"docker.io":{"endpoint":"https://m.internal"}}}"#)
            .validate()
            .unwrap();
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let e = serde_json::from_str::<RegistriesConfig>(r#"{"defaults":{"timeoutSeconds":3}}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("timeoutSeconds"), "{e}");
    }

    #[test]
    fn loopback_hosts() {
        for h in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "[::1]:5000",
            "127.0.0.2",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in ["registry.example", "10.0.0.1:5000", "localhost.example"] {
            assert!(!is_loopback(h), "{h}");
        }
    }
}
