//! The rules: where pod specs live in an object, and what is wrong with
//! the pull policy of their containers (SEMANTICS.md §4).

use super::yaml::{self, Node, Pos, PosMap, Value};
use super::{LintOptions, Rule, Severity};
use crate::policy::{DefaultRule, EffectivePolicy, PolicySource, PullPolicy};
use crate::reference::ImageRef;

/// A finding before it is tied to a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Hit {
    pub rule: Rule,
    pub severity: Severity,
    pub pos: Pos,
    pub message: String,
    pub object: Option<String>,
    pub container: Option<String>,
    pub template: Option<String>,
}

impl Hit {
    pub(crate) fn new(rule: Rule, pos: Pos, message: String) -> Hit {
        Hit {
            rule,
            severity: rule.default_severity(),
            pos,
            message,
            object: None,
            container: None,
            template: None,
        }
    }

    pub(crate) fn with_severity(mut self, s: Severity) -> Hit {
        self.severity = s;
        self
    }
}

/// Container fields that Kubernetes ignores when written in the pod spec.
/// (`securityContext` is not here: the pod spec has its own.)
const CONTAINER_ONLY_FIELDS: &[&str] = &[
    "image",
    "command",
    "args",
    "env",
    "envFrom",
    "resources",
    "ports",
    "volumeMounts",
    "volumeDevices",
    "workingDir",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "lifecycle",
    "stdin",
    "stdinOnce",
    "tty",
    "terminationMessagePath",
    "terminationMessagePolicy",
    "resizePolicy",
    "restartPolicyRules",
];

/// The three lists of containers in a pod spec.
const CONTAINER_LISTS: &[&str] = &["containers", "initContainers", "ephemeralContainers"];

/// Lints every document of a YAML/JSON stream.
/// `format` names the syntax in parse-error messages ("YAML", "JSON").
pub(crate) fn lint_yaml(text: &str, format: &str, map: PosMap<'_>, opts: &LintOptions) -> Vec<Hit> {
    let mut hits = Vec::new();
    for doc in yaml::parse_stream(text, map) {
        match doc {
            Ok(doc) => {
                let start = hits.len();
                lint_object(&doc.root, opts, &mut hits);
                for h in &mut hits[start..] {
                    h.template.clone_from(&doc.helm_source);
                }
            }
            Err(e) => hits.push(Hit::new(
                Rule::ParseError,
                e.pos,
                format!(
                    "this document is not valid {format} ({}), so nothing in it was checked; fix the syntax",
                    e.message
                ),
            )),
        }
    }
    hits
}

/// Finds the pod specs in an object (or in each item of a `List`) and lints them.
fn lint_object(obj: &Node, opts: &LintOptions, hits: &mut Vec<Hit>) {
    if obj.as_map().is_none() {
        return;
    }
    let kind = obj.get("kind").and_then(Node::as_str);
    if let (Some(k), Some(items)) = (kind, obj.get("items").and_then(Node::as_seq))
        && k.ends_with("List")
    {
        for item in items {
            lint_object(item, opts, hits);
        }
        return;
    }
    let name = obj.at(&["metadata", "name"]).and_then(Node::as_str);
    let object = match (kind, name) {
        (Some(k), Some(n)) => Some(format!("{k} {n}")),
        (Some(k), None) => Some(k.to_string()),
        (None, Some(n)) => Some(n.to_string()),
        (None, None) => None,
    };
    // Each pod spec, with the maps above it (inside the object) where an
    // `imagePullPolicy` is just as ignored as at pod level.
    let mut specs: Vec<(&Node, Vec<(String, &Node)>)> = Vec::new();
    if let Some(spec) = obj.get("spec")
        && (kind == Some("Pod") || has_containers(spec))
    {
        // A Pod, or any object whose spec holds containers directly (also
        // kind-less Jenkins pod fragments).
        specs.push((spec, Vec::new()));
    }
    let paths: [&[&str]; 3] = [
        &["template", "spec"],
        &["spec", "template", "spec"],
        &["spec", "jobTemplate", "spec", "template", "spec"],
    ];
    for path in paths {
        if path.len() == 2 && kind != Some("PodTemplate") {
            continue;
        }
        if let Some(s) = obj.at(path) {
            let above = (1..path.len())
                .filter_map(|n| {
                    obj.at(&path[..n])
                        .map(|node| (format!("in `{}`", path[..n].join(".")), node))
                })
                .collect();
            specs.push((s, above));
        }
    }
    let mut seen: Vec<*const Node> = Vec::new();
    for (spec, above) in specs {
        if spec.as_map().is_some() && !seen.contains(&(spec as *const Node)) {
            seen.push(spec);
            let start = hits.len();
            lint_pod_spec(spec, &above, opts, hits);
            for h in &mut hits[start..] {
                h.object.clone_from(&object);
            }
        }
    }
}

fn has_containers(spec: &Node) -> bool {
    CONTAINER_LISTS
        .iter()
        .any(|l| spec.get(l).and_then(Node::as_seq).is_some())
}

/// What a container's spec says about its image and pull policy.
struct ContainerView<'a> {
    name: String,
    image_node: Option<&'a Node>,
    /// The parsed image; `None` when absent, templated or invalid.
    image: Option<ImageRef>,
    /// The value node of `imagePullPolicy`, when written.
    policy_node: Option<&'a Node>,
    /// The valid explicit policy, when written.
    explicit: Option<PullPolicy>,
    /// The `alwaysPullImage` key and value, when written.
    always_pull: Option<(&'a Node, &'a Node)>,
}

impl ContainerView<'_> {
    /// The policy kubelet applies, when it can be told (valid image and
    /// valid-or-absent policy).
    fn effective(&self) -> Option<EffectivePolicy> {
        if self.policy_node.is_some() && self.explicit.is_none() {
            return None;
        }
        self.image
            .as_ref()
            .map(|i| EffectivePolicy::of(i, self.explicit))
    }
}

/// Lints a pod spec; `above` are the maps between the object and the pod
/// spec, named for messages (`in `spec.template``).
fn lint_pod_spec(spec: &Node, above: &[(String, &Node)], opts: &LintOptions, hits: &mut Vec<Hit>) {
    let mut containers = Vec::new();
    for list in CONTAINER_LISTS {
        for (i, c) in spec
            .get(list)
            .and_then(Node::as_seq)
            .unwrap_or(&[])
            .iter()
            .enumerate()
        {
            if c.as_map().is_some() {
                containers.push(view_container(c, list, i, hits));
            }
        }
    }

    let mut misplaced_policy = None;
    for (place, node) in above {
        if let Some((key, value)) = node.entry("imagePullPolicy") {
            hits.push(pod_level_policy_hit(place, key, value, &containers));
            misplaced_policy = misplaced_policy.or(Some(key.pos));
        }
    }
    for (key, value) in spec.as_map().unwrap_or(&[]) {
        let Some(field) = key.as_str() else { continue };
        if field == "imagePullPolicy" {
            hits.push(pod_level_policy_hit(
                "at pod level",
                key,
                value,
                &containers,
            ));
            misplaced_policy = Some(key.pos);
        } else if field == "alwaysPullImage" {
            hits.push(always_pull_hit(key, value, None));
        } else if CONTAINER_ONLY_FIELDS.contains(&field) {
            hits.push(Hit::new(
                Rule::PodLevelContainerField,
                key.pos,
                format!(
                    "`{field}` at pod level is ignored by Kubernetes (it is a container field, so no container gets it); move it into the containers that need it"
                ),
            ));
        }
    }

    for c in &containers {
        let start = hits.len();
        lint_container(c, misplaced_policy, opts, hits);
        for h in &mut hits[start..] {
            h.container = Some(c.name.clone());
        }
    }
}

/// Reads a container, reporting an invalid image or policy on the way.
fn view_container<'a>(
    c: &'a Node,
    list: &str,
    index: usize,
    hits: &mut Vec<Hit>,
) -> ContainerView<'a> {
    let name = c
        .get("name")
        .and_then(Node::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| format!("{list}[{index}]"));
    let mut found = Vec::new();
    let image_node = c.get("image");
    let image = image_node.and_then(|n| check_image(n, &name, &mut found));
    // `imagePullPolicy: null` (or empty) is the same as leaving it out.
    let policy_node = c.get("imagePullPolicy").filter(|n| !n.is_null());
    let explicit = policy_node.and_then(|n| check_policy(n, &name, &mut found));
    for h in &mut found {
        h.container = Some(name.clone());
    }
    hits.extend(found);
    ContainerView {
        name,
        image_node,
        image,
        policy_node,
        explicit,
        always_pull: c.entry("alwaysPullImage"),
    }
}

/// Whether an image string is a template placeholder (`${IMAGE}` from
/// envsubst or a Groovy GString) rather than a reference.
pub(crate) fn is_templated(image: &str) -> bool {
    image.contains("${") || image.contains("{{")
}

/// Parses an image node; reports `invalid-image` when it cannot be pulled.
fn check_image(node: &Node, container: &str, hits: &mut Vec<Hit>) -> Option<ImageRef> {
    match &node.value {
        Value::Scalar { text, .. } if is_templated(text) => None,
        Value::Scalar { text, .. } => match ImageRef::parse(text) {
            Ok(r) => Some(r),
            Err(e) => {
                hits.push(invalid_image_hit(node.pos, container, &e.to_string()));
                None
            }
        },
        _ => {
            hits.push(Hit::new(
                Rule::InvalidImage,
                node.pos,
                format!("container `{container}`: image must be a string; the API server rejects the object"),
            ));
            None
        }
    }
}

/// `invalid-image`; `error` is the reference parser's message, which names the input.
pub(crate) fn invalid_image_hit(pos: Pos, container: &str, error: &str) -> Hit {
    Hit::new(
        Rule::InvalidImage,
        pos,
        format!(
            "container `{container}`: {error}; the kubelet cannot pull it and the container fails with InvalidImageName; fix the reference"
        ),
    )
}

/// Parses a policy node; reports `invalid-pull-policy` for a bad value.
fn check_policy(node: &Node, container: &str, hits: &mut Vec<Hit>) -> Option<PullPolicy> {
    let message = match node.as_str() {
        Some(text) => match PullPolicy::parse(text) {
            Ok(p) => return Some(p),
            Err(e) => format!("container `{container}`: the API server rejects this object: {e}"),
        },
        None => format!(
            "container `{container}`: the API server rejects this object: imagePullPolicy must be one of Always, IfNotPresent, Never"
        ),
    };
    hits.push(Hit::new(Rule::InvalidPullPolicy, node.pos, message));
    None
}

/// Short reason for a defaulted policy: "for tag `java17`", "because the
/// image has no tag".
fn default_reason(rule: &DefaultRule) -> String {
    match rule {
        DefaultRule::NoTag => "because the image has no tag".to_string(),
        DefaultRule::LatestTag | DefaultRule::LatestTagWithDigest => "for tag `latest`".to_string(),
        DefaultRule::DigestOnly => "because the image is pinned by digest".to_string(),
        DefaultRule::NonLatestTag(t) | DefaultRule::NonLatestTagWithDigest(t) => {
            format!("for tag `{t}`")
        }
    }
}

/// True when the container can run stale content: IfNotPresent or Never on a tag.
fn stale_prone(image: &ImageRef, policy: PullPolicy) -> bool {
    policy != PullPolicy::Always && !image.is_pinned()
}

/// `imagePullPolicy` outside the containers (`place`: "at pod level",
/// "in `spec.template`"): an error when some container ends up with another
/// policy than the one written there, a warning when it changes nothing.
fn pod_level_policy_hit(
    place: &str,
    key: &Node,
    value: &Node,
    containers: &[ContainerView<'_>],
) -> Hit {
    let intended = value.as_str().and_then(|v| PullPolicy::parse(v).ok());
    let mut effects = Vec::new();
    let mut stale = false;
    let mut lost = intended.is_none();
    for c in containers {
        let (Some(image), Some(eff)) = (&c.image, c.effective()) else {
            continue;
        };
        match &eff.source {
            PolicySource::Defaulted(rule) => {
                effects.push(format!(
                    "container `{}` defaults to {} {}",
                    c.name,
                    eff.policy,
                    default_reason(rule)
                ));
                stale |= stale_prone(image, eff.policy);
            }
            PolicySource::Explicit if Some(eff.policy) != intended => {
                effects.push(format!("container `{}` sets {} itself", c.name, eff.policy));
            }
            PolicySource::Explicit => {}
        }
        lost |= Some(eff.policy) != intended;
    }
    let detail = if effects.is_empty() {
        "every container sets this policy itself, so it has no effect".to_string()
    } else {
        let mut d = effects.join("; ");
        if stale {
            d.push_str(", so nodes keep stale copies after a re-push");
        }
        d
    };
    let severity = if lost {
        Severity::Error
    } else {
        Severity::Warning
    };
    Hit::new(
        Rule::PodLevelPullPolicy,
        key.pos,
        format!("imagePullPolicy {place} is ignored by Kubernetes: {detail}; move it into each container"),
    )
    .with_severity(severity)
}

/// `alwaysPullImage` in pod YAML; `c` is the container it sits in, if any.
fn always_pull_hit(key: &Node, value: &Node, c: Option<&ContainerView<'_>>) -> Hit {
    let head = match c {
        Some(c) => format!(
            "container `{}`: alwaysPullImage is a Jenkins kubernetes-plugin containerTemplate option, not a Kubernetes field, so in pod YAML it is ignored",
            c.name
        ),
        None => "alwaysPullImage at pod level is a Jenkins kubernetes-plugin containerTemplate option, not a Kubernetes field, so it is ignored".to_string(),
    };
    let eff = c.and_then(|c| c.effective().map(|e| (c, e)));
    let (tail, severity) = match (value.as_bool(), eff) {
        (Some(true), Some((c, eff))) if eff.policy != PullPolicy::Always => {
            let why = match &eff.source {
                PolicySource::Explicit => {
                    format!("the container sets imagePullPolicy: {}", eff.policy)
                }
                PolicySource::Defaulted(rule) => {
                    format!(
                        "the container defaults to {} {}",
                        eff.policy,
                        default_reason(rule)
                    )
                }
            };
            let stale = c.image.as_ref().is_some_and(|i| stale_prone(i, eff.policy));
            let consequence = if stale {
                ", so nodes keep stale copies after a re-push"
            } else {
                ""
            };
            (
                format!(": {why}{consequence}; replace it with imagePullPolicy: Always"),
                Severity::Error,
            )
        }
        (Some(true), Some((_, eff))) if eff.source == PolicySource::Explicit => (
            "; the container already sets imagePullPolicy: Always, so remove it".to_string(),
            Severity::Warning,
        ),
        (Some(true), Some((_, eff))) => (
            format!(
                "; the container pulls anyway ({}), but only by default; replace it with imagePullPolicy: Always",
                eff.explain()
            ),
            Severity::Warning,
        ),
        (Some(true), None) if c.is_some() => (
            "; replace it with imagePullPolicy: Always".to_string(),
            Severity::Error,
        ),
        (Some(true), None) => (
            "; write imagePullPolicy: Always in each container instead".to_string(),
            Severity::Error,
        ),
        _ => (
            "; remove it and set imagePullPolicy in the container if needed".to_string(),
            Severity::Warning,
        ),
    };
    Hit::new(
        Rule::JenkinsAlwaysPullImage,
        key.pos,
        format!("{head}{tail}"),
    )
    .with_severity(severity)
}

fn lint_container(
    c: &ContainerView<'_>,
    pod_level_policy: Option<Pos>,
    opts: &LintOptions,
    hits: &mut Vec<Hit>,
) {
    let mut always_pull_true = false;
    if let Some((key, value)) = c.always_pull {
        always_pull_true = value.as_bool() == Some(true);
        hits.push(always_pull_hit(key, value, Some(c)));
    }
    let (Some(image), Some(image_node)) = (&c.image, c.image_node) else {
        return;
    };
    let Some(eff) = c.effective() else { return };
    let shown = image_node.as_str().unwrap_or_default();
    match (&eff.source, eff.policy) {
        (PolicySource::Explicit, PullPolicy::Always) if image.is_pinned() => {
            let pos = c.policy_node.map_or(image_node.pos, |n| n.pos);
            hits.push(Hit::new(
                Rule::PinnedAlways,
                pos,
                format!(
                    "container `{}`: image `{shown}` is pinned by digest, so its content never changes, yet imagePullPolicy: Always asks the registry on every container start (a needless round-trip, and a failed start when the registry is down); use IfNotPresent",
                    c.name
                ),
            ));
        }
        (PolicySource::Defaulted(DefaultRule::LatestTagWithDigest), _) => {
            hits.push(Hit::new(
                Rule::PinnedAlways,
                image_node.pos,
                format!(
                    "container `{}`: image `{shown}` is pinned by digest, but its `latest` tag makes the policy default to Always, so every container start asks the registry for content that cannot change; drop `:latest` or set imagePullPolicy: IfNotPresent",
                    c.name
                ),
            ));
        }
        (PolicySource::Defaulted(DefaultRule::NonLatestTag(tag)), _) if !always_pull_true => {
            let note = pod_level_policy
                .map(|p| format!(" (the imagePullPolicy on line {} is outside the container and does not apply)", p.line))
                .unwrap_or_default();
            hits.push(
                Hit::new(
                    Rule::MutableTagDefaultPolicy,
                    image_node.pos,
                    format!(
                        "container `{}`: image `{shown}` uses the mutable tag `{tag}` with no imagePullPolicy{note}: it defaults to IfNotPresent, so nodes that cached the tag keep running the old content after a re-push and a restart does not help; set imagePullPolicy: Always or pin a digest (`{shown}@sha256:…`)",
                        c.name
                    ),
                )
                .with_severity(opts.mutable_tag_severity),
            );
        }
        (PolicySource::Defaulted(rule @ (DefaultRule::NoTag | DefaultRule::LatestTag)), _)
            if !always_pull_true =>
        {
            let what = if *rule == DefaultRule::NoTag {
                "has no tag (so `latest`)"
            } else {
                "uses the tag `latest`"
            };
            hits.push(Hit::new(
                Rule::ImplicitLatestPolicy,
                image_node.pos,
                format!(
                    "container `{}`: image `{shown}` {what} with no imagePullPolicy: it works because the policy defaults to Always, but only implicitly: after a switch to a fixed tag, new objects default to IfNotPresent while existing ones keep the Always stored at creation (the policy does not re-default), so clusters behave differently; write imagePullPolicy: Always",
                    c.name
                ),
            ));
        }
        _ => {}
    }
}
