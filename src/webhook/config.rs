//! The `webhooks:` section: where the listener binds (off unless set),
//! which sources are enabled and how each authenticates, rate limits and
//! the coalescing window. Validated once, at start-up.
//!
//! ```yaml
//! webhooks:
//!   listen: 0.0.0.0:8081          # empty (the default): no listener
//!   coalesce: 250ms               # pushes of one tag within this window: one re-resolve
//!   requestsPerSecond: 10         # per source
//!   burst: 100                    # per source
//!   # Every file here named after a source enables it with that secret
//!   # (a mounted Secret whose keys are source names).
//!   secretsDir: /etc/imagedrift-webhooks
//!   sources:                      # explicit settings win over secretsDir
//!     harbor: {secretFile: /etc/harbor-token/token, header: X-Harbor-Token}
//! ```

use super::Source;
use super::auth::SecretFile;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// How one source authenticates.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct SourceConfig {
    /// File holding the shared token or HMAC secret (a mounted Secret).
    pub secret_file: Option<PathBuf>,
    /// The header carrying the token or signature, when not the source's default.
    pub header: Option<String>,
    /// Accept requests without any authentication (only behind something
    /// that authenticates for you).
    pub unauthenticated: bool,
}

/// The whole `webhooks:` section.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct WebhookConfig {
    /// Address of the webhook listener (`IP:PORT`); empty: no listener.
    pub listen: String,
    /// Pushes of one reference within this window share one re-resolve.
    #[serde(with = "crate::config::duration_str")]
    pub coalesce: Duration,
    /// Requests per second accepted per source (token bucket rate).
    pub requests_per_second: f64,
    /// Requests accepted at once per source (token bucket size).
    pub burst: u32,
    /// A directory (a mounted Secret) whose files named after a source
    /// (`github`, `distribution`, …) enable that source with that secret.
    pub secrets_dir: Option<PathBuf>,
    /// Enabled sources by name (`distribution`, `harbor`, `dockerhub`,
    /// `github`, `quay`, `acr`, `gitlab`, `generic`).
    pub sources: BTreeMap<String, SourceConfig>,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            listen: String::new(),
            coalesce: Duration::from_millis(250),
            requests_per_second: 10.0,
            burst: 100,
            secrets_dir: None,
            sources: BTreeMap::new(),
        }
    }
}

/// A problem in the `webhooks:` section: which key, what, and the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("webhooks.{key}: {problem}; {fix}")]
pub struct ConfigError {
    /// Dotted key under `webhooks`.
    pub key: String,
    /// What is wrong.
    pub problem: String,
    /// How to fix it.
    pub fix: String,
}

fn invalid(key: impl Into<String>, problem: impl Into<String>, fix: &str) -> ConfigError {
    ConfigError {
        key: key.into(),
        problem: problem.into(),
        fix: fix.into(),
    }
}

/// One enabled source, ready to check requests.
#[derive(Debug)]
pub struct Enabled {
    /// Which source.
    pub source: Source,
    /// The header carrying the signature or token.
    pub header: String,
    /// The secret; `None` when the source is configured `unauthenticated`.
    pub secret: Option<SecretFile>,
}

impl WebhookConfig {
    /// Whether a listener is configured.
    pub fn enabled(&self) -> bool {
        !self.listen.is_empty()
    }

    /// Checks every value, reading each secret file once so a missing
    /// Secret stops start-up rather than every webhook.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.enabled_sources().map(|_| ())
    }

    /// The enabled sources, validated (secrets read once).
    pub fn enabled_sources(&self) -> Result<Vec<Enabled>, ConfigError> {
        if !self.enabled() {
            return Ok(Vec::new());
        }
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(invalid(
                "listen",
                format!("{:?} is not an address", self.listen),
                "write IP:PORT, e.g. 0.0.0.0:8081, or leave it empty for no listener",
            ));
        }
        if self.coalesce > Duration::from_secs(10) {
            return Err(invalid(
                "coalesce",
                format!("{:?} is too long", self.coalesce),
                "use at most 10s (250ms is the default)",
            ));
        }
        if !(self.requests_per_second.is_finite() && self.requests_per_second > 0.0) {
            return Err(invalid(
                "requestsPerSecond",
                format!("{} is not a positive rate", self.requests_per_second),
                "use a number above 0 (10 is the default)",
            ));
        }
        if self.burst == 0 {
            return Err(invalid(
                "burst",
                "0 would refuse every request",
                "use 1 or more (100 is the default)",
            ));
        }
        let mut sources = self.sources.clone();
        if let Some(dir) = &self.secrets_dir {
            for (name, path) in secret_files(dir)? {
                sources.entry(name).or_insert(SourceConfig {
                    secret_file: Some(path),
                    ..Default::default()
                });
            }
        }
        if sources.is_empty() {
            return Err(invalid(
                "sources",
                "no source is enabled, so every request would be refused",
                "enable at least one, e.g. `distribution: {secretFile: /etc/imagedrift-webhooks/distribution}`, or set secretsDir",
            ));
        }
        let mut out = Vec::new();
        for (name, sc) in &sources {
            let Some(source) = Source::from_name(name) else {
                let names: Vec<&str> = Source::ALL.iter().map(|s| s.as_str()).collect();
                return Err(invalid(
                    format!("sources.{name}"),
                    "unknown source",
                    &format!("use one of {}", names.join(", ")),
                ));
            };
            let header = sc
                .header
                .clone()
                .unwrap_or_else(|| source.default_header().to_string());
            if axum::http::HeaderName::from_bytes(header.as_bytes()).is_err() {
                return Err(invalid(
                    format!("sources.{name}.header"),
                    format!("{header:?} is not a header name"),
                    "write a header name such as Authorization or X-Registry-Token",
                ));
            }
            let secret = match (&sc.secret_file, sc.unauthenticated) {
                (Some(_), true) => {
                    return Err(invalid(
                        format!("sources.{name}"),
                        "both secretFile and unauthenticated are set",
                        "keep one",
                    ));
                }
                (None, false) => {
                    return Err(invalid(
                        format!("sources.{name}.secretFile"),
                        "missing: every source authenticates by default",
                        "name the file of a mounted Secret, or set `unauthenticated: true` if something in front authenticates",
                    ));
                }
                (None, true) => None,
                (Some(p), false) => {
                    let s = SecretFile::new(p);
                    if let Err(e) = s.get() {
                        return Err(invalid(
                            format!("sources.{name}.secretFile"),
                            e.to_string(),
                            "mount the Secret there (see deploy/components/webhooks)",
                        ));
                    }
                    Some(s)
                }
            };
            out.push(Enabled {
                source,
                header,
                secret,
            });
        }
        Ok(out)
    }
}

/// The files of a secrets directory, by source name. Kubernetes' own
/// entries (`..data`, `..2026_…`) are skipped; any other name that is not
/// a source is refused (a misspelt key would silently disable a source).
fn secret_files(dir: &std::path::Path) -> Result<Vec<(String, PathBuf)>, ConfigError> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        invalid(
            "secretsDir",
            format!("cannot read {}: {e}", dir.display()),
            "mount the Secret there (see deploy/components/webhooks)",
        )
    })?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| {
            invalid(
                "secretsDir",
                format!("cannot read {}: {e}", dir.display()),
                "mount the Secret there",
            )
        })?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        if Source::from_name(&name).is_none() {
            let names: Vec<&str> = Source::ALL.iter().map(|s| s.as_str()).collect();
            return Err(invalid(
                "secretsDir",
                format!("{} holds {name:?}, which is not a source", dir.display()),
                &format!("name the Secret's keys after sources: {}", names.join(", ")),
            ));
        }
        out.push((name, entry.path()));
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(yaml: &str) -> WebhookConfig {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[test]
    fn off_by_default_and_defaults_are_valid() {
        let c = WebhookConfig::default();
        assert!(!c.enabled());
        assert!(c.validate().is_ok());
    }

    #[test]
    fn errors_name_the_key() {
        let e = cfg("listen: 127.0.0.1:1\nsources: {}\n")
            .validate()
            .unwrap_err();
        assert_eq!(e.key, "sources");
        let e = cfg("listen: 127.0.0.1:1\nsources: {nexus: {unauthenticated: true}}\n")
            .validate()
            .unwrap_err();
        assert_eq!(e.key, "sources.nexus");
        assert!(e.fix.contains("distribution"), "{e}");
        let e = cfg("listen: 127.0.0.1:1\nsources: {github: {}}\n")
            .validate()
            .unwrap_err();
        assert_eq!(e.key, "sources.github.secretFile");
        let e =
            cfg("listen: 127.0.0.1:1\nsources: {github: {secretFile: /nonexistent/imagedrift}}\n")
                .validate()
                .unwrap_err();
        assert!(e.to_string().contains("/nonexistent/imagedrift"), "{e}");
        let e = cfg("listen: nowhere\nsources: {generic: {unauthenticated: true}}\n")
            .validate()
            .unwrap_err();
        assert_eq!(e.key, "listen");
        let e =
            cfg("listen: 127.0.0.1:1\ncoalesce: 1m\nsources: {generic: {unauthenticated: true}}\n")
                .validate()
                .unwrap_err();
        assert_eq!(e.key, "coalesce");
        let e = cfg("listen: 127.0.0.1:1\nsources: {acr: {unauthenticated: true, header: \"bad header\"}}\n")
            .validate()
            .unwrap_err();
        assert_eq!(e.key, "sources.acr.header");
        assert!(serde_saphyr::from_str::<WebhookConfig>("listen: x\nsecret: y\n").is_err());
    }

    #[test]
    fn a_secrets_dir_enables_the_sources_it_names() {
        let dir = std::env::temp_dir().join(format!("imagedrift-whdir-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("..data")).unwrap();
        std::fs::write(dir.join("github"), "k").unwrap();
        std::fs::write(dir.join("distribution"), "t").unwrap();
        let c = cfg(&format!(
            "listen: 127.0.0.1:1\nsecretsDir: {}\nsources: {{distribution: {{unauthenticated: true}}}}\n",
            dir.display()
        ));
        let e = c.enabled_sources().unwrap();
        let got: Vec<(Source, bool)> = e.iter().map(|e| (e.source, e.secret.is_some())).collect();
        // Explicit settings win over the directory.
        assert_eq!(
            got,
            vec![(Source::Distribution, false), (Source::Github, true)]
        );
        std::fs::write(dir.join("githb"), "k").unwrap();
        let err = c.validate().unwrap_err();
        assert_eq!(err.key, "secretsDir");
        assert!(err.problem.contains("githb"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
        let err = cfg("listen: 127.0.0.1:1\nsecretsDir: /nonexistent/imagedrift\n")
            .validate()
            .unwrap_err();
        assert_eq!(err.key, "secretsDir");
    }

    #[test]
    fn enabled_sources_carry_their_header() {
        let c = cfg(
            "listen: 127.0.0.1:1\ncoalesce: 100ms\nsources:\n  github: {unauthenticated: true}\n  harbor: {unauthenticated: true, header: X-Harbor-Token}\n",
        );
        assert_eq!(c.coalesce, Duration::from_millis(100));
        let e = c.enabled_sources().unwrap();
        let names: Vec<(Source, &str)> = e.iter().map(|e| (e.source, e.header.as_str())).collect();
        assert_eq!(
            names,
            vec![
                (Source::Github, "X-Hub-Signature-256"),
                (Source::Harbor, "X-Harbor-Token")
            ]
        );
    }
}
