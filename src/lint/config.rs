//! `.imagedrift-lint.yaml`: excludes, disabled rules, severities and
//! immutable-tag patterns for a repository, found upward from the linted
//! paths (or named with `--config`).

use super::{Rule, Severity, TagPattern};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The file name looked for in each linted path's directory and its parents.
pub const FILE_NAME: &str = ".imagedrift-lint.yaml";

/// The file as written.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
struct RawConfig {
    exclude: Vec<String>,
    disable: Vec<String>,
    severities: BTreeMap<String, String>,
    immutable_tags: Vec<String>,
}

/// A validated lint configuration file.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LintConfig {
    /// The file it was read from.
    pub path: Option<PathBuf>,
    /// Exclude globs (.gitignore syntax), relative to the file's directory.
    pub exclude: Vec<String>,
    /// Rules turned off.
    pub disable: Vec<Rule>,
    /// Severity overrides.
    pub severities: BTreeMap<Rule, Severity>,
    /// Tags the team never moves.
    pub immutable_tags: Vec<TagPattern>,
}

/// A configuration file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read lint config {path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// The I/O failure.
        reason: String,
    },
    /// The file is not valid YAML of the expected shape.
    #[error("invalid lint config {path}: {reason}")]
    Parse {
        /// The file.
        path: String,
        /// What the parser said (it names the key).
        reason: String,
    },
    /// A value is not acceptable.
    #[error("invalid lint config {path}: {key}: {problem}")]
    Invalid {
        /// The file.
        path: String,
        /// The key (`disable[1]`, `severities.foo`).
        key: String,
        /// What is wrong and how to fix it.
        problem: String,
    },
    /// The paths given lie under different configuration files.
    #[error(
        "{first} and {second} lie under different lint configs ({first_config} and {second_config}); lint them separately or pass --config"
    )]
    Conflict {
        /// A path.
        first: String,
        /// Its config.
        first_config: String,
        /// Another path.
        second: String,
        /// Its config.
        second_config: String,
    },
}

impl ConfigError {
    /// A short fixed category for this error.
    pub fn category(&self) -> &'static str {
        match self {
            ConfigError::Read { .. } => "io",
            ConfigError::Parse { .. } | ConfigError::Invalid { .. } => "config",
            ConfigError::Conflict { .. } => "usage",
        }
    }
}

/// A rule id, or a message listing the valid ones.
pub fn parse_rule(id: &str) -> Result<Rule, String> {
    Rule::from_id(id).ok_or_else(|| {
        let ids: Vec<&str> = Rule::ALL.iter().map(|r| r.id()).collect();
        format!("unknown rule {id:?}; rules are: {}", ids.join(", "))
    })
}

/// A tag pattern, or the regex compiler's message.
pub fn parse_tag_pattern(pattern: &str) -> Result<TagPattern, String> {
    TagPattern::new(pattern).map_err(|e| format!("invalid --immutable-tags regex {pattern:?}: {e}"))
}

impl LintConfig {
    /// Parses and validates a file's text; `path` names it in errors.
    pub fn from_yaml(text: &str, path: &Path) -> Result<LintConfig, ConfigError> {
        let shown = path.display().to_string();
        let raw: RawConfig = if text.trim().is_empty() {
            RawConfig::default()
        } else {
            serde_saphyr::from_str(text).map_err(|e| ConfigError::Parse {
                path: shown.clone(),
                reason: e.to_string(),
            })?
        };
        let invalid = |key: String, problem: String| ConfigError::Invalid {
            path: shown.clone(),
            key,
            problem,
        };
        let disable = raw
            .disable
            .iter()
            .enumerate()
            .map(|(i, id)| parse_rule(id).map_err(|p| invalid(format!("disable[{i}]"), p)))
            .collect::<Result<_, _>>()?;
        let mut severities = BTreeMap::new();
        for (id, sev) in &raw.severities {
            let key = format!("severities.{id}");
            let rule = parse_rule(id).map_err(|p| invalid(key.clone(), p))?;
            let s: Severity = sev
                .parse()
                .map_err(|e: super::SeverityError| invalid(key, e.to_string()))?;
            severities.insert(rule, s);
        }
        let immutable_tags = raw
            .immutable_tags
            .iter()
            .enumerate()
            .map(|(i, p)| {
                TagPattern::new(p).map_err(|e| {
                    invalid(
                        format!("immutableTags[{i}]"),
                        format!("invalid regex {p:?}: {e}"),
                    )
                })
            })
            .collect::<Result<_, _>>()?;
        for (i, g) in raw.exclude.iter().enumerate() {
            if g.trim().is_empty() {
                return Err(invalid(
                    format!("exclude[{i}]"),
                    "an empty glob excludes nothing; remove it".into(),
                ));
            }
        }
        Ok(LintConfig {
            path: Some(path.to_path_buf()),
            exclude: raw.exclude,
            disable,
            severities,
            immutable_tags,
        })
    }

    /// Reads and validates a file.
    pub fn from_file(path: &Path) -> Result<LintConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        LintConfig::from_yaml(&text, path)
    }

    /// The directory exclude globs are relative to.
    pub fn base(&self) -> Option<&Path> {
        self.path.as_deref().and_then(Path::parent)
    }

    /// The config for the paths in `paths` (`-` is the current
    /// directory): the nearest `.imagedrift-lint.yaml` upward from each.
    /// Paths under two different files are an error; paths under none
    /// share the one the others found.
    pub fn discover(paths: &[PathBuf]) -> Result<LintConfig, ConfigError> {
        let mut found: Option<(String, PathBuf)> = None;
        for p in paths {
            let start = if p.as_os_str() == "-" {
                PathBuf::from(".")
            } else {
                p.clone()
            };
            let abs = std::path::absolute(&start).unwrap_or(start);
            let dir = if abs.is_dir() {
                abs.as_path()
            } else {
                abs.parent().unwrap_or(&abs)
            };
            let Some(file) = dir
                .ancestors()
                .map(|d| d.join(FILE_NAME))
                .find(|f| f.is_file())
            else {
                continue;
            };
            match &found {
                None => found = Some((p.display().to_string(), file)),
                Some((first, f1)) if *f1 != file => {
                    return Err(ConfigError::Conflict {
                        first: first.clone(),
                        first_config: f1.display().to_string(),
                        second: p.display().to_string(),
                        second_config: file.display().to_string(),
                    });
                }
                Some(_) => {}
            }
        }
        match found {
            Some((_, f)) => LintConfig::from_file(&f),
            None => Ok(LintConfig::default()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_and_invalid_files() {
        let c = LintConfig::from_yaml(
            "exclude: [legacy/]\ndisable: [implicit-latest-policy]\nseverities:\n  mutable-tag-default-policy: error\nimmutableTags: ['release-\\d+']\n",
            Path::new("/repo/.imagedrift-lint.yaml"),
        )
        .unwrap();
        assert_eq!(c.disable, vec![Rule::ImplicitLatestPolicy]);
        assert_eq!(
            c.severities[&Rule::MutableTagDefaultPolicy],
            Severity::Error
        );
        assert!(c.immutable_tags[0].matches("release-7"));
        assert_eq!(c.base(), Some(Path::new("/repo")));
        let err = |t: &str| {
            LintConfig::from_yaml(t, Path::new("x.yaml"))
                .unwrap_err()
                .to_string()
        };
        assert!(
            err("disable: [pinned-alway]\n").contains("disable[0]: unknown rule \"pinned-alway\"")
        );
        assert!(
            err("severities: {pinned-always: fatal}\n")
                .contains("severities.pinned-always: invalid severity")
        );
        assert!(err("immutableTags: ['(']\n").contains("immutableTags[0]: invalid regex"));
        assert!(
            err("excludes: [a]\n").contains("excludes"),
            "{}",
            err("excludes: [a]\n")
        );
    }
}
