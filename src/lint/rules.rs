//! The rules: where pod specs live in an object, and what is wrong with
//! the pull policy of their containers (SEMANTICS.md §4).

use super::tags::{self, TagClass};
use super::yaml::{self, Node, Pos, PosMap, Value};
use super::{LintOptions, Rule, Severity, values};
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
                values::lint_image_blocks(&doc.root, opts, &mut hits);
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

/// What a container's (or an image volume's) spec says about its image and
/// pull policy.
struct ContainerView<'a> {
    name: String,
    /// `container `app`` or `image volume `tools``, for messages.
    label: String,
    /// An image volume (`spec.volumes[].image`), not a container.
    volume: bool,
    image_node: Option<&'a Node>,
    /// The parsed image; `None` when absent, invalid, or templated so that
    /// its tag is unknown. A templated image whose tag is written literally
    /// gets a stand-in with that tag ([`tags::templated_stand_in`]).
    image: Option<ImageRef>,
    /// The image is templated (`${REGISTRY}/app:v1`).
    templated: bool,
    /// The value node of the pull policy, when written.
    policy_node: Option<&'a Node>,
    /// The valid explicit policy, when written.
    explicit: Option<PullPolicy>,
    /// The `alwaysPullImage` key and value, when written.
    always_pull: Option<(&'a Node, &'a Node)>,
}

impl ContainerView<'_> {
    /// The policy kubelet applies, when it can be told: an explicit valid
    /// policy, or the default of a known image.
    fn effective(&self) -> Option<EffectivePolicy> {
        if self.policy_node.is_some() {
            return self.explicit.map(|policy| EffectivePolicy {
                policy,
                source: PolicySource::Explicit,
            });
        }
        self.image.as_ref().map(|i| EffectivePolicy::of(i, None))
    }
}

/// Lints a pod spec; `above` are the maps between the object and the pod
/// spec, named for messages (`in `spec.template``).
fn lint_pod_spec(spec: &Node, above: &[(String, &Node)], opts: &LintOptions, hits: &mut Vec<Hit>) {
    duplicate_keys(spec, "the pod spec", hits);
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
    let mut volumes = Vec::new();
    for (i, v) in spec
        .get("volumes")
        .and_then(Node::as_seq)
        .unwrap_or(&[])
        .iter()
        .enumerate()
    {
        if let Some(image) = v.get("image").filter(|n| n.as_map().is_some()) {
            volumes.push(view_image_volume(v, image, i, hits));
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
    for v in &volumes {
        lint_container(v, None, opts, hits);
    }
}

/// `duplicate-key` for every key written twice in one mapping: YAML
/// decoders keep one of them without a word.
fn duplicate_keys(map: &Node, what: &str, hits: &mut Vec<Hit>) {
    let entries = map.as_map().unwrap_or(&[]);
    for (i, (key, value)) in entries.iter().enumerate() {
        let Some(name) = key.as_str() else { continue };
        if name == "<<" {
            continue;
        }
        let Some((first, _)) = entries[..i].iter().find(|(k, _)| k.as_str() == Some(name)) else {
            continue;
        };
        let kept = value
            .as_str()
            .map(|v| format!(": `{v}`"))
            .unwrap_or_default();
        hits.push(Hit::new(
            Rule::DuplicateKey,
            key.pos,
            format!(
                "`{name}` is written twice in {what} (first on line {}): YAML decoders keep only one of them without a word (Helm and client-go keep the last{kept}), and strict `kubectl apply` rejects the object; keep one",
                first.pos.line
            ),
        ));
    }
}

/// The value of the last `key` in a mapping (what Kubernetes' decoder
/// keeps when a key is duplicated), or the merged one.
fn last<'a>(map: &'a Node, key: &str) -> Option<&'a Node> {
    map.as_map()
        .and_then(|e| e.iter().rev().find(|(k, _)| k.as_str() == Some(key)))
        .map(|(_, v)| v)
        .or_else(|| map.get(key))
}

/// Reads a container, reporting an invalid image or policy on the way.
fn view_container<'a>(
    c: &'a Node,
    list: &str,
    index: usize,
    hits: &mut Vec<Hit>,
) -> ContainerView<'a> {
    let name = last(c, "name")
        .and_then(Node::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| format!("{list}[{index}]"));
    let label = format!("container `{name}`");
    let start = hits.len();
    duplicate_keys(c, &label, hits);
    let mut view = view_image(c, "image", "imagePullPolicy", name, label, hits);
    view.always_pull = c.entry("alwaysPullImage");
    for h in &mut hits[start..] {
        h.container = Some(view.name.clone());
    }
    view
}

/// Reads an image volume (`volumes[].image.{reference, pullPolicy}`,
/// Kubernetes 1.35+), reporting an invalid reference or policy on the way.
fn view_image_volume<'a>(
    volume: &'a Node,
    image: &'a Node,
    index: usize,
    hits: &mut Vec<Hit>,
) -> ContainerView<'a> {
    let name = last(volume, "name")
        .and_then(Node::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| format!("volumes[{index}]"));
    let label = format!("image volume `{name}`");
    duplicate_keys(image, &label, hits);
    let mut view = view_image(image, "reference", "pullPolicy", name, label, hits);
    view.volume = true;
    view
}

fn view_image<'a>(
    map: &'a Node,
    image_key: &str,
    policy_key: &str,
    name: String,
    label: String,
    hits: &mut Vec<Hit>,
) -> ContainerView<'a> {
    let image_node = last(map, image_key);
    let templated = image_node
        .and_then(Node::as_str)
        .is_some_and(tags::is_templated);
    let image = image_node.and_then(|n| check_image(n, &label, hits));
    // A null (or empty) policy is the same as leaving it out.
    let policy_node = last(map, policy_key).filter(|n| !n.is_null());
    let explicit = policy_node.and_then(|n| check_policy(n, &label, policy_key, hits));
    ContainerView {
        name,
        label,
        volume: false,
        image_node,
        image,
        templated,
        policy_node,
        explicit,
        always_pull: None,
    }
}

/// Parses an image node; reports `invalid-image` when it cannot be pulled.
/// A templated image is judged by its literal tag when it has one.
fn check_image(node: &Node, label: &str, hits: &mut Vec<Hit>) -> Option<ImageRef> {
    match &node.value {
        Value::Scalar { text, .. } if tags::is_templated(text) => tags::templated_stand_in(text),
        Value::Scalar { text, .. } => match ImageRef::parse(text) {
            Ok(r) => Some(r),
            Err(e) => {
                hits.push(invalid_image_hit(node.pos, label, &e.to_string()));
                None
            }
        },
        _ => {
            hits.push(Hit::new(
                Rule::InvalidImage,
                node.pos,
                format!("{label}: the image must be a string; the API server rejects the object"),
            ));
            None
        }
    }
}

/// `invalid-image`; `label` names what holds it (`container `app``),
/// `error` is the reference parser's message, which names the input.
pub(crate) fn invalid_image_hit(pos: Pos, label: &str, error: &str) -> Hit {
    Hit::new(
        Rule::InvalidImage,
        pos,
        format!(
            "{label}: {error}; the kubelet cannot pull it and the container fails with InvalidImageName; fix the reference"
        ),
    )
}

/// Parses a policy node; reports `invalid-pull-policy` for a bad value.
pub(crate) fn check_policy(
    node: &Node,
    label: &str,
    key: &str,
    hits: &mut Vec<Hit>,
) -> Option<PullPolicy> {
    let message = match node.as_str() {
        Some(text) => match PullPolicy::parse(text) {
            Ok(p) => return Some(p),
            Err(e) => {
                let e = e.to_string().replace("imagePullPolicy", key);
                format!("{label}: the API server rejects this object: {e}")
            }
        },
        None => format!(
            "{label}: the API server rejects this object: {key} must be one of Always, IfNotPresent, Never"
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
/// "in `spec.template`"): an error when some container ends up, or may end
/// up, with another policy than the one written there, a warning when it
/// changes nothing.
fn pod_level_policy_hit(
    place: &str,
    key: &Node,
    value: &Node,
    containers: &[ContainerView<'_>],
) -> Hit {
    let intended = value.as_str().and_then(|v| PullPolicy::parse(v).ok());
    let mut effects = Vec::new();
    let mut unknown = Vec::new();
    let mut stale = false;
    let mut lost = intended.is_none();
    for c in containers {
        let Some(eff) = c.effective() else {
            // Templated (tag unknown), absent or invalid: its policy cannot
            // be told, so the one written outside may well be lost.
            if let Some(shown) = c.image_node.and_then(Node::as_str).filter(|_| c.templated) {
                unknown.push(format!(
                    "container `{}` defaults to a policy that depends on the tag of the templated image `{shown}`, which cannot be told here",
                    c.name
                ));
                lost = true;
            }
            continue;
        };
        match &eff.source {
            PolicySource::Defaulted(rule) | PolicySource::EqualsDefault(rule) => {
                effects.push(format!(
                    "container `{}` defaults to {} {}",
                    c.name,
                    eff.policy,
                    default_reason(rule)
                ));
                stale |= c.image.as_ref().is_some_and(|i| stale_prone(i, eff.policy));
            }
            PolicySource::Explicit if Some(eff.policy) != intended => {
                effects.push(format!("container `{}` sets {} itself", c.name, eff.policy));
            }
            PolicySource::Explicit => {}
        }
        lost |= Some(eff.policy) != intended;
    }
    let detail = if effects.is_empty() && unknown.is_empty() {
        "every container sets this policy itself, so it has no effect".to_string()
    } else {
        let mut d = effects.join("; ");
        if stale {
            d.push_str(", so nodes keep stale copies after a re-push");
        }
        for u in unknown {
            if !d.is_empty() {
                d.push_str("; ");
            }
            d.push_str(&u);
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
                PolicySource::Defaulted(rule) | PolicySource::EqualsDefault(rule) => {
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

/// For a tag that defaults (or is set) to IfNotPresent: the severity and
/// how to name the tag in the message (`the mutable tag `java17``, `the tag
/// `1.27.3`, which looks immutable (…)`); `None` when the team declared it
/// immutable.
pub(crate) fn mutable_tag_verdict(
    class: &TagClass,
    tag: &str,
    opts: &LintOptions,
) -> Option<(Severity, String)> {
    match class {
        TagClass::DeclaredImmutable(_) => None,
        TagClass::LikelyImmutable(why) => Some((
            Severity::Info,
            format!(
                "the tag `{tag}`, which looks immutable ({why}; info only: if it is never re-pushed, declare it with --immutable-tags and this goes away)"
            ),
        )),
        TagClass::ConventionallyMutable(why) => Some((
            opts.mutable_tag_severity,
            format!("the mutable tag `{tag}` ({why})"),
        )),
        TagClass::Latest | TagClass::Other => Some((
            opts.mutable_tag_severity,
            format!("the mutable tag `{tag}`"),
        )),
    }
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
    let label = &c.label;
    let policy_key = if c.volume {
        "pullPolicy"
    } else {
        "imagePullPolicy"
    };
    match (&eff.source, eff.policy) {
        (PolicySource::Explicit, PullPolicy::Always) if image.is_pinned() => {
            let pos = c.policy_node.map_or(image_node.pos, |n| n.pos);
            hits.push(Hit::new(
                Rule::PinnedAlways,
                pos,
                format!(
                    "{label}: image `{shown}` is pinned by digest, so its content never changes, yet {policy_key}: Always asks the registry on every container start (a needless round-trip, and a failed start when the registry is down); use IfNotPresent"
                ),
            ));
        }
        (PolicySource::Explicit, PullPolicy::IfNotPresent) if !image.is_pinned() => {
            let pos = c.policy_node.map_or(image_node.pos, |n| n.pos);
            if let Some(hit) = if_not_present_hit(pos, label, shown, image.tag(), policy_key, opts)
            {
                hits.push(hit);
            }
        }
        (PolicySource::Defaulted(DefaultRule::LatestTagWithDigest), _) => {
            hits.push(Hit::new(
                Rule::PinnedAlways,
                image_node.pos,
                format!(
                    "{label}: image `{shown}` is pinned by digest, but its `latest` tag makes the policy default to Always, so every container start asks the registry for content that cannot change; drop `:latest` or set {policy_key}: IfNotPresent"
                ),
            ));
        }
        (PolicySource::Defaulted(DefaultRule::NonLatestTag(tag)), _) if !always_pull_true => {
            let class = tags::classify(Some(tag), &opts.immutable_tags);
            let Some((severity, named)) = mutable_tag_verdict(&class, tag, opts) else {
                return;
            };
            let note = pod_level_policy
                .map(|p| format!(" (the imagePullPolicy on line {} is outside the container and does not apply)", p.line))
                .unwrap_or_default();
            hits.push(
                Hit::new(
                    Rule::MutableTagDefaultPolicy,
                    image_node.pos,
                    format!(
                        "{label}: image `{shown}` uses {named} with no {policy_key}{note}: it defaults to IfNotPresent, so nodes that cached the tag keep running the old content after a re-push and a restart does not help; set {policy_key}: Always or pin a digest (`{shown}@sha256:…`)"
                    ),
                )
                .with_severity(severity),
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
                    "{label}: image `{shown}` {what} with no {policy_key}: it works because the policy defaults to Always, but only implicitly: after a switch to a fixed tag, new objects default to IfNotPresent while existing ones keep the Always stored at creation (the policy does not re-default), so clusters behave differently; write {policy_key}: Always"
                ),
            ));
        }
        _ => {}
    }
}

/// `if-not-present-mutable-tag`: an explicit IfNotPresent on `latest`, no
/// tag (error) or a tag mutable by convention (warning); `None` for other
/// tags, where IfNotPresent is a reasonable choice.
pub(crate) fn if_not_present_hit(
    pos: Pos,
    label: &str,
    shown: &str,
    tag: Option<&str>,
    policy_key: &str,
    opts: &LintOptions,
) -> Option<Hit> {
    let (what, severity) = match tags::classify(tag, &opts.immutable_tags) {
        TagClass::Latest if tag.is_none() => (
            "has no tag, so `latest`, the tag every push moves".to_string(),
            Severity::Error,
        ),
        TagClass::Latest => (
            "uses `latest`, the tag every push moves".to_string(),
            Severity::Error,
        ),
        TagClass::ConventionallyMutable(why) => (
            format!("uses the tag `{}`: {why}", tag.unwrap_or_default()),
            Severity::Warning,
        ),
        _ => return None,
    };
    Some(
        Hit::new(
            Rule::IfNotPresentMutableTag,
            pos,
            format!(
                "{label}: image `{shown}` {what}, yet {policy_key}: IfNotPresent makes every node that pulled it once keep that copy for good: nodes run different builds and a restart does not help; set {policy_key}: Always, or pin a digest or a fixed tag"
            ),
        )
        .with_severity(severity),
    )
}
