//! The `imagedrift lint` command: read inputs, lint, print, exit code.

use super::output::{self, Format};
use super::source::{self, Input};
use super::yaml::Pos;
use super::{Finding, LintOptions, Rule, Severity, lint_text};
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
(`//` works in Jenkinsfiles). Not followed: Jenkins `yamlFile` references (lint that file directly)."
)]
pub struct LintArgs {
    /// Files or directories to lint; `-` reads stdin. Directories are walked
    /// for *.yaml, *.yml, *.json, Jenkinsfile, *.jenkinsfile and *.groovy,
    /// skipping hidden entries and Helm chart templates/ (lint `helm template`
    /// output instead).
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
    /// Severity of mutable-tag-default-policy findings.
    #[arg(long, default_value = "warning", value_parser = parse_severity, env = "IMAGEDRIFT_LINT_MUTABLE_TAG_SEVERITY")]
    pub mutable_tag_severity: Severity,
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
    let inputs = match source::collect(&args.paths, stdin, &args.stdin_filename) {
        Ok(inputs) => inputs,
        Err(e) => {
            let _ = writeln!(err, "imagedrift lint: {e}");
            return EXIT_ERROR;
        }
    };
    let opts = LintOptions {
        mutable_tag_severity: args.mutable_tag_severity,
    };
    let findings = lint_inputs(&inputs, &opts);
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
    findings
}
