//! Each source's payload, from bytes to the tags it says were pushed. Pure
//! functions: no clock, no I/O. Events that are not a tag push (pulls,
//! deletes, blob uploads, pushes by digest only, pings) yield nothing; a
//! body that is not the source's shape is an error naming what is missing.

use super::{Push, Source};
use crate::reference::ImageRef;
use serde::Deserialize;

/// Why a payload was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not JSON, or JSON of another shape.
    #[error("{from} payload is not valid: {reason}")]
    Invalid {
        /// Which source's format was expected.
        from: Source,
        /// What is wrong (the JSON parser's message or the missing field).
        reason: String,
    },
}

impl ParseError {
    /// Fixed category for logs and metric labels.
    pub fn category(&self) -> &'static str {
        "malformed"
    }
}

fn invalid(source: Source, reason: impl Into<String>) -> ParseError {
    ParseError::Invalid {
        from: source,
        reason: reason.into(),
    }
}

fn json<'a, T: Deserialize<'a>>(source: Source, body: &'a [u8]) -> Result<T, ParseError> {
    serde_json::from_slice(body).map_err(|e| invalid(source, e.to_string()))
}

/// The pushes in `body`, sent by `source`. `event` is the event-type header
/// where the source has one (GitHub's `X-GitHub-Event`).
pub fn parse(source: Source, event: Option<&str>, body: &[u8]) -> Result<Vec<Push>, ParseError> {
    let mut pushes = match source {
        Source::Distribution | Source::Gitlab => distribution(source, body)?,
        Source::Harbor => harbor(body)?,
        Source::Dockerhub => dockerhub(body)?,
        Source::Github => github(event, body)?,
        Source::Quay => quay(body)?,
        Source::Acr => acr(body)?,
        Source::Generic => generic(body)?,
    };
    pushes.sort();
    pushes.dedup();
    Ok(pushes)
}

// ------------------------------------------------------------ distribution

#[derive(Deserialize)]
struct Envelope {
    events: Vec<DistEvent>,
}

#[derive(Deserialize)]
struct DistEvent {
    #[serde(default)]
    action: String,
    #[serde(default)]
    target: DistTarget,
    #[serde(default)]
    request: DistRequest,
}

#[derive(Deserialize, Default)]
struct DistTarget {
    #[serde(default)]
    repository: String,
    #[serde(default)]
    tag: String,
    #[serde(default)]
    url: String,
}

#[derive(Deserialize, Default)]
struct DistRequest {
    #[serde(default)]
    host: String,
}

/// The authority of an `http(s)://host[:port]/...` URL.
fn url_host(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let host = rest.split(['/', '?', '#']).next()?;
    (!host.is_empty()).then_some(host)
}

/// One distribution-style event (also ACR's single event): a push of a
/// manifest by tag. Blob pushes, pushes by digest and other actions are
/// not tag moves.
fn dist_event(source: Source, e: DistEvent) -> Result<Option<Push>, ParseError> {
    if e.action != "push" || e.target.tag.is_empty() {
        return Ok(None);
    }
    if e.target.repository.is_empty() {
        return Err(invalid(source, "a push event has no target.repository"));
    }
    // The URL is built from the Host the pusher used; request.host is the same.
    let host = url_host(&e.target.url)
        .map(str::to_string)
        .unwrap_or(e.request.host);
    if host.is_empty() {
        return Err(invalid(
            source,
            "a push event has neither target.url nor request.host",
        ));
    }
    Ok(Some(Push {
        host,
        repository: e.target.repository,
        tag: e.target.tag,
    }))
}

fn distribution(source: Source, body: &[u8]) -> Result<Vec<Push>, ParseError> {
    let env: Envelope = json(source, body)?;
    let mut out = Vec::new();
    for e in env.events {
        out.extend(dist_event(source, e)?);
    }
    Ok(out)
}

fn acr(body: &[u8]) -> Result<Vec<Push>, ParseError> {
    let e: DistEvent = json(Source::Acr, body)?;
    Ok(dist_event(Source::Acr, e)?.into_iter().collect())
}

// ------------------------------------------------------------------ harbor

#[derive(Deserialize)]
struct HarborEvent {
    #[serde(rename = "type")]
    type_: String,
    event_data: Option<HarborData>,
}

#[derive(Deserialize)]
struct HarborData {
    #[serde(default)]
    resources: Vec<HarborResource>,
    repository: Option<HarborRepository>,
}

#[derive(Deserialize)]
struct HarborResource {
    #[serde(default)]
    tag: String,
    #[serde(default)]
    resource_url: String,
}

#[derive(Deserialize)]
struct HarborRepository {
    #[serde(default)]
    repo_full_name: String,
}

fn harbor(body: &[u8]) -> Result<Vec<Push>, ParseError> {
    let s = Source::Harbor;
    let e: HarborEvent = json(s, body)?;
    if e.type_ != "PUSH_ARTIFACT" {
        return Ok(Vec::new());
    }
    let data = e
        .event_data
        .ok_or_else(|| invalid(s, "PUSH_ARTIFACT without event_data"))?;
    let repo = data
        .repository
        .map(|r| r.repo_full_name)
        .filter(|r| !r.is_empty())
        .ok_or_else(|| {
            invalid(
                s,
                "PUSH_ARTIFACT without event_data.repository.repo_full_name",
            )
        })?;
    let mut out = Vec::new();
    for r in data.resources {
        if r.tag.is_empty() {
            continue;
        }
        // resource_url is `harbor.example.com/library/nginx:latest`.
        let host = r.resource_url.split('/').next().unwrap_or("");
        if host.is_empty() || !r.resource_url.contains('/') {
            return Err(invalid(
                s,
                format!("resource_url {:?} names no registry host", r.resource_url),
            ));
        }
        out.push(Push {
            host: host.to_string(),
            repository: repo.clone(),
            tag: r.tag,
        });
    }
    Ok(out)
}

// --------------------------------------------------------------- dockerhub

#[derive(Deserialize)]
struct HubEvent {
    push_data: HubPush,
    repository: HubRepository,
}

#[derive(Deserialize)]
struct HubPush {
    #[serde(default)]
    tag: String,
}

#[derive(Deserialize)]
struct HubRepository {
    repo_name: String,
}

fn dockerhub(body: &[u8]) -> Result<Vec<Push>, ParseError> {
    let e: HubEvent = json(Source::Dockerhub, body)?;
    if e.push_data.tag.is_empty() {
        return Ok(Vec::new());
    }
    Ok(vec![Push {
        host: crate::reference::DOCKER_HUB.to_string(),
        repository: e.repository.repo_name,
        tag: e.push_data.tag,
    }])
}

// ------------------------------------------------------------------ github

#[derive(Deserialize)]
struct GithubEvent {
    #[serde(default)]
    action: String,
    package: Option<GithubPackage>,
    registry_package: Option<GithubPackage>,
}

#[derive(Deserialize)]
struct GithubPackage {
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    package_type: String,
    owner: Option<GithubOwner>,
    package_version: Option<GithubVersion>,
    registry: Option<GithubRegistry>,
}

#[derive(Deserialize)]
struct GithubOwner {
    #[serde(default)]
    login: String,
}

#[derive(Deserialize)]
struct GithubVersion {
    container_metadata: Option<GithubContainer>,
}

#[derive(Deserialize)]
struct GithubContainer {
    tag: Option<GithubTag>,
}

#[derive(Deserialize)]
struct GithubTag {
    #[serde(default)]
    name: String,
}

#[derive(Deserialize)]
struct GithubRegistry {
    #[serde(default)]
    url: String,
}

fn github(event: Option<&str>, body: &[u8]) -> Result<Vec<Push>, ParseError> {
    let s = Source::Github;
    if let Some(ev) = event
        && ev != "package"
        && ev != "registry_package"
    {
        // `ping` and every other event a repository or organisation hook sends.
        return Ok(Vec::new());
    }
    let e: GithubEvent = json(s, body)?;
    if e.action != "published" && e.action != "updated" {
        return Ok(Vec::new());
    }
    let Some(p) = e.package.or(e.registry_package) else {
        return Err(invalid(s, "neither package nor registry_package"));
    };
    if !p.package_type.eq_ignore_ascii_case("container") {
        return Ok(Vec::new());
    }
    let Some(tag) = p
        .package_version
        .and_then(|v| v.container_metadata)
        .and_then(|c| c.tag)
        .map(|t| t.name)
        .filter(|t| !t.is_empty())
    else {
        // An untagged version (a platform child of a multi-arch push).
        return Ok(Vec::new());
    };
    let owner = match p.owner.map(|o| o.login).filter(|o| !o.is_empty()) {
        Some(o) => o,
        None => p.namespace,
    };
    if owner.is_empty() || p.name.is_empty() {
        return Err(invalid(s, "package without name or owner"));
    }
    let host = p
        .registry
        .as_ref()
        .and_then(|r| url_host(&r.url))
        .unwrap_or("ghcr.io")
        .to_string();
    // GHCR repository names are lowercase; GitHub logins are not.
    Ok(vec![Push {
        host,
        repository: format!("{owner}/{}", p.name).to_ascii_lowercase(),
        tag,
    }])
}

// -------------------------------------------------------------------- quay

#[derive(Deserialize)]
struct QuayEvent {
    docker_url: String,
    #[serde(default)]
    updated_tags: Vec<String>,
}

fn quay(body: &[u8]) -> Result<Vec<Push>, ParseError> {
    let s = Source::Quay;
    let e: QuayEvent = json(s, body)?;
    let Some((host, repo)) = e.docker_url.split_once('/') else {
        return Err(invalid(
            s,
            format!("docker_url {:?} is not host/repository", e.docker_url),
        ));
    };
    Ok(e.updated_tags
        .into_iter()
        .filter(|t| !t.is_empty())
        .map(|tag| Push {
            host: host.to_string(),
            repository: repo.to_string(),
            tag,
        })
        .collect())
}

// ----------------------------------------------------------------- generic

#[derive(Deserialize)]
#[serde(untagged)]
enum GenericBody {
    One { image: String },
    Many { images: Vec<String> },
    List(Vec<GenericItem>),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum GenericItem {
    Text(String),
    Object { image: String },
}

fn generic(body: &[u8]) -> Result<Vec<Push>, ParseError> {
    let s = Source::Generic;
    let images = match json::<GenericBody>(s, body).map_err(|_| {
        invalid(
            s,
            r#"expected {"image": "host/repo:tag"}, {"images": [...]} or a list of them"#,
        )
    })? {
        GenericBody::One { image } => vec![image],
        GenericBody::Many { images } => images,
        GenericBody::List(items) => items
            .into_iter()
            .map(|i| match i {
                GenericItem::Text(t) | GenericItem::Object { image: t } => t,
            })
            .collect(),
    };
    let mut out = Vec::with_capacity(images.len());
    for image in images {
        let r = ImageRef::parse(&image).map_err(|e| invalid(s, e.to_string()))?;
        // A reference by digest names no tag that could have moved.
        if r.digest().is_some() && r.tag().is_none() {
            continue;
        }
        let Some(tag) = r.effective_tag() else {
            continue;
        };
        out.push(Push {
            host: r.domain().to_string(),
            repository: r.path().to_string(),
            tag: tag.to_string(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/webhooks")
            .join(format!("{name}.json"));
        std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    fn push(host: &str, repository: &str, tag: &str) -> Push {
        Push {
            host: host.into(),
            repository: repository.into(),
            tag: tag.into(),
        }
    }

    /// One row per source: a payload of the shape each registry documents,
    /// and the tags it announces (blob pushes, pulls, digests: none).
    #[test]
    fn captured_payloads_map_to_their_tags() {
        let rows: [(Source, Option<&str>, &str, Vec<Push>); 8] = [
            (
                Source::Distribution,
                None,
                "distribution",
                vec![push("registry.example:5000", "team/app", "v1")],
            ),
            (
                Source::Harbor,
                None,
                "harbor",
                vec![push("harbor.example.com", "library/nginx", "1.27")],
            ),
            (
                Source::Dockerhub,
                None,
                "dockerhub",
                vec![push("docker.io", "svendowideit/testhook", "latest")],
            ),
            (
                Source::Github,
                Some("package"),
                "github",
                vec![push("ghcr.io", "octo-org/app", "v2.1")],
            ),
            (
                Source::Quay,
                None,
                "quay",
                vec![
                    push("quay.io", "mynamespace/repository", "latest"),
                    push("quay.io", "mynamespace/repository", "v1.2"),
                ],
            ),
            (
                Source::Acr,
                None,
                "acr",
                vec![push("myregistry.azurecr.io", "hello-world", "v1")],
            ),
            (
                Source::Gitlab,
                None,
                "gitlab",
                vec![push(
                    "registry.gitlab.example.com",
                    "group/project/api",
                    "main",
                )],
            ),
            (
                Source::Generic,
                None,
                "generic",
                vec![
                    push("docker.io", "library/nginx", "1.27"),
                    push("registry.example", "team/app", "v1"),
                ],
            ),
        ];
        for (source, event, file, want) in rows {
            let got =
                parse(source, event, &fixture(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_eq!(got, want, "{file}");
        }
    }

    #[test]
    fn events_that_move_no_tag_yield_nothing() {
        let gh = fixture("github");
        assert_eq!(parse(Source::Github, Some("ping"), &gh), Ok(vec![]));
        assert_eq!(
            parse(
                Source::Github,
                Some("package"),
                br#"{"zen": "hi", "hook_id": 1}"#
            ),
            Ok(vec![])
        );
        let untagged = String::from_utf8(gh)
            .unwrap()
            .replace(r#""name": "v2.1""#, r#""name": """#);
        assert_eq!(
            parse(
                Source::Github,
                Some("registry_package"),
                untagged.as_bytes()
            ),
            Ok(vec![])
        );
        let npm = String::from_utf8(fixture("github"))
            .unwrap()
            .replace(r#""package_type": "CONTAINER""#, r#""package_type": "npm""#);
        assert_eq!(
            parse(Source::Github, Some("package"), npm.as_bytes()),
            Ok(vec![])
        );
        let pull = String::from_utf8(fixture("harbor"))
            .unwrap()
            .replace("PUSH_ARTIFACT", "PULL_ARTIFACT");
        assert_eq!(parse(Source::Harbor, None, pull.as_bytes()), Ok(vec![]));
        let delete = String::from_utf8(fixture("acr"))
            .unwrap()
            .replace(r#""action": "push""#, r#""action": "delete""#);
        assert_eq!(parse(Source::Acr, None, delete.as_bytes()), Ok(vec![]));
        assert_eq!(
            parse(Source::Distribution, None, br#"{"events": []}"#),
            Ok(vec![])
        );
        assert_eq!(
            parse(Source::Generic, None, br#"["busybox@sha256:2c4cd8d4a1ec4a0f9c8a6df4b2c6b1d0a3b9a7e6f5d4c3b2a1908f7e6d5c4b3a"]"#),
            Ok(vec![])
        );
    }

    #[test]
    fn generic_accepts_one_many_and_lists() {
        let want = vec![push("registry.example", "team/app", "v1")];
        for body in [
            r#"{"image": "registry.example/team/app:v1"}"#,
            r#"{"images": ["registry.example/team/app:v1"]}"#,
            r#"["registry.example/team/app:v1", {"image": "registry.example/team/app:v1"}]"#,
        ] {
            assert_eq!(
                parse(Source::Generic, None, body.as_bytes()),
                Ok(want.clone()),
                "{body}"
            );
        }
    }

    #[test]
    fn malformed_bodies_name_the_source_and_the_problem() {
        for source in Source::ALL {
            let e = parse(source, Some("package"), b"{not json").unwrap_err();
            assert_eq!(e.category(), "malformed");
            assert!(e.to_string().starts_with(source.as_str()), "{e}");
        }
        let e = parse(Source::Generic, None, br#"{"image": "Not A Reference"}"#).unwrap_err();
        assert!(e.to_string().contains("Not A Reference"), "{e}");
        let e = parse(
            Source::Quay,
            None,
            br#"{"docker_url": "quay.io", "updated_tags": ["x"]}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("docker_url"), "{e}");
        let e = parse(
            Source::Distribution,
            None,
            br#"{"events": [{"action": "push", "target": {"repository": "a/b", "tag": "v1"}}]}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("request.host"), "{e}");
        let e = parse(Source::Harbor, None, br#"{"type": "PUSH_ARTIFACT", "event_data": {"resources": [{"tag": "v1", "resource_url": "nohost"}], "repository": {"repo_full_name": "a/b"}}}"#).unwrap_err();
        assert!(e.to_string().contains("resource_url"), "{e}");
        assert!(parse(Source::Dockerhub, None, br#"{"push_data": {}}"#).is_err());
    }
}
