//! `imagedrift lint`: finds pull-policy mistakes in manifests and Jenkins
//! pipelines offline, before they make nodes run stale images
//! (SEMANTICS.md §4).
//!
//! The linting itself is a pure function of text ([`lint_text`]); reading
//! files, printing and exit codes live in [`cli`].

pub mod cli;
pub mod config;
mod jenkins;
pub mod output;
mod rules;
pub mod source;
mod suppress;
pub mod tags;
mod values;
pub mod yaml;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

pub use cli::{LintArgs, run};
pub use source::InputKind;
pub use tags::TagPattern;
pub use yaml::Pos;

/// Where the rules are documented (each rule has an anchor named by its id).
pub const RULES_URL: &str = "https://github.com/imagedrift/imagedrift/blob/main/README.md";

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
    /// An explicit `IfNotPresent` on `latest`, no tag, or a conventionally mutable tag.
    IfNotPresentMutableTag,
    /// A key written twice in one container, pod spec or image block.
    DuplicateKey,
    /// A suppression comment naming a rule that does not exist.
    UnknownSuppression,
    /// A path a directory walk found but could not read (dangling symlink, permissions).
    UnreadablePath,
}

impl Rule {
    /// Every rule, in documentation order.
    pub const ALL: [Rule; 13] = [
        Rule::ParseError,
        Rule::PodLevelPullPolicy,
        Rule::PodLevelContainerField,
        Rule::JenkinsAlwaysPullImage,
        Rule::IfNotPresentMutableTag,
        Rule::MutableTagDefaultPolicy,
        Rule::ImplicitLatestPolicy,
        Rule::InvalidPullPolicy,
        Rule::InvalidImage,
        Rule::PinnedAlways,
        Rule::DuplicateKey,
        Rule::UnknownSuppression,
        Rule::UnreadablePath,
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
            Rule::IfNotPresentMutableTag => "if-not-present-mutable-tag",
            Rule::DuplicateKey => "duplicate-key",
            Rule::UnknownSuppression => "unknown-suppression",
            Rule::UnreadablePath => "unreadable-path",
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
            | Rule::InvalidImage
            | Rule::IfNotPresentMutableTag
            | Rule::DuplicateKey => Severity::Error,
            Rule::MutableTagDefaultPolicy | Rule::UnknownSuppression | Rule::UnreadablePath => {
                Severity::Warning
            }
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
            Rule::IfNotPresentMutableTag => {
                "imagePullPolicy: IfNotPresent on latest, no tag (error) or a tag mutable by convention such as main or nightly (warning): nodes keep whatever copy they pulled first."
            }
            Rule::DuplicateKey => {
                "A key written twice in one container, pod spec or image block: YAML decoders keep one of them silently."
            }
            Rule::UnknownSuppression => {
                "An imagedrift:ignore comment naming a rule that does not exist, so it suppresses nothing."
            }
            Rule::UnreadablePath => {
                "A path found while walking a directory that could not be read (a dangling symlink, no permission), so it was not checked."
            }
        }
    }

    /// What the rule catches, why it matters and how to fix it (SARIF
    /// `fullDescription`).
    pub fn description(self) -> &'static str {
        match self {
            Rule::ParseError => {
                "The document is not valid YAML or JSON (or a file is not UTF-8), so none of the other rules could check it. The rest of the file is still linted. Fix the syntax; lint rendered output (helm template) rather than Go templates."
            }
            Rule::PodLevelPullPolicy => {
                "imagePullPolicy is a field of each container, not of the pod. Written beside containers: (or higher, in the workload spec) it is an unknown field: Helm, many clients and the Jenkins kubernetes-plugin drop it silently, and every container keeps its defaulted policy (IfNotPresent for any tag but latest), so nodes keep stale copies after a re-push. Error when some container ends up, or may end up (templated image), with another policy; warning when every container sets the same policy itself. Move the field into each container."
            }
            Rule::PodLevelContainerField => {
                "A container field (image, command, args, env, resources, ports, volumeMounts, probes, ...) written in the pod spec is ignored: no container gets it. Move it into the containers that need it."
            }
            Rule::JenkinsAlwaysPullImage => {
                "alwaysPullImage is an option of the Jenkins kubernetes-plugin's containerTemplate, not a Kubernetes field. Inside raw pod YAML (yaml:, yamlFile) it is ignored and the agent's tag defaults to IfNotPresent, so agents run stale tools. Write imagePullPolicy: Always in the container instead."
            }
            Rule::IfNotPresentMutableTag => {
                "An explicit imagePullPolicy: IfNotPresent (or a Helm values pullPolicy: IfNotPresent) on an image whose tag is moved by every push: latest or no tag (error; this is Helm's scaffold default with tag: latest), or a tag mutable by convention: main, master, develop, dev, stable, edge, nightly, snapshot, canary, rolling, *-SNAPSHOT, *-latest (warning). Each node keeps the copy it pulled first, so nodes run different builds and restarts do not help. Set Always, or pin a digest or a fixed tag."
            }
            Rule::MutableTagDefaultPolicy => {
                "A tag other than latest with no imagePullPolicy defaults to IfNotPresent: a node that cached the tag keeps the old content after a re-push, and a restart does not help. Tags that look immutable (a full three-part version such as 1.27.3, a 7-40 digit git SHA such as git-3f2a1bc) are reported as info only; tags matching --immutable-tags (or immutableTags in .imagedrift-lint.yaml) are not reported. Set imagePullPolicy: Always or pin a digest."
            }
            Rule::ImplicitLatestPolicy => {
                "An image with tag latest (or no tag) and no imagePullPolicy pulls on every start only because the API server defaults the policy to Always. After a switch to a fixed tag, new objects default to IfNotPresent while existing ones keep the Always stored at creation. Write imagePullPolicy: Always."
            }
            Rule::InvalidPullPolicy => {
                "The API server accepts exactly Always, IfNotPresent and Never (case-sensitive) for imagePullPolicy (and pullPolicy of image volumes); anything else rejects the object."
            }
            Rule::InvalidImage => {
                "The image reference does not parse as a distribution reference (uppercase repository, bad tag, bad digest), so the kubelet cannot pull it and the container fails with InvalidImageName."
            }
            Rule::PinnedAlways => {
                "A digest-pinned image cannot change, yet imagePullPolicy: Always (or a latest tag beside the digest, which defaults to Always) asks the registry on every container start: a needless round-trip, and a failed start when the registry is down. Use IfNotPresent."
            }
            Rule::DuplicateKey => {
                "A key written twice in one mapping (for example two imagePullPolicy keys in one container): YAML decoders keep one of them without a word (Helm and client-go the last), and strict kubectl apply rejects the object. Keep one."
            }
            Rule::UnknownSuppression => {
                "A # imagedrift:ignore comment names a rule id that does not exist (often a typo), so it silences nothing. Use an id from imagedrift lint --list-rules."
            }
            Rule::UnreadablePath => {
                "While walking a directory, a path could not be read: a symbolic link to nothing, a permission error, a broken ignore file. The walk goes on; the path was not checked. Fix or remove it, or exclude it."
            }
        }
    }

    /// Where the rule is documented.
    pub fn help_uri(self) -> String {
        format!("{RULES_URL}#{}", self.id())
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
    /// Severity of `mutable-tag-default-policy` findings on tags that may move.
    pub mutable_tag_severity: Severity,
    /// Tags the team never moves (`--immutable-tags`, `immutableTags`).
    pub immutable_tags: Vec<TagPattern>,
    /// Rules whose findings are dropped.
    pub disabled: BTreeSet<Rule>,
    /// Severity overrides: every finding of the rule gets this severity.
    pub severities: BTreeMap<Rule, Severity>,
}

impl Default for LintOptions {
    fn default() -> LintOptions {
        LintOptions {
            mutable_tag_severity: Rule::MutableTagDefaultPolicy.default_severity(),
            immutable_tags: Vec::new(),
            disabled: BTreeSet::new(),
            severities: BTreeMap::new(),
        }
    }
}

impl LintOptions {
    /// Drops findings of disabled rules and applies severity overrides.
    pub fn apply(&self, findings: &mut Vec<Finding>) {
        findings.retain(|f| !self.disabled.contains(&f.rule));
        for f in findings.iter_mut() {
            if let Some(s) = self.severities.get(&f.rule) {
                f.severity = *s;
            }
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
    let (suppressions, unknown) = suppress::Suppressions::scan(text);
    let mut findings: Vec<Finding> = hits
        .into_iter()
        .filter(|h| !suppressions.suppresses(h.pos.line, h.rule))
        .chain(unknown)
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
    opts.apply(&mut findings);
    findings.sort_by_key(|f| (f.pos, f.rule));
    findings
}
