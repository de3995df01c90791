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

/// Inputs that cannot be collected.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// A path named on the command line (or stdin) could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path as given.
        path: String,
        /// The I/O failure.
        #[source]
        source: io::Error,
    },
    /// A directory named on the command line holds nothing to lint, which
    /// is almost always a typo in CI.
    #[error(
        "no files to lint under {path} (looked for *.yaml, *.yml, *.json, Jenkinsfile, *.jenkinsfile, *.groovy, after excludes and ignore files)"
    )]
    NoFiles {
        /// The directory as given.
        path: String,
    },
    /// An exclude glob that does not parse.
    #[error("invalid exclude glob {glob:?}{origin}: {reason}")]
    Glob {
        /// The glob as written.
        glob: String,
        /// ` in FILE` for a glob from a config file, else empty.
        origin: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl SourceError {
    /// A short fixed category for this error.
    pub fn category(&self) -> &'static str {
        match self {
            SourceError::Io { .. } => "io",
            SourceError::NoFiles { .. } | SourceError::Glob { .. } => "usage",
        }
    }
}

/// A path a walk found but could not read: reported as a finding, and
/// the walk goes on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unreadable {
    /// The path as found.
    pub path: String,
    /// Why it was not read.
    pub reason: String,
}

/// What to leave out of directory walks.
#[derive(Clone, Debug, Default)]
pub struct WalkOptions {
    /// Exclude globs (.gitignore syntax), each with the directory it is
    /// relative to and where it came from (for errors).
    pub excludes: Vec<Exclude>,
    /// Apply excludes, skipped directories and chart templates to files
    /// named on the command line too (for pre-commit, which names files).
    pub force_exclude: bool,
}

/// One exclude glob.
#[derive(Clone, Debug)]
pub struct Exclude {
    /// The glob, in .gitignore syntax.
    pub glob: String,
    /// The directory it is relative to.
    pub base: PathBuf,
    /// ` in FILE` when it came from a config file, else empty.
    pub origin: String,
}

/// Everything collected: the inputs read, and the paths that could not be.
#[derive(Clone, Debug, Default)]
pub struct Collected {
    /// Inputs, in the order found.
    pub inputs: Vec<Input>,
    /// Paths found while walking that could not be read.
    pub unreadable: Vec<Unreadable>,
}

/// Directories a walk never enters.
pub const SKIPPED_DIRS: &[&str] = &[".git", "node_modules", "vendor"];

/// The name of the ignore file read in every walked directory, beside `.gitignore`.
pub const IGNORE_FILE: &str = ".imagedriftignore";

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
/// `stdin_name`). Directories are walked in sorted order honouring
/// `.gitignore`, `.imagedriftignore` and the excludes, skipping hidden
/// entries, [`SKIPPED_DIRS`], Helm chart `templates/` directories and
/// anything that is not a regular file (FIFOs, sockets, devices are never
/// opened); a symlink to a file is read, a dangling one is [`Unreadable`].
/// Files named explicitly are read whatever their name (a FIFO too, as in
/// `lint <(helm template …)`), directory entries only when [`kind_by_name`]
/// knows them.
pub fn collect(
    paths: &[PathBuf],
    stdin: &mut dyn Read,
    stdin_name: &str,
    opts: &WalkOptions,
) -> Result<Collected, SourceError> {
    let excludes = Excludes::build(&opts.excludes)?;
    let mut out = Collected::default();
    for path in paths {
        if path.as_os_str() == "-" {
            let mut bytes = Vec::new();
            stdin
                .read_to_end(&mut bytes)
                .map_err(|source| SourceError::Io {
                    path: "<stdin>".into(),
                    source,
                })?;
            let text = decode(bytes);
            let kind = kind_by_name(Path::new(stdin_name))
                .unwrap_or_else(|| text.as_deref().map_or(InputKind::Yaml, sniff));
            out.inputs.push(Input {
                name: stdin_name.to_string(),
                kind,
                text,
            });
            continue;
        }
        let meta = std::fs::metadata(path).map_err(|source| err(path, source))?;
        if meta.is_dir() {
            let before = out.inputs.len();
            walk(path, &excludes, &mut out);
            if out.inputs.len() == before {
                return Err(SourceError::NoFiles {
                    path: path.display().to_string(),
                });
            }
        } else {
            if opts.force_exclude && excluded_file(path, &excludes) {
                continue;
            }
            let text = read(path)?;
            let kind = kind_by_name(path)
                .unwrap_or_else(|| text.as_deref().map_or(InputKind::Yaml, sniff));
            out.inputs.push(Input {
                name: path.display().to_string(),
                kind,
                text,
            });
        }
    }
    Ok(out)
}

fn err(path: &Path, source: io::Error) -> SourceError {
    SourceError::Io {
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

/// The exclude globs, one matcher per base directory.
#[derive(Clone, Debug, Default)]
struct Excludes {
    sets: Vec<(PathBuf, ignore::gitignore::Gitignore)>,
}

impl Excludes {
    fn build(excludes: &[Exclude]) -> Result<Excludes, SourceError> {
        let mut by_base: Vec<(PathBuf, ignore::gitignore::GitignoreBuilder)> = Vec::new();
        for e in excludes {
            let base = std::path::absolute(&e.base).unwrap_or_else(|_| e.base.clone());
            let i = match by_base.iter().position(|(b, _)| *b == base) {
                Some(i) => i,
                None => {
                    by_base.push((
                        base.clone(),
                        ignore::gitignore::GitignoreBuilder::new(&base),
                    ));
                    by_base.len() - 1
                }
            };
            by_base[i]
                .1
                .add_line(None, &e.glob)
                .map_err(|err| SourceError::Glob {
                    glob: e.glob.clone(),
                    origin: e.origin.clone(),
                    reason: err.to_string(),
                })?;
        }
        let sets = by_base
            .into_iter()
            .map(|(base, b)| {
                b.build().map(|g| (base, g)).map_err(|e| SourceError::Glob {
                    glob: String::new(),
                    origin: String::new(),
                    reason: e.to_string(),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Excludes { sets })
    }

    /// Whether an exclude glob matches the path or one of its parents.
    fn matches(&self, path: &Path, is_dir: bool) -> bool {
        let Ok(abs) = std::path::absolute(path) else {
            return false;
        };
        self.sets.iter().any(|(base, g)| {
            abs.starts_with(base)
                && abs != *base
                && g.matched_path_or_any_parents(&abs, is_dir).is_ignore()
        })
    }
}

/// With `--force-exclude`: whether a file named on the command line lies
/// in a skipped directory or chart templates, matches an exclude, or is
/// ignored by an ignore file.
fn excluded_file(path: &Path, excludes: &Excludes) -> bool {
    let in_skipped = path.ancestors().skip(1).any(|d| {
        d.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| SKIPPED_DIRS.contains(&n))
            || is_chart_templates(d)
    });
    in_skipped || excludes.matches(path, false) || ignored_by_files(path)
}

/// Whether an ignore file (`.imagedriftignore`, `.gitignore`) in the
/// file's directory or a parent, up to the git checkout's root, ignores the
/// file or a directory between it and the current directory: what a walk
/// from the current directory would skip. The deepest file that says
/// anything decides, as in git; in one directory `.imagedriftignore` comes
/// first, as in a walk.
fn ignored_by_files(path: &Path) -> bool {
    let (Ok(abs), Ok(cwd)) = (std::path::absolute(path), std::path::absolute(".")) else {
        return false;
    };
    let mut rules = Vec::new();
    for dir in abs.ancestors().skip(1) {
        for name in [IGNORE_FILE, ".gitignore"] {
            let file = dir.join(name);
            if file.is_file() {
                rules.push(ignore::gitignore::Gitignore::new(&file).0);
            }
        }
        if dir.join(".git").exists() {
            break;
        }
    }
    let mut visited = vec![(abs.as_path(), false)];
    visited.extend(
        abs.ancestors()
            .skip(1)
            .take_while(|d| d.starts_with(&cwd) && *d != cwd)
            .map(|d| (d, true)),
    );
    visited.iter().any(|(p, is_dir)| {
        for r in rules
            .iter()
            .filter(|r| p.starts_with(r.path()) && *p != r.path())
        {
            match r.matched(p, *is_dir) {
                ignore::Match::Ignore(_) => return true,
                ignore::Match::Whitelist(_) => return false,
                ignore::Match::None => {}
            }
        }
        false
    })
}

fn walk(root: &Path, excludes: &Excludes, out: &mut Collected) {
    let filter = excludes.clone();
    let walker = ignore::WalkBuilder::new(root)
        .standard_filters(false)
        .hidden(true)
        .parents(true)
        .git_ignore(true)
        .git_exclude(true)
        .require_git(false)
        .follow_links(false)
        .add_custom_ignore_filename(IGNORE_FILE)
        .sort_by_file_path(|a, b| a.cmp(b))
        .filter_entry(move |e| {
            if e.depth() == 0 {
                return true;
            }
            let is_dir = e.file_type().is_some_and(|t| t.is_dir());
            let skipped = is_dir
                && (e
                    .file_name()
                    .to_str()
                    .is_some_and(|n| SKIPPED_DIRS.contains(&n))
                    || is_chart_templates(e.path()));
            !skipped && !filter.matches(e.path(), is_dir)
        })
        .build();
    for entry in walker {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                out.unreadable.push(Unreadable {
                    path: error_path(&e).unwrap_or(root).display().to_string(),
                    reason: e.to_string(),
                });
                continue;
            }
        };
        let path = entry.path();
        let Some(ft) = entry.file_type() else {
            continue;
        };
        let Some(kind) = kind_by_name(path) else {
            continue;
        };
        let regular = if ft.is_symlink() {
            match std::fs::metadata(path) {
                Ok(m) => m.is_file(),
                Err(e) => {
                    let target = std::fs::read_link(path)
                        .map(|t| format!(" to {}", t.display()))
                        .unwrap_or_default();
                    let reason = if e.kind() == io::ErrorKind::NotFound {
                        format!("symbolic link{target} points to nothing")
                    } else {
                        format!("symbolic link{target} cannot be followed: {e}")
                    };
                    out.unreadable.push(Unreadable {
                        path: path.display().to_string(),
                        reason,
                    });
                    continue;
                }
            }
        } else {
            ft.is_file()
        };
        if !regular {
            continue; // a directory, FIFO, socket or device: never opened
        }
        match std::fs::read(path) {
            Ok(bytes) => out.inputs.push(Input {
                name: path.display().to_string(),
                kind,
                text: decode(bytes),
            }),
            Err(e) => out.unreadable.push(Unreadable {
                path: path.display().to_string(),
                reason: format!("cannot be read: {e}"),
            }),
        }
    }
}

/// The path an `ignore` error is about, if it names one.
fn error_path(e: &ignore::Error) -> Option<&Path> {
    match e {
        ignore::Error::WithPath { path, .. } => Some(path),
        ignore::Error::WithDepth { err, .. } | ignore::Error::WithLineNumber { err, .. } => {
            error_path(err)
        }
        _ => None,
    }
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
