//! Registry push webhooks: a registry announces a push, imagedrift marks
//! the matching references it already watches as due now. A webhook is
//! only ever a hint: it never adds a reference, never makes imagedrift
//! contact a host it would not contact anyway, and never declares a digest;
//! the re-resolve goes through the registry as every other check does.
//!
//! `parse` turns each source's payload into [`Push`]es (pure), `auth`
//! checks signatures and tokens, `matcher` maps pushes onto normalised
//! references, `server` is the listener, `config` the `webhooks:` section.

pub mod auth;
pub mod config;
pub mod matcher;
pub mod metrics;
pub mod parse;
pub mod server;

pub use config::WebhookConfig;
pub use metrics::WebhookMetrics;

use std::fmt;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Who sent a webhook: one payload format and one way to authenticate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// CNCF distribution notifications (also Harbor's and GitLab's registries, many in-house ones).
    Distribution,
    /// Harbor's `PUSH_ARTIFACT` webhook.
    Harbor,
    /// Docker Hub repository webhooks.
    Dockerhub,
    /// GitHub `package` / `registry_package` events (GHCR).
    Github,
    /// Quay `repo_push` notifications.
    Quay,
    /// Azure Container Registry webhooks.
    Acr,
    /// GitLab's container registry notifications (the distribution envelope).
    Gitlab,
    /// `{"image": "host/repo:tag"}`, `{"images": [...]}` or a list of them.
    Generic,
}

impl Source {
    /// Every source, in the order of the URL table in the README.
    pub const ALL: [Source; 8] = [
        Source::Distribution,
        Source::Harbor,
        Source::Dockerhub,
        Source::Github,
        Source::Quay,
        Source::Acr,
        Source::Gitlab,
        Source::Generic,
    ];

    /// The name in `/webhooks/<name>`, the config and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Distribution => "distribution",
            Source::Harbor => "harbor",
            Source::Dockerhub => "dockerhub",
            Source::Github => "github",
            Source::Quay => "quay",
            Source::Acr => "acr",
            Source::Gitlab => "gitlab",
            Source::Generic => "generic",
        }
    }

    /// The source named `name`, if there is one.
    pub fn from_name(name: &str) -> Option<Source> {
        Source::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Whether requests are signed with HMAC-SHA256 over the body (else a
    /// shared token is sent).
    pub fn signs_body(self) -> bool {
        matches!(self, Source::Github | Source::Generic)
    }

    /// The header carrying the signature or token unless configured otherwise.
    pub fn default_header(self) -> &'static str {
        match self {
            Source::Github => "X-Hub-Signature-256",
            Source::Generic => "X-Imagedrift-Signature-256",
            _ => "Authorization",
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One tag a webhook says was pushed, as the sender names it (not yet
/// normalised: `host` may be an endpoint alias).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Push {
    /// Registry host as the sender wrote it (`registry.example:5000`, `docker.io`).
    pub host: String,
    /// Repository path (`team/app`, `library/nginx`).
    pub repository: String,
    /// The pushed tag.
    pub tag: String,
}

/// What the listener hands the controller loop for one accepted request.
#[derive(Clone, Debug)]
pub struct Hint {
    /// Who sent it.
    pub source: Source,
    /// Normalised references (`Display` of `ImageRef`) the pushes may
    /// concern; the loop keeps only those it already watches.
    pub references: Vec<String>,
    /// When the request arrived (the start of the webhook → verdict latency).
    pub received: Instant,
}

/// The receiving end of the hint channel, as the controller loop takes it.
pub struct Hints {
    /// Hints in arrival order.
    pub rx: mpsc::Receiver<Hint>,
    /// Pushes of one reference arriving within this window share one re-resolve.
    pub coalesce: Duration,
    /// Where outcomes and latencies are counted.
    pub metrics: WebhookMetrics,
}

/// Capacity of the hint channel; when full the listener answers 503 and the
/// registry retries, so no push is lost silently.
pub const HINT_QUEUE: usize = 1024;

/// A hint channel: the sender for the listener, the receiver for the loop.
pub fn channel(coalesce: Duration, metrics: WebhookMetrics) -> (mpsc::Sender<Hint>, Hints) {
    let (tx, rx) = mpsc::channel(HINT_QUEUE);
    (
        tx,
        Hints {
            rx,
            coalesce,
            metrics,
        },
    )
}
