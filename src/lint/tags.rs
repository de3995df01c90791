//! What a tag says about itself: `latest`, mutable by convention
//! (`main`, `nightly`, `*-SNAPSHOT`), declared immutable by the team
//! (`--immutable-tags`), likely immutable (full semver, a git SHA), or just
//! a tag that can be re-pushed. And what a templated image (`${REGISTRY}/app:v1`)
//! still tells: its tag, when the template does not touch it.

use crate::reference::ImageRef;
use regex::Regex;
use std::fmt;

/// A pattern for tags the team never moves, matched against the whole tag.
#[derive(Clone, Debug)]
pub struct TagPattern {
    source: String,
    regex: Regex,
}

impl TagPattern {
    /// Compiles `pattern`; it must match the whole tag (`^…$` is implied).
    pub fn new(pattern: &str) -> Result<TagPattern, regex::Error> {
        Ok(TagPattern {
            source: pattern.to_string(),
            regex: Regex::new(&format!("^(?:{pattern})$"))?,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the whole tag matches.
    pub fn matches(&self, tag: &str) -> bool {
        self.regex.is_match(tag)
    }
}

impl PartialEq for TagPattern {
    fn eq(&self, other: &TagPattern) -> bool {
        self.source == other.source
    }
}

impl Eq for TagPattern {}

/// What kind of tag an image carries (SEMANTICS.md §4 treats every tag as
/// re-pushable; this is how likely a re-push is).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TagClass {
    /// `latest`, or no tag at all (which means `latest`).
    Latest,
    /// The tag matches one of the team's `--immutable-tags` patterns.
    DeclaredImmutable(String),
    /// A name that is moved by convention (`main`, `nightly`, `*-SNAPSHOT`…);
    /// the text says which convention.
    ConventionallyMutable(String),
    /// Looks like a release or a commit (full semver, git SHA): likely
    /// never re-pushed; the text says why.
    LikelyImmutable(&'static str),
    /// Any other tag: nothing says whether it moves.
    Other,
}

/// Tags moved by convention, exactly (case-insensitive).
const MUTABLE_NAMES: &[&str] = &[
    "main", "master", "develop", "dev", "stable", "edge", "nightly", "snapshot", "canary",
    "rolling",
];

/// Suffixes moved by convention (case-insensitive): Maven snapshots and
/// per-variant `latest` (`alpine-latest`, `1.2-latest`).
const MUTABLE_SUFFIXES: &[&str] = &["-snapshot", "-latest"];

/// Classifies a tag (`None`: the image has no tag) with the team's patterns.
pub fn classify(tag: Option<&str>, immutable: &[TagPattern]) -> TagClass {
    let Some(tag) = tag.filter(|t| *t != "latest") else {
        return TagClass::Latest;
    };
    if let Some(p) = immutable.iter().find(|p| p.matches(tag)) {
        return TagClass::DeclaredImmutable(p.as_str().to_string());
    }
    let lower = tag.to_ascii_lowercase();
    if MUTABLE_NAMES.contains(&lower.as_str()) {
        return TagClass::ConventionallyMutable(format!(
            "`{tag}` names a branch or channel, which is re-pushed by convention"
        ));
    }
    if let Some(s) = MUTABLE_SUFFIXES.iter().find(|s| lower.ends_with(*s)) {
        return TagClass::ConventionallyMutable(format!(
            "a tag ending in `{}` is re-pushed by convention",
            &tag[tag.len() - s.len()..]
        ));
    }
    if is_semver(tag) {
        return TagClass::LikelyImmutable("a full three-part version");
    }
    if is_git_sha(tag) {
        return TagClass::LikelyImmutable("a git commit SHA");
    }
    TagClass::Other
}

/// `MAJOR.MINOR.PATCH` (no leading zeros), optional `v`, optional
/// pre-release or variant suffix (`1.27.3-alpine`, `2.0.0-rc.1`).
fn is_semver(tag: &str) -> bool {
    let tag = tag.strip_prefix('v').unwrap_or(tag);
    let (core, suffix) = match tag.split_once('-') {
        Some((c, s)) => (c, Some(s)),
        None => (tag, None),
    };
    let number = |n: &str| {
        !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && (n == "0" || !n.starts_with('0'))
    };
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|p| number(p))
        && suffix.is_none_or(|s| {
            s.starts_with(|c: char| c.is_ascii_alphanumeric())
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        })
}

/// 7 to 40 lowercase hex digits with at least one digit and one letter
/// (so neither `20240101` nor `deadbeef` counts), alone or after a prefix
/// ending in `-`, `_` or `.` (`git-3f2a1bc`, `sha-3f2a1bc`, `main-3f2a1bc`).
fn is_git_sha(tag: &str) -> bool {
    let sha = tag.rsplit(['-', '_', '.']).next().unwrap_or(tag);
    (7..=40).contains(&sha.len())
        && sha.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        && sha.bytes().any(|b| b.is_ascii_digit())
        && sha.bytes().any(|b| b.is_ascii_lowercase())
}

impl fmt::Display for TagClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TagClass::Latest => f.write_str("latest"),
            TagClass::DeclaredImmutable(p) => write!(f, "immutable by pattern `{p}`"),
            TagClass::ConventionallyMutable(why) => f.write_str(why),
            TagClass::LikelyImmutable(why) => write!(f, "likely immutable ({why})"),
            TagClass::Other => f.write_str("mutable"),
        }
    }
}

/// Whether an image string is a template placeholder (`${IMAGE}` from
/// envsubst or a Groovy GString, `{{ … }}` from Go templates) rather than
/// a reference.
pub(crate) fn is_templated(image: &str) -> bool {
    image.contains("${") || image.contains("{{")
}

/// For a templated image whose tag and digest are written literally
/// (`${REGISTRY}/ci/tools:java17`), a stand-in reference with the same tag
/// and digest, so its pull policy can be judged; `None` when a placeholder
/// may hold the tag or digest (`app:${TAG}`, `${IMAGE}`, `app${SUFFIX}`).
pub(crate) fn templated_stand_in(image: &str) -> Option<ImageRef> {
    const HOLE: char = '\u{0}';
    let mut s = String::with_capacity(image.len());
    let mut rest = image;
    loop {
        let next = [rest.find("${"), rest.find("{{")]
            .into_iter()
            .flatten()
            .min();
        let Some(at) = next else {
            s.push_str(rest);
            break;
        };
        s.push_str(&rest[..at]);
        let close = if rest[at..].starts_with("${") {
            "}"
        } else {
            "}}"
        };
        let end = rest[at + 2..].find(close)? + at + 2 + close.len();
        s.push(HOLE);
        rest = &rest[end..];
    }
    let last = s.rsplit('/').next().unwrap_or(&s);
    let (name_tag, digest) = match last.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (last, None),
    };
    if digest.is_some_and(|d| d.contains(HOLE)) {
        return None;
    }
    match name_tag.rsplit_once(':') {
        Some((_, tag)) if tag.contains(HOLE) => return None,
        None if name_tag.contains(HOLE) => return None,
        _ => {}
    }
    ImageRef::parse(&s.replace(HOLE, "0")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        let none: &[TagPattern] = &[];
        let c = |t: Option<&str>| classify(t, none);
        assert_eq!(c(None), TagClass::Latest);
        assert_eq!(c(Some("latest")), TagClass::Latest);
        for t in [
            "main",
            "Master",
            "nightly",
            "1.0-SNAPSHOT",
            "alpine-latest",
            "edge",
        ] {
            assert!(
                matches!(c(Some(t)), TagClass::ConventionallyMutable(_)),
                "{t}"
            );
        }
        for t in [
            "1.27.3",
            "v1.2.3",
            "1.27.3-alpine",
            "3f2a1bc",
            "git-3f2a1bc",
            "sha-0123456789abcdef0123456789abcdef01234567",
        ] {
            assert!(matches!(c(Some(t)), TagClass::LikelyImmutable(_)), "{t}");
        }
        for t in [
            "1.27", "java17", "20240101", "deadbeef", "01.2.3", "3f2a1b", "stable2",
        ] {
            assert_eq!(c(Some(t)), TagClass::Other, "{t}");
        }
        let team = [TagPattern::new(r"release-\d+").unwrap()];
        assert_eq!(
            classify(Some("release-42"), &team),
            TagClass::DeclaredImmutable(r"release-\d+".into())
        );
        // whole-tag match: a pattern does not match inside a longer tag
        assert_eq!(classify(Some("release-42-hotfix"), &team), TagClass::Other);
        // a team pattern never turns `latest` immutable
        let any = [TagPattern::new(".*").unwrap()];
        assert_eq!(classify(Some("latest"), &any), TagClass::Latest);
        assert!(TagPattern::new("(").is_err());
    }

    #[test]
    fn templated_images() {
        let tag =
            |s: &str| templated_stand_in(s).map(|r| (r.tag().map(str::to_string), r.is_pinned()));
        assert_eq!(
            tag("${REGISTRY}/ci/tools:java17"),
            Some((Some("java17".into()), false))
        );
        assert_eq!(tag("{{ .Values.registry }}/app"), Some((None, false)));
        assert_eq!(
            tag("registry:${PORT}/app:v1"),
            Some((Some("v1".into()), false))
        );
        assert_eq!(tag("app:${TAG}"), None);
        assert_eq!(tag("${IMAGE}"), None);
        assert_eq!(tag("app${SUFFIX}"), None);
        assert_eq!(tag("app@${DIGEST}"), None);
        assert_eq!(tag("${A}/app:v${B}"), None);
        assert_eq!(tag("${unclosed/app:v1"), None);
        let d = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        assert_eq!(tag(&format!("${{R}}/app@{d}")), Some((None, true)));
    }
}
