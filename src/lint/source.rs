//! What to lint: files, directories (recursively) and standard input, and
//! how to read each (YAML, JSON or a Jenkins pipeline).

use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// How an input's text is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputKind {
    /// A YAML stream (possibly Helm-rendered, multi-document).
    Yaml,
    /// A JSON document.
    Json,
    /// A Jenkins pipeline (Groovy) with pod templates.
    Jenkins,
}

/// One input, read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Input {
    /// Its name in findings: the path as given, or the stdin name.
    pub name: String,
    /// How to read it.
    pub kind: InputKind,
    /// Its text, or `None` when it is not UTF-8.
    pub text: Option<String>,
}

/// A path that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {path}: {source}")]
pub struct SourceError {
    /// The path as given or found while walking a directory.
    pub path: String,
    /// The I/O failure.
    #[source]
    pub source: io::Error,
}

impl SourceError {
    /// A short fixed category for this error.
    pub fn category(&self) -> &'static str {
        "io"
    }
}

/// Whether a file name is a Jenkins pipeline by name alone.
fn is_jenkins_name(name: &str) -> bool {
    name == "Jenkinsfile"
        || name.starts_with("Jenkinsfile.")
        || name.ends_with(".jenkinsfile")
        || name.ends_with(".Jenkinsfile")
        || name.ends_with(".groovy")
}

/// The kind of a file a directory walk should lint, or `None` to skip it.
pub fn kind_by_name(path: &Path) -> Option<InputKind> {
    let name = path.file_name()?.to_str()?;
    if is_jenkins_name(name) {
        return Some(InputKind::Jenkins);
    }
    match path.extension()?.to_str()? {
        "yaml" | "yml" => Some(InputKind::Yaml),
        "json" => Some(InputKind::Json),
        _ => None,
    }
}

/// The kind of text whose name tells nothing (stdin, an explicitly named
/// file with another extension): Groovy if it has pod templates, JSON if
/// it starts like JSON, YAML otherwise.
pub fn sniff(text: &str) -> InputKind {
    let looks_groovy = [
        "podTemplate",
        "containerTemplate",
        "pipeline {",
        "node(",
        "node {",
    ]
    .iter()
    .any(|w| text.contains(w))
        || text
            .lines()
            .any(|l| l.trim_start().starts_with("kubernetes {"));
    if looks_groovy {
        InputKind::Jenkins
    } else if text.trim_start().starts_with(['{', '[']) {
        InputKind::Json
    } else {
        InputKind::Yaml
    }
}

fn decode(bytes: Vec<u8>) -> Option<String> {
    let text = String::from_utf8(bytes).ok()?;
    Some(
        text.strip_prefix('\u{feff}')
            .map(str::to_string)
            .unwrap_or(text),
    )
}

/// Reads every input named by `paths` (`-` is `stdin`, labelled
/// `stdin_name`). Directories are walked in sorted order, skipping hidden
/// entries, symlinked directories and Helm chart `templates/` directories;
/// files named explicitly are read
/// whatever their name, directory entries only when [`kind_by_name`] knows them.
pub fn collect(
    paths: &[PathBuf],
    stdin: &mut dyn Read,
    stdin_name: &str,
) -> Result<Vec<Input>, SourceError> {
    let mut inputs = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            let mut bytes = Vec::new();
            stdin
                .read_to_end(&mut bytes)
                .map_err(|source| SourceError {
                    path: "<stdin>".into(),
                    source,
                })?;
            let text = decode(bytes);
            let kind = kind_by_name(Path::new(stdin_name))
                .unwrap_or_else(|| text.as_deref().map_or(InputKind::Yaml, sniff));
            inputs.push(Input {
                name: stdin_name.to_string(),
                kind,
                text,
            });
            continue;
        }
        let meta = std::fs::metadata(path).map_err(|source| err(path, source))?;
        if meta.is_dir() {
            walk(path, &mut inputs)?;
        } else {
            let text = read(path)?;
            let kind = kind_by_name(path)
                .unwrap_or_else(|| text.as_deref().map_or(InputKind::Yaml, sniff));
            inputs.push(Input {
                name: path.display().to_string(),
                kind,
                text,
            });
        }
    }
    Ok(inputs)
}

fn err(path: &Path, source: io::Error) -> SourceError {
    SourceError {
        path: path.display().to_string(),
        source,
    }
}

fn read(path: &Path) -> Result<Option<String>, SourceError> {
    std::fs::read(path)
        .map(decode)
        .map_err(|source| err(path, source))
}

/// A Helm chart's `templates/` directory: Go templates, not YAML, so a
/// walk skips it (lint `helm template` output instead).
fn is_chart_templates(dir: &Path) -> bool {
    dir.file_name().is_some_and(|n| n == "templates")
        && dir.parent().is_some_and(|p| p.join("Chart.yaml").is_file())
}

fn walk(dir: &Path, inputs: &mut Vec<Input>) -> Result<(), SourceError> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|source| err(dir, source))?
        .map(|e| e.map(|e| e.path()).map_err(|source| err(dir, source)))
        .collect::<Result<_, _>>()?;
    entries.sort();
    for path in entries {
        if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'))
        {
            continue;
        }
        let meta = std::fs::symlink_metadata(&path).map_err(|source| err(&path, source))?;
        if meta.is_dir() {
            if is_chart_templates(&path) {
                continue;
            }
            walk(&path, inputs)?;
        } else if let Some(kind) = kind_by_name(&path) {
            let text = read(&path)?;
            inputs.push(Input {
                name: path.display().to_string(),
                kind,
                text,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        assert_eq!(
            kind_by_name(Path::new("ci/Jenkinsfile")),
            Some(InputKind::Jenkins)
        );
        assert_eq!(
            kind_by_name(Path::new("build.jenkinsfile")),
            Some(InputKind::Jenkins)
        );
        assert_eq!(
            kind_by_name(Path::new("vars/pod.groovy")),
            Some(InputKind::Jenkins)
        );
        assert_eq!(kind_by_name(Path::new("a.yml")), Some(InputKind::Yaml));
        assert_eq!(kind_by_name(Path::new("a.json")), Some(InputKind::Json));
        assert_eq!(kind_by_name(Path::new("README.md")), None);
        assert_eq!(sniff("podTemplate(yaml: '''\n'''){}"), InputKind::Jenkins);
        assert_eq!(sniff("  {\"kind\": \"Pod\"}"), InputKind::Json);
        assert_eq!(sniff("kind: Pod\n"), InputKind::Yaml);
    }
}
