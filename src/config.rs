//! The controller's configuration: a YAML file (`config/imagedrift.yaml`)
//! overlaid by command-line flags and their environment variables (flags
//! win), validated once at start-up with errors that name the key and the fix.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// A configuration problem: which key, what is wrong, how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// The OS error.
        reason: String,
    },
    /// The file is not valid YAML for this schema (unknown key, wrong type).
    #[error(
        "invalid config file {path}: {reason}\n(config/imagedrift.yaml in the repository lists every key with its default)"
    )]
    Parse {
        /// The file.
        path: String,
        /// The parser's message, naming the key or line.
        reason: String,
    },
    /// A section owned by another module (`registries`, `remedies`) is invalid;
    /// its message names the key and the fix.
    #[error("invalid config: {0}")]
    Section(String),
    /// A value is out of range or malformed.
    #[error("invalid value for `{key}`: {problem}; {fix}")]
    Invalid {
        /// Dotted key (`leaderElection.leaseName`) or flag.
        key: &'static str,
        /// What is wrong.
        problem: String,
        /// How to fix it.
        fix: &'static str,
    },
}

impl ConfigError {
    /// A short fixed category, for logs.
    pub fn category(&self) -> &'static str {
        match self {
            ConfigError::Read { .. } => "read",
            ConfigError::Parse { .. } => "parse",
            ConfigError::Invalid { .. } | ConfigError::Section(_) => "invalid",
        }
    }
}

/// Which namespaces to watch.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Namespaces {
    /// Only these namespaces (empty: all).
    pub include: Vec<String>,
    /// Never these namespaces.
    pub exclude: Vec<String>,
}

impl Namespaces {
    /// Whether pods of `ns` are watched.
    pub fn admits(&self, ns: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|i| i == ns))
            && !self.exclude.iter().any(|e| e == ns)
    }
}

/// Leader election settings.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct LeaderElection {
    /// Elect a leader through a Lease; only the leader writes.
    pub enabled: bool,
    /// The Lease's name.
    pub lease_name: String,
    /// The Lease's namespace; empty means `$POD_NAMESPACE`, else `default`.
    pub lease_namespace: String,
    /// How long a lease is held without renewal (whole seconds).
    #[serde(with = "duration_str")]
    pub lease_duration: Duration,
    /// How often the leader renews and followers look at the Lease: a
    /// released Lease is taken within this long.
    #[serde(with = "duration_str")]
    pub retry_period: Duration,
}

impl Default for LeaderElection {
    fn default() -> Self {
        LeaderElection {
            enabled: false,
            lease_name: "imagedrift".into(),
            lease_namespace: String::new(),
            lease_duration: Duration::from_secs(30),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// Reading the pods' `imagePullSecrets`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct PullSecrets {
    /// Read pull secrets by name (needs `get` on Secrets).
    pub enabled: bool,
    /// How long a read secret is reused.
    #[serde(with = "duration_str")]
    pub cache_ttl: Duration,
}

impl Default for PullSecrets {
    fn default() -> Self {
        PullSecrets {
            enabled: false,
            cache_ttl: Duration::from_secs(300),
        }
    }
}

/// Log output.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Logging settings.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Log {
    /// `text` or `json`.
    pub format: LogFormat,
    /// `RUST_LOG`-style filter; `$RUST_LOG` wins when set.
    pub filter: String,
}

impl Default for Log {
    fn default() -> Self {
        Log {
            format: LogFormat::Text,
            filter: "info".into(),
        }
    }
}

/// The `metrics:` section.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct MetricsConfig {
    /// Which containers get per-container series (workload-level series
    /// are always on).
    pub container_series: crate::metrics::ContainerSeriesMode,
}

/// The whole configuration of `imagedrift run`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Config {
    /// How often each unique reference is re-resolved.
    #[serde(with = "duration_str")]
    pub interval: Duration,
    /// Random spread of `interval`, as a fraction (0.1 = ±10%).
    pub jitter: f64,
    /// How long a container may stay Unknown before `DriftCheckFailed`.
    #[serde(with = "duration_str")]
    pub drift_check_failed_after: Duration,
    /// At most this many references are checked at once.
    pub max_concurrent_checks: usize,
    /// Namespaces watched.
    pub namespaces: Namespaces,
    /// Label selector on pods (empty: all).
    pub label_selector: String,
    /// Where `/metrics`, `/livez` and `/readyz` are served.
    pub listen: String,
    /// Leader election.
    pub leader_election: LeaderElection,
    /// Pull secret reading.
    pub pull_secrets: PullSecrets,
    /// Logging.
    pub log: Log,
    /// Registry settings (mirrors, TLS, limits, credentials file).
    pub registries: crate::registry::RegistriesConfig,
    /// Remedies (all off by default).
    pub remedies: crate::remedy::RemedyConfig,
    /// Registry push webhooks (no listener by default).
    pub webhooks: crate::webhook::WebhookConfig,
    /// What `/metrics` exports.
    pub metrics: MetricsConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            interval: Duration::from_secs(300),
            jitter: 0.1,
            drift_check_failed_after: Duration::from_secs(1800),
            max_concurrent_checks: 8,
            namespaces: Namespaces::default(),
            label_selector: String::new(),
            listen: "0.0.0.0:8080".into(),
            leader_election: LeaderElection::default(),
            pull_secrets: PullSecrets::default(),
            log: Log::default(),
            registries: Default::default(),
            remedies: Default::default(),
            webhooks: Default::default(),
            metrics: MetricsConfig::default(),
        }
    }
}

/// Flags of `imagedrift run`; each overrides the file's key when given.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct RunFlags {
    /// Configuration file (YAML); flags override its keys.
    #[arg(long, env = "IMAGEDRIFT_CONFIG")]
    pub config: Option<std::path::PathBuf>,
    /// Re-resolve each reference this often (e.g. 5m, 90s). Key: interval.
    #[arg(long, env = "IMAGEDRIFT_INTERVAL")]
    pub interval: Option<String>,
    /// Address of the HTTP endpoints. Key: listen.
    #[arg(long, env = "IMAGEDRIFT_LISTEN")]
    pub listen: Option<String>,
    /// Elect a leader; only the leader writes Events. Key: leaderElection.enabled.
    #[arg(long, env = "IMAGEDRIFT_LEADER_ELECT")]
    pub leader_elect: bool,
    /// Namespace of the leader Lease. Key: leaderElection.leaseNamespace.
    #[arg(long, env = "IMAGEDRIFT_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// Watch only these namespaces (repeat or comma-separate). Key: namespaces.include.
    #[arg(
        long = "namespace",
        short = 'n',
        env = "IMAGEDRIFT_NAMESPACES",
        value_delimiter = ','
    )]
    pub namespaces: Vec<String>,
    /// Never watch these namespaces. Key: namespaces.exclude.
    #[arg(
        long = "exclude-namespace",
        env = "IMAGEDRIFT_EXCLUDE_NAMESPACES",
        value_delimiter = ','
    )]
    pub exclude_namespaces: Vec<String>,
    /// Only pods matching this label selector. Key: labelSelector.
    #[arg(long = "selector", short = 'l', env = "IMAGEDRIFT_LABEL_SELECTOR")]
    pub label_selector: Option<String>,
    /// Read pods' imagePullSecrets. Key: pullSecrets.enabled.
    #[arg(long, env = "IMAGEDRIFT_READ_PULL_SECRETS")]
    pub read_pull_secrets: bool,
    /// Hand stale workloads to the remedies even when the config enables
    /// none, so the `imagedrift.io/remedy` annotation alone opts in (needs the
    /// remedies RBAC overlay). On anyway when `remedies:` enables any.
    #[arg(long, env = "IMAGEDRIFT_ENABLE_REMEDIES")]
    pub enable_remedies: bool,
    /// Remedies only log and emit Events for what they would do; nothing
    /// else is written. Key: remedies.dryRun.
    #[arg(long, env = "IMAGEDRIFT_DRY_RUN")]
    pub dry_run: bool,
    /// Address of the registry webhook listener (off unless set). Key: webhooks.listen.
    #[arg(long, env = "IMAGEDRIFT_WEBHOOK_LISTEN")]
    pub webhook_listen: Option<String>,
    /// Directory whose files named after a webhook source enable it with
    /// that secret. Key: webhooks.secretsDir.
    #[arg(long, env = "IMAGEDRIFT_WEBHOOK_SECRETS_DIR")]
    pub webhook_secrets_dir: Option<std::path::PathBuf>,
    /// Log format. Key: log.format.
    #[arg(long, env = "IMAGEDRIFT_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Reference checks at once (1-256), as `scan`'s flag. Key: maxConcurrentChecks.
    #[arg(
        long = "max-concurrent-checks",
        env = "IMAGEDRIFT_MAX_CONCURRENT_CHECKS",
        value_parser = clap::value_parser!(u16).range(1..=256)
    )]
    pub max_concurrent_checks: Option<u16>,
    /// kubelet credential-provider plugins.
    #[command(flatten)]
    pub credential_providers: crate::credentials::ProviderFlags,
    /// Cluster connection.
    #[command(flatten)]
    pub kube: KubeFlags,
}

/// How to reach the cluster, as kubectl does: `--kubeconfig`, else
/// `$KUBECONFIG`, else `~/.kube/config`, else the in-cluster service account.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct KubeFlags {
    /// Kubeconfig file (`$KUBECONFIG` is read by default, as kubectl does).
    #[arg(long)]
    pub kubeconfig: Option<std::path::PathBuf>,
    /// Kubeconfig context to use.
    #[arg(long, env = "IMAGEDRIFT_CONTEXT")]
    pub context: Option<String>,
}

impl Config {
    /// Parses a YAML document.
    pub fn from_yaml(text: &str, origin: &str) -> Result<Config, ConfigError> {
        if text.trim().is_empty() {
            return Ok(Config::default());
        }
        serde_saphyr::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_string(),
            reason: yaml_error(&e, origin),
        })
    }

    /// Reads a YAML file.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Config::from_yaml(&text, &path.display().to_string())
    }

    /// The file (or defaults) overlaid by the flags, validated.
    pub fn load(flags: &RunFlags) -> Result<Config, ConfigError> {
        let mut c = match &flags.config {
            Some(p) => Config::from_file(p)?,
            None => Config::default(),
        };
        if let Some(i) = &flags.interval {
            c.interval = parse_duration(i).map_err(|problem| ConfigError::Invalid {
                key: "interval (--interval or IMAGEDRIFT_INTERVAL)",
                problem,
                fix: "write a duration such as 5m, 90s or 1h",
            })?;
        }
        if let Some(l) = &flags.listen {
            c.listen = l.clone();
        }
        if flags.leader_elect {
            c.leader_election.enabled = true;
        }
        if let Some(ns) = &flags.lease_namespace {
            c.leader_election.lease_namespace = ns.clone();
        }
        if !flags.namespaces.is_empty() {
            c.namespaces.include = flags.namespaces.clone();
        }
        if !flags.exclude_namespaces.is_empty() {
            c.namespaces.exclude = flags.exclude_namespaces.clone();
        }
        if let Some(s) = &flags.label_selector {
            c.label_selector = s.clone();
        }
        if flags.read_pull_secrets {
            c.pull_secrets.enabled = true;
        }
        if flags.dry_run {
            c.remedies.dry_run = true;
        }
        if let Some(f) = flags.log_format {
            c.log.format = f;
        }
        if let Some(n) = flags.max_concurrent_checks {
            c.max_concurrent_checks = n.into();
        }
        flags.credential_providers.apply(&mut c.registries);
        if let Some(l) = &flags.webhook_listen {
            c.webhooks.listen = l.clone();
        }
        if let Some(d) = &flags.webhook_secrets_dir {
            c.webhooks.secrets_dir = Some(d.clone());
        }
        c.validate()?;
        c.check_files()?;
        Ok(c)
    }

    /// Checks that the files the configuration names exist (see
    /// [`crate::registry::RegistriesConfig::check_files`]).
    pub fn check_files(&self) -> Result<(), ConfigError> {
        self.registries
            .check_files()
            .map_err(|e| ConfigError::Section(e.to_string()))
    }

    /// Checks every value; the first problem found is returned.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, problem: String, fix| Err(ConfigError::Invalid { key, problem, fix });
        if self.interval < Duration::from_secs(10) {
            return invalid(
                "interval",
                format!("{:?} is too short", self.interval),
                "use at least 10s (registries rate-limit; 5m is the default)",
            );
        }
        // Next checks are `now + interval`: an unbounded value would overflow.
        if self.interval > Duration::from_secs(7 * 86_400) {
            return invalid(
                "interval",
                format!("{:?} is too long", self.interval),
                "use at most 168h (a week); 5m is the default",
            );
        }
        if !(0.0..=0.5).contains(&self.jitter) {
            return invalid(
                "jitter",
                format!("{} is out of range", self.jitter),
                "use a fraction between 0 and 0.5",
            );
        }
        if self.drift_check_failed_after.is_zero() {
            return invalid(
                "driftCheckFailedAfter",
                "must be positive".into(),
                "use a duration such as 30m",
            );
        }
        if self.max_concurrent_checks == 0 || self.max_concurrent_checks > 256 {
            return invalid(
                "maxConcurrentChecks",
                format!("{} is out of range", self.max_concurrent_checks),
                "use a number from 1 to 256",
            );
        }
        if self.listen.parse::<SocketAddr>().is_err() {
            return invalid(
                "listen",
                format!("{:?} is not an address", self.listen),
                "write IP:PORT, e.g. 0.0.0.0:8080 or 127.0.0.1:9090",
            );
        }
        for ns in self
            .namespaces
            .include
            .iter()
            .chain(&self.namespaces.exclude)
        {
            if !is_dns_label(ns) {
                return invalid(
                    "namespaces",
                    format!("{ns:?} is not a namespace name"),
                    "namespace names are lowercase DNS labels (a-z, 0-9, '-')",
                );
            }
        }
        if let Some(ns) = self
            .namespaces
            .include
            .iter()
            .find(|n| self.namespaces.exclude.contains(n))
        {
            return invalid(
                "namespaces",
                format!("{ns:?} is both included and excluded"),
                "remove it from one of the lists",
            );
        }
        if let Err(why) = crate::selector::check(&self.label_selector) {
            return invalid(
                "labelSelector",
                format!("{:?} is not a label selector: {why}", self.label_selector),
                "write it as for kubectl -l, e.g. app=web,tier!=cache or 'env in (prod,staging)'",
            );
        }
        let le = &self.leader_election;
        if le.lease_name.is_empty() || !le.lease_name.split('.').all(is_dns_label) {
            return invalid(
                "leaderElection.leaseName",
                format!("{:?} is not an object name", le.lease_name),
                "use a lowercase DNS name such as imagedrift",
            );
        }
        if !le.lease_namespace.is_empty() && !is_dns_label(&le.lease_namespace) {
            return invalid(
                "leaderElection.leaseNamespace",
                format!("{:?} is not a namespace name", le.lease_namespace),
                "use the namespace imagedrift runs in, or leave it empty for $POD_NAMESPACE",
            );
        }
        if le.lease_duration < Duration::from_secs(10)
            || le.lease_duration > Duration::from_secs(600)
        {
            return invalid(
                "leaderElection.leaseDuration",
                format!("{:?} is out of range", le.lease_duration),
                "use 10s to 10m (30s is the default)",
            );
        }
        if le.retry_period < Duration::from_millis(100) || le.retry_period * 2 >= le.lease_duration
        {
            return invalid(
                "leaderElection.retryPeriod",
                format!("{:?} is out of range", le.retry_period),
                "use at least 100ms and less than half of leaseDuration (2s is the default)",
            );
        }
        if self.pull_secrets.cache_ttl < Duration::from_secs(1) {
            return invalid(
                "pullSecrets.cacheTtl",
                "must be at least 1s".into(),
                "use a duration such as 5m",
            );
        }
        self.registries
            .validate()
            .map_err(|e| ConfigError::Section(e.to_string()))?;
        // A tag answer reused for a whole interval would hide every re-push
        // for one more interval: each check must ask the registry again.
        let ttl = self.registries.defaults.tag_ttl;
        if ttl >= self.interval {
            return Err(ConfigError::Section(format!(
                "registries.defaults.tagTtl: {ttl:?} is not shorter than interval ({:?}), so checks would reuse the previous answer and see a re-pushed tag one interval late; use a tagTtl below interval (60s is the default)",
                self.interval
            )));
        }
        self.remedies
            .validate()
            .map_err(|e| ConfigError::Section(e.to_string()))?;
        self.webhooks
            .validate()
            .map_err(|e| ConfigError::Section(e.to_string()))?;
        Ok(())
    }

    /// The `interval` ± `jitter` spread, as the scheduler needs it.
    pub fn jitter_span(&self) -> Duration {
        self.interval.mul_f64(self.jitter)
    }
}

/// Whether `s` is an RFC 1123 DNS label.
fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Parses `90s`, `5m`, `1h30m`, `500ms`; a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!(
                "{s:?} is not a duration (expected e.g. 5m, 90s, 1h30m)"
            ));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("{s:?}: number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let d = match unit {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.saturating_mul(60)),
            "h" => Duration::from_secs(n.saturating_mul(3600)),
            _ => return Err(format!("{s:?}: unknown unit {unit:?} (use ms, s, m or h)")),
        };
        total = total.saturating_add(d);
    }
    Ok(total)
}

/// Serde glue for durations written as `5m` (or bare seconds), for every
/// section of the configuration.
pub mod duration_str {
    use serde::Deserializer;
    use serde::de::{Error, Visitor};
    use std::fmt;
    use std::time::Duration;

    struct DurationVisitor;

    impl Visitor<'_> for DurationVisitor {
        type Value = Duration;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a duration such as 5m, 90s, 1h30m or 500ms")
        }

        fn visit_u64<E: Error>(self, n: u64) -> Result<Duration, E> {
            Ok(Duration::from_secs(n))
        }

        fn visit_i64<E: Error>(self, n: i64) -> Result<Duration, E> {
            u64::try_from(n).map(Duration::from_secs).map_err(|_| {
                E::custom(format!(
                    "{n} is negative; write a duration such as 5m, 90s or 500ms"
                ))
            })
        }

        fn visit_f64<E: Error>(self, n: f64) -> Result<Duration, E> {
            Duration::try_from_secs_f64(n).map_err(|_| {
                E::custom(format!(
                    "{n} is not a duration; write one such as 5m, 90s or 500ms"
                ))
            })
        }

        fn visit_str<E: Error>(self, s: &str) -> Result<Duration, E> {
            super::parse_duration(s).map_err(E::custom)
        }
    }

    /// Deserializes a duration string (see [`super::parse_duration`]) or a
    /// number of seconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        d.deserialize_any(DurationVisitor)
    }

    /// The same, for an optional key (`null` or absent: `None`).
    pub mod option {
        use serde::{Deserialize, Deserializer};
        use std::time::Duration;

        /// Deserializes an optional duration.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
            #[derive(Deserialize)]
            struct Wrap(#[serde(with = "super")] Duration);
            Ok(Option::<Wrap>::deserialize(d)?.map(|w| w.0))
        }
    }
}

/// Renders a YAML error from serde-saphyr in plain words for the person who
/// wrote the file: the snippet names `origin`, and the parser's Rust/serde
/// vocabulary (`invalid u64`, `expected mapping start`, …) is translated.
fn yaml_error(e: &serde_saphyr::Error, origin: &str) -> String {
    let formatter = PlainWords;
    let rendered = e.render_with_options(serde_saphyr::render_options! {
        formatter: &formatter,
        source_name: Some(origin),
    });
    rendered
        .strip_prefix("error: ")
        .unwrap_or(&rendered)
        .trim_end()
        .to_string()
}

/// serde-saphyr's user-facing formatter, with serde's type names replaced.
struct PlainWords;

impl serde_saphyr::MessageFormatter for PlainWords {
    fn format_message<'a>(&self, err: &'a serde_saphyr::Error) -> std::borrow::Cow<'a, str> {
        let m = serde_saphyr::UserMessageFormatter.format_message(err);
        std::borrow::Cow::Owned(plain_words(&m))
    }
}

/// The `…Seconds` keys of 0.1, renamed when every duration key came to
/// take durations (`timeout: 10s`) as `interval` does.
const RENAMED: [(&str, &str); 6] = [
    ("timeoutSeconds", "timeout"),
    ("tagTtlSeconds", "tagTtl"),
    ("failureTtlSeconds", "failureTtl"),
    ("maxRetryWaitSeconds", "maxRetryWait"),
    ("leaseDurationSeconds", "leaseDuration"),
    ("activeDeadlineSeconds", "activeDeadline"),
];

/// Translates one parser message into words a config author uses.
pub(crate) fn plain_words(m: &str) -> String {
    const INTEGERS: [&str; 10] = [
        "u8", "u16", "u32", "u64", "usize", "i8", "i16", "i32", "i64", "isize",
    ];
    if let Some(t) = m.strip_prefix("invalid ")
        && INTEGERS.contains(&t.trim())
    {
        let sign = if t.starts_with('u') {
            " of 0 or more"
        } else {
            ""
        };
        return format!("expected a whole number{sign}");
    }
    if m.starts_with("invalid floating point") {
        return "expected a number".into();
    }
    if m.starts_with("invalid boolean") {
        return "expected true or false".into();
    }
    if m.starts_with("expected mapping start") {
        return "expected a section of `key: value` lines here".into();
    }
    if m.starts_with("expected sequence start") {
        return "expected a list here, e.g. [a, b] or one `- item` per line".into();
    }
    if m.starts_with("expected string scalar") || m.starts_with("expected scalar") {
        return "expected a single value here, not a list or a section".into();
    }
    if m.contains("multiple found") || m.contains("from_str_multiple") {
        return "the file holds several YAML documents (separated by ---); keep one".into();
    }
    if let Some(rest) = m.strip_prefix("duplicate mapping key `")
        && let Some((key, _)) = rest.split_once('`')
    {
        return format!("`{key}` is written twice in this section; keep one");
    }
    if m.starts_with("duplicate mapping key") {
        return "a key is written twice in this section; keep one".into();
    }
    if let Some(rest) = m.strip_prefix("unknown field `")
        && let Some((key, tail)) = rest.split_once('`')
    {
        let known = tail
            .trim_start_matches(", expected one of ")
            .trim_start_matches(", expected ")
            .replace('`', "");
        if let Some((_, new)) = RENAMED.iter().find(|(old, _)| *old == key) {
            return format!(
                "unknown key `{key}`: it is now `{new}` and takes a duration such as 10s, 5m or 1h30m"
            );
        }
        return format!("unknown key `{key}`; the keys here are: {known}");
    }
    if let Some(rest) = m.strip_prefix("unknown variant `")
        && let Some((v, tail)) = rest.split_once('`')
    {
        let known = tail
            .trim_start_matches(", expected one of ")
            .trim_start_matches(", expected ")
            .replace('`', "");
        return format!("`{v}` is not allowed here; use one of: {known}");
    }
    if m.starts_with("data did not match any variant") {
        return "this value has the wrong shape for this key".into();
    }
    if let Some(rest) = m.strip_prefix("invalid type: ")
        && let Some((got, want)) = rest.split_once(", expected ")
    {
        return format!("expected {want}, found {got}");
    }
    if let Some(rest) = m.strip_prefix("missing field `") {
        let key = rest.split('`').next().unwrap_or(rest);
        return format!("the key `{key}` is required here");
    }
    m.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_config_parses_to_the_defaults() {
        let text = include_str!("../config/imagedrift.yaml");
        let c = Config::from_yaml(text, "config/imagedrift.yaml").unwrap();
        assert_eq!(format!("{c:?}"), format!("{:?}", Config::default()));
        c.validate().unwrap();
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(
            parse_duration("5 minutes")
                .unwrap_err()
                .contains("unknown unit")
        );
        assert!(parse_duration("m5").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = Config::from_yaml("intervall: 5m\n", "x.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("intervall"), "{e}");
        let e = Config::from_yaml("leaderElection:\n  leasename: x\n", "x.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("leasename"), "{e}");
    }

    #[test]
    fn invalid_values_name_key_and_fix() {
        let cases = [
            ("interval: 1s\n", "`interval`"),
            // Far beyond what an Instant can reach: the scheduler would panic.
            ("interval: 99999999999999999h\n", "`interval`"),
            ("jitter: 2\n", "`jitter`"),
            ("listen: localhost\n", "`listen`"),
            ("maxConcurrentChecks: 0\n", "`maxConcurrentChecks`"),
            ("namespaces:\n  include: [Team_A]\n", "`namespaces`"),
            (
                "namespaces:\n  include: [a]\n  exclude: [a]\n",
                "both included and excluded",
            ),
            (
                "leaderElection:\n  leaseName: \"\"\n",
                "`leaderElection.leaseName`",
            ),
        ];
        for (yaml, want) in cases {
            let c = Config::from_yaml(yaml, "t.yaml").unwrap();
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains(want), "{yaml}: {e}");
            assert!(e.contains("; "), "names a fix: {e}");
        }
        let e = Config::from_yaml("registries:\n  defaults:\n    timeout: 0s\n", "t.yaml")
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains("registries.defaults.timeout"), "{e}");
        let e = Config::from_yaml("remedies:\n  maxInFlight: 0\n", "t.yaml")
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains("remedies.maxInFlight"), "{e}");
        let e = Config::from_yaml("remedies:\n  enabled: [reboot]\n", "t.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("reboot"), "{e}");
        let e = Config::from_yaml("interval: soon\n", "t.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("soon"), "{e}");
    }

    /// The whole message a user sees for a file with `yaml` in it.
    fn parse_error(yaml: &str) -> String {
        Config::from_yaml(yaml, "/etc/imagedrift/imagedrift.yaml")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn parse_errors_speak_plain_words_and_name_the_file() {
        let cases = [
            (
                "maxConcurrentChecks: -3\n",
                "expected a whole number of 0 or more",
            ),
            (
                "namespaces: foo\n",
                "expected a section of `key: value` lines here",
            ),
            ("namespaces:\n  include: a\n", "expected a list here"),
            (
                "leaderElection:\n  enabled: maybe\n",
                "expected true or false",
            ),
            ("jitter: x\n", "expected a number"),
            (
                "interval: 5m\n---\ninterval: 6m\n",
                "several YAML documents",
            ),
            (
                "interval: 5m\ninterval: 6m\n",
                "`interval` is written twice",
            ),
            (
                "log:\n  format: xml\n",
                "`xml` is not allowed here; use one of: text, json",
            ),
            ("interval: -5\n", "-5 is negative"),
            ("interval: [1]\n", "expected a duration such as 5m"),
            (
                "registries:\n  defaults:\n    tagTtlSeconds: 60\n",
                "unknown key `tagTtlSeconds`: it is now `tagTtl` and takes a duration",
            ),
            (
                "leaderElection:\n  leaseDurationSeconds: 30\n",
                "it is now `leaseDuration`",
            ),
            (
                "remedies:\n  refresh:\n    activeDeadlineSeconds: 120\n",
                "it is now `activeDeadline`",
            ),
        ];
        for (yaml, want) in cases {
            let e = parse_error(yaml);
            assert!(e.contains(want), "{yaml:?}: {e}");
            assert!(
                e.contains("--> /etc/imagedrift/imagedrift.yaml:"),
                "the snippet names the file: {e}"
            );
            for jargon in [
                "<input>",
                "invalid u64",
                "mapping start",
                "sequence start",
                "from_str_multiple",
                "DuplicateKeyPolicy",
                "variant",
                "scalar",
            ] {
                assert!(!e.contains(jargon), "{yaml:?}: {jargon} in {e}");
            }
        }
    }

    #[test]
    fn every_duration_key_takes_durations() {
        let c = Config::from_yaml(
            "leaderElection:\n  leaseDuration: 1m\nregistries:\n  defaults:\n    timeout: 2500ms\n    tagTtl: 1m\n    failureTtl: 45s\n    maxRetryWait: 1m30s\n  hosts:\n    r.example:\n      timeout: 5s\nremedies:\n  refresh:\n    activeDeadline: 2m\n",
            "t.yaml",
        )
        .unwrap();
        c.validate().unwrap();
        let d = &c.registries.defaults;
        assert_eq!(c.leader_election.lease_duration, Duration::from_secs(60));
        assert_eq!(d.timeout, Duration::from_millis(2500));
        assert_eq!(d.tag_ttl, Duration::from_secs(60));
        assert_eq!(d.failure_ttl, Duration::from_secs(45));
        assert_eq!(d.max_retry_wait, Duration::from_secs(90));
        assert_eq!(
            c.registries.hosts["r.example"].timeout,
            Some(Duration::from_secs(5))
        );
        assert_eq!(c.remedies.refresh.active_deadline, Duration::from_secs(120));
        // Bare numbers stay seconds, as for `interval`.
        let c = Config::from_yaml("leaderElection:\n  leaseDuration: 45\n", "t.yaml").unwrap();
        assert_eq!(c.leader_election.lease_duration, Duration::from_secs(45));
    }

    #[test]
    fn tag_ttl_must_be_below_interval() {
        let c = Config::from_yaml(
            "interval: 1m\nregistries:\n  defaults:\n    tagTtl: 1m\n",
            "t.yaml",
        )
        .unwrap();
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("registries.defaults.tagTtl: 60s is not shorter than interval (60s)"),
            "{e}"
        );
        let c = Config::from_yaml(
            "interval: 1m\nregistries:\n  defaults:\n    tagTtl: 59s\n",
            "t.yaml",
        )
        .unwrap();
        c.validate().unwrap();
        // The flag's interval counts, not only the file's.
        let flags = RunFlags {
            interval: Some("30s".into()),
            ..RunFlags::default()
        };
        let e = Config::load(&flags).unwrap_err().to_string();
        assert!(
            e.contains("tagTtl: 60s is not shorter than interval (30s)"),
            "{e}"
        );
    }

    #[test]
    fn a_label_selector_that_does_not_parse_stops_start_up() {
        let c = Config::from_yaml("labelSelector: \"app in web\"\n", "t.yaml").unwrap();
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.starts_with("invalid value for `labelSelector`: \"app in web\" is not a label selector: `in` needs a list in parentheses"),
            "{e}"
        );
        let flags = RunFlags {
            label_selector: Some("app=web,,tier=db".into()),
            ..RunFlags::default()
        };
        let e = Config::load(&flags).unwrap_err().to_string();
        assert!(e.contains("empty requirement"), "{e}");
    }

    #[test]
    fn missing_files_named_by_the_config_stop_start_up() {
        let dir = std::env::temp_dir().join(format!("imagedrift-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.yaml");
        for (yaml, want) in [
            (
                "registries:\n  credentialsFile: /nonexistent/config.json\n",
                "registries.credentialsFile: cannot read /nonexistent/config.json: No such file or directory; mount the file there or correct the path",
            ),
            (
                "registries:\n  hosts:\n    r.example:\n      caBundle: /nonexistent/ca.pem\n",
                "registries.hosts.\"r.example\".caBundle: cannot read /nonexistent/ca.pem: No such file or directory;",
            ),
        ] {
            std::fs::write(&path, yaml).unwrap();
            let flags = RunFlags {
                config: Some(path.clone()),
                ..RunFlags::default()
            };
            let e = Config::load(&flags).unwrap_err();
            assert_eq!(e.category(), "invalid");
            let e = e.to_string();
            assert!(e.contains(want), "{e}");
            assert!(!e.contains("os error"), "{e}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn flags_win_over_the_file() {
        let dir = std::env::temp_dir().join(format!("imagedrift-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.yaml");
        std::fs::write(
            &path,
            "interval: 10m\nlisten: 127.0.0.1:9000\nnamespaces:\n  include: [a]\n",
        )
        .unwrap();
        let flags = RunFlags {
            config: Some(path.clone()),
            interval: Some("2m".into()),
            leader_elect: true,
            dry_run: true,
            ..RunFlags::default()
        };
        let c = Config::load(&flags).unwrap();
        assert!(c.remedies.dry_run, "--dry-run sets remedies.dryRun");
        assert_eq!(c.interval, Duration::from_secs(120));
        assert_eq!(c.listen, "127.0.0.1:9000");
        assert!(c.leader_election.enabled);
        assert!(c.namespaces.admits("a") && !c.namespaces.admits("b"));
        let bad = RunFlags {
            interval: Some("often".into()),
            ..flags
        };
        let e = Config::load(&bad).unwrap_err().to_string();
        assert!(e.contains("--interval") && e.contains("5m"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_file_is_named() {
        let flags = RunFlags {
            config: Some("/nonexistent/imagedrift.yaml".into()),
            ..RunFlags::default()
        };
        let e = Config::load(&flags).unwrap_err().to_string();
        assert!(e.contains("/nonexistent/imagedrift.yaml"), "{e}");
    }
}
