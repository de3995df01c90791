//! The `imagedrift lint` command: read inputs, lint, print, exit code.

use super::config::{self, LintConfig};
use super::output::{self, Format};
use super::source::{self, Exclude, Input, Unreadable, WalkOptions};
use super::yaml::Pos;
use super::{Finding, LintOptions, Rule, Severity, TagPattern, lint_text};
use std::io::{Read, Write};
use std::path::PathBuf;

/// Exit code when findings reach the `--fail-on` threshold.
pub const EXIT_FINDINGS: u8 = 1;
/// Exit code for usage and I/O errors.
pub const EXIT_ERROR: u8 = 2;

/// Arguments of `imagedrift lint`.
#[derive(clap::Args, Debug, Clone)]
#[command(
    after_help = "Exit status: 0 no finding at or above --fail-on, 1 some, 2 usage or I/O error.\n\
Silence a finding with `# imagedrift:ignore <rule-id>[,<rule-id>...]` on its line or alone on the line above\n\
(`//` works in Jenkinsfiles). Not followed: Jenkins `yamlFile` references (lint that file directly).\n\
Settings also come from .imagedrift-lint.yaml, looked up from each PATH upward (keys: exclude, disable,\n\
severities, immutableTags); flags add to it, --enable wins over disable."
)]
pub struct LintArgs {
    /// Files or directories to lint; `-` reads stdin. Directories are walked
    /// for *.yaml, *.yml, *.json, Jenkinsfile, *.jenkinsfile and *.groovy,
    /// honouring .gitignore and .imagedriftignore, skipping hidden entries,
    /// .git, node_modules, vendor and Helm chart templates/ (lint `helm
    /// template` output instead). A directory with nothing to lint is an error.
    #[arg(required_unless_present = "list_rules", value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Output format.
    #[arg(
        short = 'o',
        long,
        value_enum,
        default_value = "text",
        env = "IMAGEDRIFT_LINT_OUTPUT"
    )]
    pub output: Format,
    /// Exit 1 when a finding has this severity or a higher one.
    #[arg(long, default_value = "error", value_parser = parse_severity, env = "IMAGEDRIFT_LINT_FAIL_ON")]
    pub fail_on: Severity,
    /// Severity of mutable-tag-default-policy findings on tags that may
    /// move [default: warning]; wins over the config file's
    /// `severities.mutable-tag-default-policy`.
    #[arg(long, value_parser = parse_severity, env = "IMAGEDRIFT_LINT_MUTABLE_TAG_SEVERITY")]
    pub mutable_tag_severity: Option<Severity>,
    /// Tags the team never moves (regex, matched against the whole tag;
    /// repeatable): no mutable-tag finding for them.
    #[arg(long = "immutable-tags", value_name = "REGEX", value_parser = config::parse_tag_pattern)]
    pub immutable_tags: Vec<TagPattern>,
    /// Leave out paths matching this glob (.gitignore syntax, relative to
    /// the current directory; repeatable).
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// Apply excludes, ignore files, skipped directories and chart
    /// templates/ to files named on the command line too (for pre-commit,
    /// which names files).
    #[arg(long)]
    pub force_exclude: bool,
    /// Turn a rule off (repeatable).
    #[arg(long, value_name = "RULE", value_parser = config::parse_rule)]
    pub disable: Vec<Rule>,
    /// Turn a rule on again, whatever the config file disables (repeatable).
    #[arg(long, value_name = "RULE", value_parser = config::parse_rule)]
    pub enable: Vec<Rule>,
    /// Lint configuration file, instead of the .imagedrift-lint.yaml found
    /// upward from the paths.
    #[arg(long, value_name = "FILE", env = "IMAGEDRIFT_LINT_CONFIG")]
    pub config: Option<PathBuf>,
    /// Name standard input gets in findings (its extension also picks the format).
    #[arg(long, default_value = "<stdin>", value_name = "NAME")]
    pub stdin_filename: String,
    /// Print every rule (id, default severity, what it catches) and exit.
    #[arg(long)]
    pub list_rules: bool,
}

fn parse_severity(s: &str) -> Result<Severity, String> {
    s.parse().map_err(|e: super::SeverityError| e.to_string())
}

/// Runs `imagedrift lint` on the process's stdin/stdout/stderr; returns the exit code.
pub fn run(args: &LintArgs) -> u8 {
    run_with(
        args,
        &mut std::io::stdin().lock(),
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    )
}

/// Runs `imagedrift lint` with the given streams; returns the exit code:
/// 0 clean, 1 a finding at or above `--fail-on`, 2 an input could not be read.
pub fn run_with(
    args: &LintArgs,
    stdin: &mut dyn Read,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    if args.list_rules {
        let list: String = Rule::ALL
            .iter()
            .map(|r| {
                format!(
                    "{:<28} {:<8} {}\n",
                    r.id(),
                    r.default_severity().as_str(),
                    r.summary()
                )
            })
            .collect();
        return match out.write_all(list.as_bytes()) {
            Ok(()) => 0,
            Err(_) => EXIT_ERROR,
        };
    }
    let config = match &args.config {
        Some(path) => LintConfig::from_file(path),
        None => LintConfig::discover(&args.paths),
    };
    let config = match config {
        Ok(c) => c,
        Err(e) => {
            let _ = writeln!(err, "imagedrift lint: {e}");
            return EXIT_ERROR;
        }
    };
    let opts = options(args, &config);
    let mut excludes: Vec<Exclude> = Vec::new();
    if let Some(base) = config.base() {
        let origin = config
            .path
            .as_ref()
            .map(|p| format!(" in {}", p.display()))
            .unwrap_or_default();
        excludes.extend(config.exclude.iter().map(|g| Exclude {
            glob: g.clone(),
            base: base.to_path_buf(),
            origin: origin.clone(),
        }));
    }
    excludes.extend(args.exclude.iter().map(|g| Exclude {
        glob: g.clone(),
        base: PathBuf::from("."),
        origin: String::new(),
    }));
    let walk = WalkOptions {
        excludes,
        force_exclude: args.force_exclude,
    };
    let collected = match source::collect(&args.paths, stdin, &args.stdin_filename, &walk) {
        Ok(c) => c,
        Err(e) => {
            let _ = writeln!(err, "imagedrift lint: {e}");
            return EXIT_ERROR;
        }
    };
    let inputs = collected.inputs;
    let mut findings = lint_inputs(&inputs, &opts);
    findings.extend(unreadable_findings(&collected.unreadable, &opts));
    let rendered = output::render(args.output, &findings, inputs.len());
    if let Err(e) = out.write_all(rendered.as_bytes()).and_then(|_| out.flush()) {
        let _ = writeln!(err, "imagedrift lint: cannot write output: {e}");
        return EXIT_ERROR;
    }
    if args.output == Format::Text {
        let _ = writeln!(err, "{}", output::summary(&findings, inputs.len()));
    }
    if findings.iter().any(|f| f.severity >= args.fail_on) {
        EXIT_FINDINGS
    } else {
        0
    }
}

/// The rule options: the config file's, then the flags'.
fn options(args: &LintArgs, config: &LintConfig) -> LintOptions {
    let mut opts = LintOptions {
        immutable_tags: config.immutable_tags.clone(),
        severities: config.severities.clone(),
        ..LintOptions::default()
    };
    if let Some(s) = args.mutable_tag_severity {
        opts.mutable_tag_severity = s;
        opts.severities.remove(&Rule::MutableTagDefaultPolicy);
    }
    opts.immutable_tags
        .extend(args.immutable_tags.iter().cloned());
    opts.disabled.extend(config.disable.iter().copied());
    opts.disabled.extend(args.disable.iter().copied());
    for r in &args.enable {
        opts.disabled.remove(r);
    }
    opts
}

/// `unreadable-path` findings for what a walk could not read.
fn unreadable_findings(unreadable: &[Unreadable], opts: &LintOptions) -> Vec<Finding> {
    let mut findings: Vec<Finding> = unreadable
        .iter()
        .map(|u| Finding {
            rule: Rule::UnreadablePath,
            severity: Rule::UnreadablePath.default_severity(),
            path: u.path.clone(),
            pos: Pos { line: 1, col: 1 },
            message: format!(
                "{}, so it was not checked; fix or remove it, or exclude it",
                u.reason
            ),
            object: None,
            container: None,
            template: None,
        })
        .collect();
    opts.apply(&mut findings);
    findings
}

/// Lints already-read inputs.
pub fn lint_inputs(inputs: &[Input], opts: &LintOptions) -> Vec<Finding> {
    let mut findings = Vec::new();
    for input in inputs {
        match &input.text {
            Some(text) => findings.extend(lint_text(&input.name, text, input.kind, opts)),
            None => findings.push(Finding {
                rule: Rule::ParseError,
                severity: Rule::ParseError.default_severity(),
                path: input.name.clone(),
                pos: Pos { line: 1, col: 1 },
                message:
                    "the file is not UTF-8 text, so nothing in it was checked; save it as UTF-8"
                        .into(),
                object: None,
                container: None,
                template: None,
            }),
        }
    }
    opts.apply(&mut findings);
    findings
}
