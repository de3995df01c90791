//! `imagedrift resolve IMAGE`: what a tag points to today, by hand.

use super::{RegistriesConfig, Resolver};
use crate::facts::{Credential, LookupFailure, Manifest, Registry as _};
use crate::platform::{Platform, PlatformError};
use crate::reference::{ImageRef, ReferenceError};
use serde::Serialize;
use std::path::PathBuf;

/// Output format of `resolve`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Aligned text for people.
    #[default]
    Text,
    /// One JSON object.
    Json,
}

/// Arguments of `imagedrift resolve`.
#[derive(clap::Args, Debug, Clone)]
pub struct ResolveArgs {
    /// Image reference as written in a pod spec (`nginx:1.25`, `registry.example:5000/app:v1`).
    pub image: String,
    /// Also resolve the manifest and config digest for this platform (os/arch[/variant]).
    #[arg(long, env = "IMAGEDRIFT_PLATFORM")]
    pub platform: Option<String>,
    /// `--creds`, plugins and your docker config.
    #[command(flatten)]
    pub credentials: crate::credentials::CliCredentialFlags,
    /// Configuration file (YAML, as for `run`); only its `registries:`
    /// section is used (mirrors, TLS, timeouts, the credentials file).
    #[arg(long, env = "IMAGEDRIFT_CONFIG")]
    pub config: Option<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
}

/// Why `resolve` failed.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The image reference is malformed.
    #[error("invalid image reference: {0}")]
    Reference(#[from] ReferenceError),
    /// `--platform` is malformed.
    #[error("--platform: {0}")]
    Platform(#[from] PlatformError),
    /// A file named on the command line can't be read.
    #[error("{flag} {path}: {source}")]
    File {
        /// The flag.
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The registries configuration is invalid.
    #[error("--config: {0}")]
    Config(String),
    /// The reference was written as a URL.
    #[error(
        "{scheme}://{without} is a URL, not an image reference: drop the scheme and write {without}"
    )]
    Scheme {
        /// `https`, `http`, `docker`…
        scheme: String,
        /// The reference without it.
        without: String,
    },
    /// The registry lookup failed: what failed, then what to do.
    #[error("{image}: {failure}\n  hint: {}", super::hint::for_failure(failure.category, host, &failure.detail, image))]
    Lookup {
        /// The registry host.
        host: String,
        /// The normalised image.
        image: String,
        /// What failed.
        failure: LookupFailure,
    },
    /// The index has no (or no single) entry for the platform asked.
    #[error("{image}: {problem}")]
    NoPlatform {
        /// The normalised image.
        image: String,
        /// What is missing.
        problem: String,
    },
}

/// The JSON answer (shape fixed by the issue).
#[derive(Serialize, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Resolved {
    /// Normalised reference.
    pub image: String,
    /// What the tag points to.
    pub digest: String,
    /// Its media type.
    pub media_type: String,
    /// The config digest, for a single-platform image asked with `--platform`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_digest: Option<String>,
    /// The index entries (only for an index).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platforms: Option<Vec<PlatformEntry>>,
}

/// One entry of an index.
#[derive(Serialize, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PlatformEntry {
    /// Operating system.
    pub os: String,
    /// Architecture.
    pub architecture: String,
    /// Variant, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// The platform manifest's digest.
    pub digest: String,
    /// Its config digest, when asked with `--platform`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_digest: Option<String>,
}

/// Runs `resolve` and returns what to print.
pub async fn run(args: &ResolveArgs) -> Result<String, ResolveError> {
    if let Some((scheme, rest)) = args.image.split_once("://") {
        return Err(ResolveError::Scheme {
            scheme: scheme.to_string(),
            without: rest.to_string(),
        });
    }
    let image = ImageRef::parse(&args.image)?;
    let platform = args.platform.as_deref().map(Platform::parse).transpose()?;
    let mut config = match &args.config {
        None => RegistriesConfig::default(),
        Some(path) => {
            let c = crate::config::Config::from_file(path)
                .and_then(|c| c.validate().map(|()| c))
                .and_then(|c| c.check_files().map(|()| c))
                .map_err(|e| ResolveError::Config(e.to_string()))?;
            c.registries
        }
    };
    args.credentials
        .apply(&mut config)
        .map_err(|e| ResolveError::File {
            flag: "--creds",
            path: e.path,
            source: e.source,
        })?;
    let resolver = Resolver::new(config, &prometheus::Registry::new())
        .map_err(|e| ResolveError::Config(e.to_string()))?;
    let resolved = resolve(&resolver, &image, platform.as_ref(), &[]).await?;
    Ok(match args.output {
        OutputFormat::Json => serde_json::to_string_pretty(&resolved).unwrap_or_default() + "\n",
        OutputFormat::Text => text(&resolved),
    })
}

/// Resolves `image` (and, with `platform`, its config digest for it).
pub async fn resolve(
    resolver: &Resolver,
    image: &ImageRef,
    platform: Option<&Platform>,
    creds: &[Credential],
) -> Result<Resolved, ResolveError> {
    let name = image.to_string();
    let lookup = |failure| ResolveError::Lookup {
        host: image.domain().to_string(),
        image: name.clone(),
        failure,
    };
    let desc = match image.digest() {
        // `repo@sha256:…` (or `repo:tag@sha256:…`, which runtimes pull by
        // digest too): the digest is the answer; its manifest says the rest.
        Some(d) => {
            let (_, media_type) = resolver
                .manifest_with_type(image, d, creds)
                .await
                .map_err(lookup)?;
            crate::facts::Descriptor {
                digest: d.clone(),
                media_type,
            }
        }
        None => resolver.resolve_tag(image, creds).await.map_err(lookup)?,
    };
    let mut out = Resolved {
        image: name.clone(),
        digest: desc.digest.to_string(),
        media_type: desc.media_type.clone(),
        config_digest: None,
        platforms: None,
    };
    if !desc.is_index() {
        if let Some(p) = platform
            && let Manifest::Image {
                config,
                platform: own,
            } = &*resolver
                .manifest(image, &desc.digest, creds)
                .await
                .map_err(lookup)?
        {
            let own = match own {
                Some(own) => Some(own.clone()),
                None => resolver
                    .config_platform(image, config, creds)
                    .await
                    .map_err(lookup)?,
            };
            if let Some(own) = &own
                && !matches!(
                    p.select(&[(Some(own.clone()), desc.digest.clone())]),
                    crate::platform::PlatformMatch::One(_)
                )
            {
                return Err(ResolveError::NoPlatform {
                    image: name,
                    problem: format!(
                        "a single-platform image for {own}, not an index: no content for {p}"
                    ),
                });
            }
            out.config_digest = Some(config.to_string());
        }
        return Ok(out);
    }
    let index = resolver
        .manifest(image, &desc.digest, creds)
        .await
        .map_err(lookup)?;
    let Manifest::Index { entries } = &*index else {
        return Ok(out);
    };
    let chosen = match platform {
        None => None,
        Some(p) => {
            let candidates: Vec<_> = entries
                .iter()
                .map(|e| (e.platform.clone(), e.digest.clone()))
                .collect();
            match p.select(&candidates) {
                crate::platform::PlatformMatch::One(d) => Some(d),
                crate::platform::PlatformMatch::None => {
                    let there: Vec<String> = entries
                        .iter()
                        .filter_map(|e| e.platform.as_ref().map(|p| p.to_string()))
                        .collect();
                    return Err(ResolveError::NoPlatform {
                        image: name,
                        problem: format!(
                            "the index has no entry for {p}; its platforms are: {}",
                            if there.is_empty() {
                                "none named".to_string()
                            } else {
                                there.join(", ")
                            }
                        ),
                    });
                }
                crate::platform::PlatformMatch::Ambiguous => {
                    return Err(ResolveError::NoPlatform {
                        image: name,
                        problem: format!(
                            "several index entries fit {p}; name the variant (e.g. {p}/v7)"
                        ),
                    });
                }
            }
        }
    };
    let mut list = Vec::new();
    for e in entries {
        let Some(p) = &e.platform else { continue };
        let config_digest = if chosen.as_ref() == Some(&e.digest) {
            match &*resolver
                .manifest(image, &e.digest, creds)
                .await
                .map_err(lookup)?
            {
                Manifest::Image { config, .. } => Some(config.to_string()),
                Manifest::Index { .. } => None,
            }
        } else {
            None
        };
        list.push(PlatformEntry {
            os: p.os().to_string(),
            architecture: p.architecture().to_string(),
            variant: p.variant().map(str::to_string),
            digest: e.digest.to_string(),
            config_digest,
        });
    }
    out.platforms = Some(list);
    Ok(out)
}

fn text(r: &Resolved) -> String {
    let mut s = format!(
        "image      {}\ndigest     {}\nmediaType  {}\n",
        r.image, r.digest, r.media_type
    );
    if let Some(c) = &r.config_digest {
        s.push_str(&format!("config     {c}\n"));
    }
    if let Some(ps) = &r.platforms {
        s.push_str("platforms\n");
        for p in ps {
            let name = match &p.variant {
                Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
                None => format!("{}/{}", p.os, p.architecture),
            };
            s.push_str(&format!("  {name:<20} {}", p.digest));
            if let Some(c) = &p.config_digest {
                s.push_str(&format!("  config {c}"));
            }
            s.push('\n');
        }
    }
    s
}
