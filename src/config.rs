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
    #[error("invalid config file {path}: {reason} (see config/imagedrift.yaml for every key)")]
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
    /// How long a lease is held without renewal, in seconds.
    pub lease_duration_seconds: u64,
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
            lease_duration_seconds: 30,
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
    /// Log format. Key: log.format.
    #[arg(long, env = "IMAGEDRIFT_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
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
            reason: e.to_string(),
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
                key: "interval (--interval)",
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
        c.validate()?;
        Ok(c)
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
        if self.label_selector.chars().any(|c| c == '\n' || c == '"') {
            return invalid(
                "labelSelector",
                format!("{:?} is not a label selector", self.label_selector),
                "write it as for kubectl -l, e.g. app=web,tier!=cache",
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
        if le.lease_duration_seconds < 10 || le.lease_duration_seconds > 600 {
            return invalid(
                "leaderElection.leaseDurationSeconds",
                format!("{} is out of range", le.lease_duration_seconds),
                "use 10 to 600 seconds (30 is the default)",
            );
        }
        if le.retry_period < Duration::from_millis(100)
            || le.retry_period * 2 >= Duration::from_secs(le.lease_duration_seconds)
        {
            return invalid(
                "leaderElection.retryPeriod",
                format!("{:?} is out of range", le.retry_period),
                "use at least 100ms and less than half of leaseDurationSeconds (2s is the default)",
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
        self.remedies
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
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    /// Deserializes a duration string (see [`super::parse_duration`]) or a
    /// number of seconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Secs(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Secs(n) => Ok(Duration::from_secs(n)),
            Raw::Text(t) => super::parse_duration(&t).map_err(serde::de::Error::custom),
        }
    }
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
        let e = Config::from_yaml(
            "registries:\n  defaults:\n    timeoutSeconds: -1\n",
            "t.yaml",
        )
        .unwrap()
        .validate()
        .unwrap_err()
        .to_string();
        assert!(e.contains("registries.defaults.timeoutSeconds"), "{e}");
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
