//! `imagedrift lint`: one fixture per rule with the exact findings and
//! positions expected, driven through the library and through the binary.
//! One test binary, split by subject: `rules` (fixtures through the
//! library), `binary` (the command: formats, exit codes), `scoping`
//! (walks, excludes, config files, on temp trees), `integrations`
//! (SARIF metadata, pre-commit hook, GitHub Action).

mod binary;
mod integrations;
mod rules;
mod scoping;

use imagedrift::lint::{InputKind, LintOptions, Rule, Severity, TagPattern, lint_text, source};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lint")
}

fn read(name: &str) -> String {
    std::fs::read_to_string(fixtures().join(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

fn kind(name: &str) -> InputKind {
    source::kind_by_name(Path::new(name)).unwrap_or(InputKind::Yaml)
}

/// (line, column, severity, rule id) of each finding in a fixture.
fn findings_with(
    name: &str,
    opts: &LintOptions,
) -> Vec<(usize, usize, &'static str, &'static str)> {
    lint_text(name, &read(name), kind(name), opts)
        .into_iter()
        .map(|f| (f.pos.line, f.pos.col, f.severity.as_str(), f.rule.id()))
        .collect()
}

fn findings(name: &str) -> Vec<(usize, usize, &'static str, &'static str)> {
    findings_with(name, &LintOptions::default())
}

fn messages(name: &str) -> Vec<String> {
    lint_text(name, &read(name), kind(name), &LintOptions::default())
        .into_iter()
        .map(|f| f.message)
        .collect()
}

fn imagedrift(args: &[&str], stdin: Option<&str>) -> Output {
    imagedrift_in(&fixtures(), args, stdin)
}

/// Runs `imagedrift lint ARGS` in `dir`; fails the test (instead of hanging)
/// when it does not finish within a minute.
fn imagedrift_in(dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_imagedrift"))
        .arg("lint")
        .args(args)
        .current_dir(dir)
        .env_remove("IMAGEDRIFT_LINT_OUTPUT")
        .env_remove("IMAGEDRIFT_LINT_FAIL_ON")
        .env_remove("IMAGEDRIFT_LINT_MUTABLE_TAG_SEVERITY")
        .env_remove("IMAGEDRIFT_LINT_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run imagedrift");
    let mut input = child.stdin.take().expect("stdin");
    input
        .write_all(stdin.unwrap_or("").as_bytes())
        .expect("write stdin");
    drop(input);
    let (tx, rx) = std::sync::mpsc::channel();
    let id = child.id();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(std::time::Duration::from_secs(60)) {
        Ok(out) => out.expect("wait imagedrift"),
        Err(_) => {
            // SAFETY: plain kill(2) of the child this test started.
            unsafe { libc::kill(id as libc::pid_t, libc::SIGKILL) };
            panic!(
                "imagedrift lint {args:?} in {} did not finish within 60 s",
                dir.display()
            );
        }
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
