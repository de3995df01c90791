//! Node and image platforms (os/architecture/variant) and how a runtime
//! picks an index entry for a node (containerd's `platforms` matcher rules).

use std::fmt;

/// An OS/architecture/variant triple, normalised the way containerd does
/// (`aarch64` → `arm64`, `x86_64` → `amd64`, `arm64` without variant → `v8`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Platform {
    os: String,
    architecture: String,
    variant: Option<String>,
}

/// Why a platform string could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid platform {input:?}: {why} (expected os/arch[/variant], e.g. linux/arm64/v8)")]
pub struct PlatformError {
    input: String,
    why: &'static str,
}

/// The outcome of choosing an index entry for a node's platform.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlatformMatch<T> {
    /// Exactly one entry fits.
    One(T),
    /// No entry fits this platform.
    None,
    /// Several entries fit and the node's variant does not tell them apart.
    Ambiguous,
}

fn norm_arch(arch: &str) -> &str {
    match arch {
        "x86_64" | "x86-64" => "amd64",
        "aarch64" => "arm64",
        "i386" | "i686" => "386",
        "armhf" | "armel" => "arm",
        other => other,
    }
}

impl Platform {
    /// Builds a normalised platform; empty strings count as absent.
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Platform {
        let os = os.trim().to_ascii_lowercase();
        let raw_arch = architecture.trim().to_ascii_lowercase();
        let architecture = norm_arch(&raw_arch).to_string();
        let mut variant = variant
            .map(|v| v.trim().to_ascii_lowercase())
            .filter(|v| !v.is_empty());
        // aarch64 is always v8 in the OCI platform vocabulary; containerd
        // normalises an empty arm64 variant to v8 as well.
        if architecture == "arm64" && variant.as_deref().is_none_or(|v| v == "8") {
            variant = Some("v8".into());
        }
        if architecture == "arm" {
            if let Some(v) = variant.as_deref() {
                if !v.starts_with('v') {
                    variant = Some(format!("v{v}"));
                }
            } else if raw_arch == "armhf" {
                variant = Some("v7".into());
            } else if raw_arch == "armel" {
                variant = Some("v6".into());
            }
        }
        Platform {
            os,
            architecture,
            variant,
        }
    }

    /// Parses `os/arch[/variant]`.
    pub fn parse(s: &str) -> Result<Platform, PlatformError> {
        let err = |why| PlatformError {
            input: s.to_string(),
            why,
        };
        let parts: Vec<&str> = s.split('/').collect();
        if parts.len() < 2 || parts.len() > 3 {
            return Err(err("wrong number of parts"));
        }
        if parts.iter().any(|p| p.is_empty()) {
            return Err(err("empty part"));
        }
        let ok = |p: &str| {
            p.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        };
        if !parts.iter().all(|p| ok(p)) {
            return Err(err("unexpected character"));
        }
        Ok(Platform::new(parts[0], parts[1], parts.get(2).copied()))
    }

    /// Operating system (`linux`, `windows`).
    pub fn os(&self) -> &str {
        &self.os
    }
    /// Architecture in OCI vocabulary (`amd64`, `arm64`, `arm`).
    pub fn architecture(&self) -> &str {
        &self.architecture
    }
    /// Variant (`v8`, `v7`), if known.
    pub fn variant(&self) -> Option<&str> {
        self.variant.as_deref()
    }

    /// Whether an image built for `image` runs on a node of this platform
    /// as an exact choice: same os and architecture, and the same variant
    /// where both name one.
    pub fn fits(&self, image: &Platform) -> bool {
        if self.os != image.os || self.architecture != image.architecture {
            return false;
        }
        match (&self.variant, &image.variant) {
            (Some(a), Some(b)) => a == b,
            // amd64 images rarely carry a variant; a node never reports one.
            _ => true,
        }
    }

    /// Picks the entry a runtime on this node pulls from an index.
    ///
    /// Entries whose platform is missing or `unknown/unknown` (BuildKit
    /// attestation manifests) are never chosen. When the node names no
    /// variant and several entries of its architecture remain (e.g. arm
    /// v6 and v7), the choice is ambiguous; when it names one, an entry with
    /// that exact variant wins over variant-less entries.
    pub fn select<T: Clone>(&self, entries: &[(Option<Platform>, T)]) -> PlatformMatch<T> {
        let fitting: Vec<&(Option<Platform>, T)> = entries
            .iter()
            .filter(|(p, _)| {
                p.as_ref()
                    .is_some_and(|p| p.os != "unknown" && self.fits(p))
            })
            .collect();
        match fitting.len() {
            0 => PlatformMatch::None,
            1 => PlatformMatch::One(fitting[0].1.clone()),
            _ => {
                if let Some(v) = &self.variant {
                    let exact: Vec<_> = fitting
                        .iter()
                        .filter(|(p, _)| p.as_ref().and_then(|p| p.variant.as_ref()) == Some(v))
                        .collect();
                    if exact.len() == 1 {
                        return PlatformMatch::One(exact[0].1.clone());
                    }
                }
                PlatformMatch::Ambiguous
            }
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        Platform::parse(s).unwrap()
    }

    #[test]
    fn normalises_like_containerd() {
        assert_eq!(Platform::new("linux", "aarch64", None), p("linux/arm64/v8"));
        assert_eq!(
            Platform::new("linux", "arm64", Some("8")),
            p("linux/arm64/v8")
        );
        assert_eq!(Platform::new("Linux", "x86_64", None), p("linux/amd64"));
        assert_eq!(Platform::new("linux", "arm", Some("7")), p("linux/arm/v7"));
        assert_eq!(Platform::new("linux", "amd64", Some("")).variant(), None);
        assert_eq!(p("linux/arm64").to_string(), "linux/arm64/v8");
    }

    #[test]
    fn parse_errors_name_the_problem() {
        for bad in ["linux", "linux//v7", "a/b/c/d", "linux/am d64", ""] {
            let e = Platform::parse(bad).unwrap_err().to_string();
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
    }

    #[test]
    fn select_skips_attestations_and_reports_ambiguity() {
        let entries = vec![
            (Some(p("linux/amd64")), 1),
            (Some(p("linux/arm/v6")), 2),
            (Some(p("linux/arm/v7")), 3),
            (Some(p("unknown/unknown")), 4),
            (None, 5),
            (Some(p("linux/arm64/v8")), 6),
        ];
        assert_eq!(p("linux/amd64").select(&entries), PlatformMatch::One(1));
        assert_eq!(p("linux/arm64").select(&entries), PlatformMatch::One(6));
        assert_eq!(p("linux/arm/v7").select(&entries), PlatformMatch::One(3));
        assert_eq!(
            Platform::new("linux", "arm", None).select(&entries),
            PlatformMatch::Ambiguous
        );
        assert_eq!(p("windows/amd64").select(&entries), PlatformMatch::None);
        assert_eq!(p("linux/s390x").select(&entries), PlatformMatch::None);
    }
}
