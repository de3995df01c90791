//! Findings as text lines, JSON, or SARIF 2.1.0 for code-scanning tools.

use super::{Finding, Rule, Severity};
use serde_json::{Value, json};

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// `file:line:col: severity rule-id: message`, one per line.
    Text,
    /// One JSON object with `findings` and `summary`.
    Json,
    /// SARIF 2.1.0.
    Sarif,
}

/// Renders findings in `format`; `files` is how many inputs were read.
pub fn render(format: Format, findings: &[Finding], files: usize) -> String {
    match format {
        Format::Text => text(findings, files),
        Format::Json => pretty(&json_report(findings, files)),
        Format::Sarif => pretty(&sarif(findings)),
    }
}

fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string());
    s.push('\n');
    s
}

fn count(findings: &[Finding], s: Severity) -> usize {
    findings.iter().filter(|f| f.severity == s).count()
}

/// One line per finding, then nothing else: the summary goes to stderr
/// in the CLI so that stdout stays greppable. A finding in Helm-rendered
/// output ends with the chart template it came from
/// (`[# Source: chart/templates/x.yaml]`), as JSON's `template`.
pub fn text(findings: &[Finding], _files: usize) -> String {
    findings
        .iter()
        .map(|f| {
            let source = f
                .template
                .as_ref()
                .map(|t| format!(" [# Source: {t}]"))
                .unwrap_or_default();
            format!(
                "{}:{}:{}: {} {}: {}{source}\n",
                f.path,
                f.pos.line,
                f.pos.col,
                f.severity,
                f.rule.id(),
                f.message
            )
        })
        .collect()
}

/// The one-line summary: `3 findings (1 error, 2 warnings, 0 info) in 4 files`.
pub fn summary(findings: &[Finding], files: usize) -> String {
    let plural = |n: usize, w: &str| {
        if n == 1 {
            format!("{n} {w}")
        } else {
            format!("{n} {w}s")
        }
    };
    format!(
        "{} ({}, {}, {} info) in {}",
        plural(findings.len(), "finding"),
        plural(count(findings, Severity::Error), "error"),
        plural(count(findings, Severity::Warning), "warning"),
        count(findings, Severity::Info),
        plural(files, "file"),
    )
}

/// `{"findings": [...], "summary": {...}}`.
pub fn json_report(findings: &[Finding], files: usize) -> Value {
    let items: Vec<Value> = findings
        .iter()
        .map(|f| {
            let mut o = json!({
                "path": f.path,
                "line": f.pos.line,
                "column": f.pos.col,
                "severity": f.severity,
                "rule": f.rule.id(),
                "message": f.message,
            });
            for (k, v) in [
                ("object", &f.object),
                ("container", &f.container),
                ("template", &f.template),
            ] {
                if let (Some(v), Some(map)) = (v, o.as_object_mut()) {
                    map.insert(k.to_string(), json!(v));
                }
            }
            o
        })
        .collect();
    json!({
        "findings": items,
        "summary": {
            "files": files,
            "error": count(findings, Severity::Error),
            "warning": count(findings, Severity::Warning),
            "info": count(findings, Severity::Info),
        }
    })
}

/// A relative or absolute path as a SARIF `artifactLocation.uri`
/// (a URI reference: forward slashes, reserved characters escaped).
fn uri(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.replace('\\', "/").bytes() {
        match b {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'.'
            | b'_'
            | b'~'
            | b'/'
            | b'+'
            | b'@'
            | b'=' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A SARIF 2.1.0 log with one run.
pub fn sarif(findings: &[Finding]) -> Value {
    let rules: Vec<Value> = Rule::ALL
        .iter()
        .map(|r| {
            json!({
                "id": r.id(),
                "name": r.id(),
                "shortDescription": { "text": r.summary() },
                "fullDescription": { "text": r.description() },
                "help": { "text": format!("{} See {}", r.description(), r.help_uri()) },
                "helpUri": r.help_uri(),
                "defaultConfiguration": { "level": r.default_severity().sarif_level() },
            })
        })
        .collect();
    let results: Vec<Value> = findings
        .iter()
        .map(|f| {
            let rule_index = Rule::ALL.iter().position(|r| *r == f.rule).unwrap_or(0);
            let mut properties = serde_json::Map::new();
            for (k, v) in [
                ("object", &f.object),
                ("container", &f.container),
                ("template", &f.template),
            ] {
                if let Some(v) = v {
                    properties.insert(k.to_string(), json!(v));
                }
            }
            json!({
                "properties": properties,
                "ruleId": f.rule.id(),
                "ruleIndex": rule_index,
                "level": f.severity.sarif_level(),
                "message": { "text": f.message },
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": { "uri": uri(&f.path) },
                        "region": { "startLine": f.pos.line, "startColumn": f.pos.col },
                    }
                }],
            })
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {
                "driver": {
                    "name": "imagedrift",
                    "version": env!("CARGO_PKG_VERSION"),
                    "rules": rules,
                }
            },
            "columnKind": "unicodeCodePoints",
            "results": results,
        }]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_escape_reserved_characters() {
        assert_eq!(uri("deploy/my app#1.yaml"), "deploy/my%20app%231.yaml");
        assert_eq!(uri("a\\b.yaml"), "a/b.yaml");
    }
}
