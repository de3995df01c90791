//! `imagedrift lint`: finds pull-policy mistakes in manifests and Jenkins
//! pipelines offline, before they make nodes run stale images
//! (SEMANTICS.md §4).
//!
//! The linting itself is a pure function of text ([`lint_text`]); reading
//! files, printing and exit codes live in [`cli`].

pub mod cli;
mod jenkins;
pub mod output;
mod rules;
pub mod source;
mod suppress;
pub mod yaml;

use std::fmt;
use std::str::FromStr;

pub use cli::{LintArgs, run};
pub use source::InputKind;
pub use yaml::Pos;

/// How serious a finding is; ordered `Info < Warning < Error`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; nothing breaks.
    Info,
    /// Likely to cause stale images or surprises.
    Warning,
    /// Definitely wrong: ignored or rejected by Kubernetes.
    Error,
}

impl Severity {
    /// The lowercase name used in output and flags.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }

    /// The SARIF `level` for this severity.
    pub fn sarif_level(self) -> &'static str {
        match self {
            Severity::Info => "note",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A severity name that is not `error`, `warning` or `info`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid severity {0:?}: expected error, warning or info")]
pub struct SeverityError(pub String);

impl FromStr for Severity {
    type Err = SeverityError;
    fn from_str(s: &str) -> Result<Severity, SeverityError> {
        match s {
            "error" => Ok(Severity::Error),
            "warning" => Ok(Severity::Warning),
            "info" => Ok(Severity::Info),
            other => Err(SeverityError(other.to_string())),
        }
    }
}

/// A lint rule, with a stable id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rule {
    /// A document that is not valid YAML/JSON.
    ParseError,
    /// `imagePullPolicy` written in the pod spec instead of a container.
    PodLevelPullPolicy,
    /// Another container field written in the pod spec.
    PodLevelContainerField,
    /// Jenkins `alwaysPullImage` inside raw pod YAML.
    JenkinsAlwaysPullImage,
    /// A mutable tag whose policy defaults (or is set by Jenkins) to IfNotPresent.
    MutableTagDefaultPolicy,
    /// `latest` or no tag, relying on the implicit `Always` default.
    ImplicitLatestPolicy,
    /// An `imagePullPolicy` value the API server rejects.
    InvalidPullPolicy,
    /// An image reference that cannot be pulled.
    InvalidImage,
    /// A digest-pinned image with policy `Always`.
    PinnedAlways,
}

impl Rule {
    /// Every rule, in documentation order.
    pub const ALL: [Rule; 9] = [
        Rule::ParseError,
        Rule::PodLevelPullPolicy,
        Rule::PodLevelContainerField,
        Rule::JenkinsAlwaysPullImage,
        Rule::MutableTagDefaultPolicy,
        Rule::ImplicitLatestPolicy,
        Rule::InvalidPullPolicy,
        Rule::InvalidImage,
        Rule::PinnedAlways,
    ];

    /// The stable id used in output and suppression comments.
    pub fn id(self) -> &'static str {
        match self {
            Rule::ParseError => "parse-error",
            Rule::PodLevelPullPolicy => "pod-level-pull-policy",
            Rule::PodLevelContainerField => "pod-level-container-field",
            Rule::JenkinsAlwaysPullImage => "jenkins-always-pull-image",
            Rule::MutableTagDefaultPolicy => "mutable-tag-default-policy",
            Rule::ImplicitLatestPolicy => "implicit-latest-policy",
            Rule::InvalidPullPolicy => "invalid-pull-policy",
            Rule::InvalidImage => "invalid-image",
            Rule::PinnedAlways => "pinned-always",
        }
    }

    /// The rule with this id.
    pub fn from_id(id: &str) -> Option<Rule> {
        Rule::ALL.into_iter().find(|r| r.id() == id)
    }

    /// The severity a finding of this rule usually has.
    pub fn default_severity(self) -> Severity {
        match self {
            Rule::ParseError
            | Rule::PodLevelPullPolicy
            | Rule::PodLevelContainerField
            | Rule::JenkinsAlwaysPullImage
            | Rule::InvalidPullPolicy
            | Rule::InvalidImage => Severity::Error,
            Rule::MutableTagDefaultPolicy => Severity::Warning,
            Rule::ImplicitLatestPolicy | Rule::PinnedAlways => Severity::Info,
        }
    }

    /// One sentence saying what the rule catches.
    pub fn summary(self) -> &'static str {
        match self {
            Rule::ParseError => {
                "The document is not valid YAML or JSON, so nothing in it is checked."
            }
            Rule::PodLevelPullPolicy => {
                "imagePullPolicy written in the pod spec instead of inside a container is silently ignored by Kubernetes."
            }
            Rule::PodLevelContainerField => {
                "A container field (image, command, args, env, resources, ports, volumeMounts, ...) written in the pod spec is ignored by Kubernetes."
            }
            Rule::JenkinsAlwaysPullImage => {
                "alwaysPullImage is a Jenkins kubernetes-plugin containerTemplate option; inside raw pod YAML Kubernetes ignores it."
            }
            Rule::MutableTagDefaultPolicy => {
                "A mutable tag without imagePullPolicy: Always gets IfNotPresent, so nodes keep stale copies after the tag is re-pushed."
            }
            Rule::ImplicitLatestPolicy => {
                "An image with tag latest (or no tag) relies on the implicit Always default; after a switch to a fixed tag, new objects default to IfNotPresent while existing ones keep Always."
            }
            Rule::InvalidPullPolicy => {
                "An imagePullPolicy value the API server rejects (the values are case-sensitive)."
            }
            Rule::InvalidImage => {
                "An image reference that is not valid, so the kubelet cannot pull it."
            }
            Rule::PinnedAlways => {
                "A digest-pinned image with policy Always asks the registry on every container start for content that cannot change."
            }
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// One problem found, with its place in the linted file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The rule that fired.
    pub rule: Rule,
    /// How serious it is.
    pub severity: Severity,
    /// The file as named on the command line (`<stdin>` for standard input).
    pub path: String,
    /// Where in the file (1-based line and column).
    pub pos: Pos,
    /// What is wrong, what follows from it, and the fix.
    pub message: String,
    /// The object it is in (`Deployment web`), when known.
    pub object: Option<String>,
    /// The container it is about, when it is about one.
    pub container: Option<String>,
    /// The chart template a Helm-rendered document came from.
    pub template: Option<String>,
}

/// Settings that change what the rules report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LintOptions {
    /// Severity of `mutable-tag-default-policy` findings.
    pub mutable_tag_severity: Severity,
}

impl Default for LintOptions {
    fn default() -> LintOptions {
        LintOptions {
            mutable_tag_severity: Rule::MutableTagDefaultPolicy.default_severity(),
        }
    }
}

/// Lints one input's text; `path` is only used to label findings.
/// Findings come back sorted by position, with suppressed ones removed.
pub fn lint_text(path: &str, text: &str, kind: InputKind, opts: &LintOptions) -> Vec<Finding> {
    let hits = match kind {
        InputKind::Yaml => rules::lint_yaml(text, "YAML", yaml::PosMap::Identity, opts),
        // JSON allows tabs wherever it allows spaces; YAML flow syntax does
        // not always, and a tab is one character, so columns stay right.
        InputKind::Json => rules::lint_yaml(
            &text.replace('\t', " "),
            "JSON",
            yaml::PosMap::Identity,
            opts,
        ),
        InputKind::Jenkins => jenkins::lint_jenkinsfile(text, opts),
    };
    let suppressions = suppress::Suppressions::scan(text);
    let mut findings: Vec<Finding> = hits
        .into_iter()
        .filter(|h| !suppressions.suppresses(h.pos.line, h.rule))
        .map(|h| Finding {
            rule: h.rule,
            severity: h.severity,
            path: path.to_string(),
            pos: h.pos,
            message: h.message,
            object: h.object,
            container: h.container,
            template: h.template,
        })
        .collect();
    findings.sort_by_key(|f| (f.pos, f.rule));
    findings
}
