//! Manifest bodies, checked and parsed: the digest a body must hash to, and
//! the index entries or config digest it holds.

use crate::facts::{
    DOCKER_MANIFEST_LIST, DOCKER_MANIFEST_V2, FailureCategory, IndexEntry, LookupFailure, Manifest,
    OCI_INDEX, OCI_MANIFEST,
};
use crate::platform::Platform;
use crate::reference::Digest;
use serde::Deserialize;

/// Largest manifest body accepted (distribution's own limit).
pub(crate) const MAX_MANIFEST_BYTES: usize = 4 << 20;

fn invalid(detail: impl Into<String>) -> LookupFailure {
    LookupFailure::new(FailureCategory::InvalidResponse, detail)
}

/// The digest of `body` computed with `like`'s algorithm.
pub(crate) fn digest_like(like: &Digest, body: &[u8]) -> Result<Digest, LookupFailure> {
    use sha2::Digest as _;
    let hex = match like.algorithm() {
        "sha256" => return Ok(Digest::sha256_of(body)),
        "sha384" => hex::encode(sha2::Sha384::digest(body)),
        "sha512" => hex::encode(sha2::Sha512::digest(body)),
        other => return Err(invalid(format!("unsupported digest algorithm {other:?}"))),
    };
    Digest::parse(&format!("{}:{hex}", like.algorithm()))
        .map_err(|e| invalid(format!("cannot form digest: {e}")))
}

/// Checks that `body` hashes to `expected`.
pub(crate) fn verify(expected: &Digest, body: &[u8]) -> Result<(), LookupFailure> {
    let got = digest_like(expected, body)?;
    if &got == expected {
        Ok(())
    } else {
        Err(invalid(format!(
            "manifest body hashes to {got}, not the expected {expected}; rejected"
        )))
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    schema_version: Option<u32>,
    media_type: Option<String>,
    manifests: Option<Vec<RawDescriptor>>,
    config: Option<RawDescriptor>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDescriptor {
    media_type: Option<String>,
    digest: String,
    platform: Option<RawPlatform>,
}

#[derive(Deserialize)]
struct RawPlatform {
    os: String,
    architecture: String,
    variant: Option<String>,
}

/// The four known types, by their canonical name.
pub(crate) fn known_media_type(mt: &str) -> Option<&'static str> {
    [
        OCI_INDEX,
        DOCKER_MANIFEST_LIST,
        OCI_MANIFEST,
        DOCKER_MANIFEST_V2,
    ]
    .into_iter()
    .find(|k| *k == mt)
}

/// The media type from a `Content-Type` header, without parameters.
pub(crate) fn content_type(header: Option<&str>) -> Option<&str> {
    header
        .map(|h| h.split(';').next().unwrap_or("").trim())
        .filter(|s| !s.is_empty())
}

/// Parses a manifest body. `header_type` is the `Content-Type` the registry
/// sent; the body's own `mediaType` or its shape decides when the header is
/// missing or generic. Returns the media type and the manifest.
pub(crate) fn parse(
    header_type: Option<&str>,
    body: &[u8],
) -> Result<(String, Manifest), LookupFailure> {
    let raw: RawManifest = serde_json::from_slice(body)
        .map_err(|e| invalid(format!("manifest is not valid JSON: {e}")))?;
    if raw.schema_version == Some(1) {
        return Err(invalid("schema 1 manifest (deprecated, unsupported)"));
    }
    let media_type = header_type
        .and_then(known_media_type)
        .or_else(|| raw.media_type.as_deref().and_then(known_media_type))
        .or(if raw.manifests.is_some() {
            Some(OCI_INDEX)
        } else if raw.config.is_some() {
            Some(OCI_MANIFEST)
        } else {
            None
        })
        .ok_or_else(|| {
            invalid(format!(
                "unknown manifest type (Content-Type {:?}, mediaType {:?})",
                header_type.unwrap_or(""),
                raw.media_type.as_deref().unwrap_or("")
            ))
        })?;
    let parse_digest = |s: &str| {
        Digest::parse(s).map_err(|e| invalid(format!("manifest names a bad digest: {e}")))
    };
    let manifest = if crate::facts::is_index_media_type(media_type) {
        let entries = raw
            .manifests
            .ok_or_else(|| invalid("index without a manifests list"))?
            .into_iter()
            .map(|d| {
                Ok(IndexEntry {
                    digest: parse_digest(&d.digest)?,
                    media_type: d.media_type.unwrap_or_default(),
                    platform: d
                        .platform
                        .map(|p| Platform::new(&p.os, &p.architecture, p.variant.as_deref())),
                })
            })
            .collect::<Result<Vec<_>, LookupFailure>>()?;
        Manifest::Index { entries }
    } else {
        let config = raw
            .config
            .ok_or_else(|| invalid("image manifest without a config"))?;
        Manifest::Image {
            config: parse_digest(&config.digest)?,
            platform: None,
        }
    };
    Ok((media_type.to_string(), manifest))
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn media_type_from_header_body_or_shape() {
        let image = format!(r#"{{"schemaVersion":2,"config":{{"digest":"{D}"}},"layers":[]}}"#);
        let index = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"digest":"{D}","platform":{{"os":"linux","architecture":"aarch64"}}}}]}}"#
        );
        let docker = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST_V2}","config":{{"digest":"{D}"}}}}"#
        );
        assert_eq!(
            parse(Some(OCI_MANIFEST), image.as_bytes()).unwrap().0,
            OCI_MANIFEST
        );
        assert_eq!(
            parse(Some("application/json"), image.as_bytes()).unwrap().0,
            OCI_MANIFEST
        );
        assert_eq!(
            parse(None, docker.as_bytes()).unwrap().0,
            DOCKER_MANIFEST_V2
        );
        let (mt, m) = parse(None, index.as_bytes()).unwrap();
        assert_eq!(mt, OCI_INDEX);
        let Manifest::Index { entries } = m else {
            panic!("index")
        };
        assert_eq!(
            entries[0].platform,
            Some(Platform::new("linux", "arm64", Some("v8")))
        );
    }

    #[test]
    fn bad_bodies_are_invalid_responses() {
        let bad_digest = r#"{"schemaVersion":2,"config":{"digest":"sha256:xyz"}}"#;
        let cases: [(&str, &str); 5] = [
            ("not json", "not valid JSON"),
            (r#"{"schemaVersion":1,"fsLayers":[]}"#, "schema 1"),
            (r#"{"schemaVersion":2}"#, "unknown manifest type"),
            (bad_digest, "bad digest"),
            (
                r#"{"mediaType":"application/vnd.oci.image.index.v1+json"}"#,
                "without a manifests list",
            ),
        ];
        for (body, want) in cases {
            let e = parse(None, body.as_bytes()).unwrap_err();
            assert_eq!(e.category, crate::facts::FailureCategory::InvalidResponse);
            assert!(e.detail.contains(want), "{body}: {e}");
        }
    }

    #[test]
    fn verify_checks_the_algorithm_asked() {
        let body = b"{}";
        verify(&Digest::sha256_of(body), body).unwrap();
        assert!(verify(&Digest::sha256_of(b"other"), body).is_err());
        use sha2::Digest as _;
        let d512 = Digest::parse(&format!(
            "sha512:{}",
            hex::encode(sha2::Sha512::digest(body))
        ))
        .unwrap();
        verify(&d512, body).unwrap();
    }

    #[test]
    fn content_type_drops_parameters() {
        assert_eq!(
            content_type(Some("application/json; charset=utf-8")),
            Some("application/json")
        );
        assert_eq!(content_type(Some("")), None);
        assert_eq!(content_type(None), None);
    }
}
