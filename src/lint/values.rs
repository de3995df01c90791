//! Helm values image blocks: `image: {repository, tag, pullPolicy}` (also
//! `registry` and `digest`, as Bitnami charts write them), under any key
//! and at any depth (`backend.image`, `sidecarImage`, a Flux HelmRelease's
//! `spec.values`). The chart's templates turn them into a container, so
//! the pull-policy rules apply to them with positions in the values file.
//!
//! A block without a tag is not judged: charts default it (the scaffold
//! uses `.Chart.AppVersion`), and that default is not in the values.

use super::rules::{Hit, check_policy, if_not_present_hit, invalid_image_hit};
use super::tags;
use super::yaml::Node;
use super::{LintOptions, Rule};
use crate::policy::PullPolicy;
use crate::reference::ImageRef;

/// Lints every image block in a document.
pub(crate) fn lint_image_blocks(root: &Node, opts: &LintOptions, hits: &mut Vec<Hit>) {
    walk(root, "", opts, hits);
}

/// Whether a key names an image block: `image`, `fooImage`, `foo_image`.
fn is_image_key(key: &str) -> bool {
    key == "image" || key.ends_with("Image") || key.ends_with("_image")
}

/// `path` is the dotted key path to `node` (`workers[1].image`).
fn walk(node: &Node, path: &str, opts: &LintOptions, hits: &mut Vec<Hit>) {
    if let Some(entries) = node.as_map() {
        for (k, v) in entries {
            let Some(key) = k.as_str() else { continue };
            let here = if path.is_empty() {
                key.to_string()
            } else {
                format!("{path}.{key}")
            };
            if is_image_key(key) && v.get("repository").and_then(Node::as_str).is_some() {
                lint_block(v, &here, opts, hits);
            } else {
                walk(v, &here, opts, hits);
            }
        }
    } else if let Some(items) = node.as_seq() {
        for (i, item) in items.iter().enumerate() {
            walk(item, &format!("{path}[{i}]"), opts, hits);
        }
    }
}

/// A scalar's text, `None` when absent, null, empty or not a scalar.
fn text<'a>(block: &'a Node, key: &str) -> Option<(&'a Node, &'a str)> {
    let node = block
        .as_map()?
        .iter()
        .rev()
        .find(|(k, _)| k.as_str() == Some(key))
        .map(|(_, v)| v)?;
    let s = node.as_str().filter(|s| !node.is_null() && !s.is_empty())?;
    Some((node, s))
}

fn lint_block(block: &Node, at: &str, opts: &LintOptions, hits: &mut Vec<Hit>) {
    let label = format!("values `{at}`");
    duplicate_keys(block, &label, hits);
    let policy = text(block, "pullPolicy")
        .and_then(|(n, _)| check_policy(n, &label, "pullPolicy", hits).map(|p| (n, p)));
    let Some((repo_node, repository)) = text(block, "repository") else {
        return;
    };
    let parts = [
        text(block, "registry").map(|(_, r)| r),
        Some(repository),
        text(block, "tag").map(|(_, t)| t),
        text(block, "digest").map(|(_, d)| d),
    ];
    if parts.iter().flatten().any(|p| tags::is_templated(p)) {
        return;
    }
    let [registry, _, tag, digest] = parts;
    let mut reference = match registry {
        Some(r) => format!("{}/{repository}", r.trim_end_matches('/')),
        None => repository.to_string(),
    };
    if let Some(t) = tag {
        reference.push(':');
        reference.push_str(t);
    }
    if let Some(d) = digest {
        reference.push('@');
        reference.push_str(d);
    }
    let image = match ImageRef::parse(&reference) {
        Ok(r) => r,
        Err(e) => {
            hits.push(invalid_image_hit(repo_node.pos, &label, &e.to_string()));
            return;
        }
    };
    if image.tag().is_none() && !image.is_pinned() {
        return; // the chart's default tag (usually appVersion) applies
    }
    let Some((policy_node, policy)) = policy else {
        return; // the chart decides (often: the field is left out, so defaulted)
    };
    match policy {
        PullPolicy::IfNotPresent if !image.is_pinned() => {
            hits.extend(if_not_present_hit(
                policy_node.pos,
                &label,
                &reference,
                image.tag(),
                "pullPolicy",
                opts,
            ));
        }
        PullPolicy::Always if image.is_pinned() => hits.push(Hit::new(
            Rule::PinnedAlways,
            policy_node.pos,
            format!(
                "{label}: image `{reference}` is pinned by digest, so its content never changes, yet pullPolicy: Always asks the registry on every container start (a needless round-trip, and a failed start when the registry is down); use IfNotPresent"
            ),
        )),
        _ => {}
    }
}

fn duplicate_keys(block: &Node, label: &str, hits: &mut Vec<Hit>) {
    let entries = block.as_map().unwrap_or(&[]);
    for (i, (key, _)) in entries.iter().enumerate() {
        let Some(name) = key.as_str() else { continue };
        if let Some((first, _)) = entries[..i].iter().find(|(k, _)| k.as_str() == Some(name)) {
            hits.push(Hit::new(
                Rule::DuplicateKey,
                key.pos,
                format!(
                    "`{name}` is written twice in {label} (first on line {}): Helm keeps only the last one without a word; keep one",
                    first.pos.line
                ),
            ));
        }
    }
}
