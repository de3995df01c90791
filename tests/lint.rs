//! `imagedrift lint`: one fixture per rule with the exact findings and
//! positions expected, driven through the library and through the binary.

use imagedrift::lint::{InputKind, LintOptions, Severity, lint_text, source};
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

#[test]
fn jenkins_always_pull_image_in_pod_yaml() {
    assert_eq!(
        findings("jenkins-pod-template.yaml"),
        vec![
            (8, 5, "error", "jenkins-always-pull-image"),
            (13, 5, "warning", "jenkins-always-pull-image")
        ]
    );
    let m = messages("jenkins-pod-template.yaml");
    assert!(
        m[0].contains("defaults to IfNotPresent for tag `3.9-eclipse-temurin-17`"),
        "{}",
        m[0]
    );
    assert!(
        m[0].contains("stale copies") && m[0].contains("replace it with imagePullPolicy: Always"),
        "{}",
        m[0]
    );
    assert!(
        m[1].contains("already sets imagePullPolicy: Always, so remove it"),
        "{}",
        m[1]
    );
}

#[test]
fn deployment_with_pull_policy_beside_containers() {
    assert_eq!(
        findings("deployment-pod-level-policy.yaml"),
        vec![
            (13, 7, "error", "pod-level-pull-policy"),
            (16, 16, "warning", "mutable-tag-default-policy"),
            (17, 7, "error", "pod-level-container-field"),
        ]
    );
    let m = messages("deployment-pod-level-policy.yaml");
    assert_eq!(
        m[0],
        "imagePullPolicy at pod level is ignored by Kubernetes: container `app` defaults to IfNotPresent for tag `java17`, so nodes keep stale copies after a re-push; move it into each container"
    );
    assert!(
        m[1].contains("imagePullPolicy on line 13 is outside the container and does not apply"),
        "{}",
        m[1]
    );
    assert!(
        m[2].starts_with("`env` at pod level is ignored"),
        "{}",
        m[2]
    );
}

#[test]
fn jenkinsfile_findings_point_into_the_jenkinsfile() {
    assert_eq!(
        findings("Jenkinsfile"),
        vec![
            // podTemplate(yaml: '''…'''): alwaysPullImage in the raw YAML
            (11, 9, "error", "jenkins-always-pull-image"),
            // (line 16, node:20, is suppressed by the comment on line 15)
            // containerTemplate(image: 'golang:1.22') without alwaysPullImage
            (19, 50, "warning", "mutable-tag-default-policy"),
            // containerTemplate pinned by digest with alwaysPullImage: true
            (21, 132, "info", "pinned-always"),
            // yaml """…""".stripIndent(): imagePullPolicy at pod level
            (35, 19, "error", "pod-level-pull-policy"),
            (40, 28, "warning", "mutable-tag-default-policy"),
        ]
    );
    let m = messages("Jenkinsfile");
    assert!(
        m[1].contains("kubernetes plugin then sets imagePullPolicy: IfNotPresent"),
        "{}",
        m[1]
    );
    assert!(m[1].contains("add alwaysPullImage: true"), "{}", m[1]);
}

#[test]
fn helm_rendered_multi_document_stream() {
    assert_eq!(
        findings("multi-doc.yaml"),
        vec![
            (21, 16, "warning", "mutable-tag-default-policy"),
            (41, 20, "warning", "mutable-tag-default-policy")
        ]
    );
    let all = lint_text(
        "multi-doc.yaml",
        &read("multi-doc.yaml"),
        InputKind::Yaml,
        &LintOptions::default(),
    );
    assert_eq!(
        all[0].template.as_deref(),
        Some("shop/templates/deployment.yaml")
    );
    assert_eq!(all[0].object.as_deref(), Some("Deployment shop"));
    assert_eq!(all[0].container.as_deref(), Some("migrate"));
    assert_eq!(all[1].object.as_deref(), Some("CronJob shop-report"));
}

#[test]
fn broken_document_in_the_middle_is_reported_and_the_rest_linted() {
    let f = findings("broken-middle.yaml");
    assert_eq!(f.len(), 3, "{f:?}");
    assert_eq!(f[0], (8, 12, "warning", "mutable-tag-default-policy"));
    let (line, _, severity, rule) = f[1];
    assert_eq!((severity, rule), ("error", "parse-error"));
    assert!(
        (15..=18).contains(&line),
        "parse error reported at line {line}"
    );
    assert_eq!(f[2], (28, 16, "warning", "mutable-tag-default-policy"));
}

#[test]
fn json_list_with_tabs() {
    assert_eq!(
        findings("list.json"),
        vec![
            (13, 35, "warning", "mutable-tag-default-policy"),
            (23, 84, "error", "invalid-pull-policy")
        ]
    );
    assert!(messages("list.json")[1].contains("did you mean Always?"));
}

#[test]
fn invalid_policies_and_images() {
    assert_eq!(
        findings("invalid.yaml"),
        vec![
            (11, 26, "error", "invalid-pull-policy"),
            (14, 26, "error", "invalid-pull-policy"),
            (16, 16, "error", "invalid-image"),
            (19, 16, "error", "invalid-image"),
        ]
    );
    let m = messages("invalid.yaml");
    assert!(
        m[0].contains("IfNotPresnt") && m[0].contains("did you mean IfNotPresent?"),
        "{}",
        m[0]
    );
    assert!(
        m[2].contains("Busybox:1.36") && m[2].contains("InvalidImageName"),
        "{}",
        m[2]
    );
}

#[test]
fn pinned_images_with_always() {
    assert_eq!(
        findings("pinned-always.yaml"),
        vec![
            (11, 26, "info", "pinned-always"),
            (13, 16, "info", "pinned-always")
        ]
    );
}

#[test]
fn implicit_latest() {
    assert_eq!(
        findings("implicit-latest.yaml"),
        vec![
            (10, 16, "info", "implicit-latest-policy"),
            (12, 16, "info", "implicit-latest-policy")
        ]
    );
}

#[test]
fn suppression_comments() {
    assert_eq!(
        findings("suppressed.yaml"),
        vec![(14, 14, "warning", "mutable-tag-default-policy")]
    );
}

#[test]
fn clean_manifest_has_no_findings() {
    assert_eq!(findings("clean.yaml"), vec![]);
}

#[test]
fn mutable_tag_severity_is_configurable() {
    let opts = LintOptions {
        mutable_tag_severity: Severity::Error,
        ..LintOptions::default()
    };
    assert_eq!(
        findings_with("suppressed.yaml", &opts),
        vec![(14, 14, "error", "mutable-tag-default-policy")]
    );
}

#[test]
fn policy_above_the_pod_spec_and_kindless_pod_fragments() {
    assert_eq!(
        findings("more/workload-level-policy.yaml"),
        vec![
            (7, 3, "error", "pod-level-pull-policy"),
            (11, 9, "error", "pod-level-pull-policy"),
            (19, 20, "info", "implicit-latest-policy"),
            (25, 12, "warning", "mutable-tag-default-policy"),
        ]
    );
    let m = messages("more/workload-level-policy.yaml");
    assert!(m[0].starts_with("imagePullPolicy in `spec` is ignored by Kubernetes: container `job` sets IfNotPresent itself"), "{}", m[0]);
    assert!(
        m[1].starts_with("imagePullPolicy in `spec.jobTemplate.spec.template` is ignored"),
        "{}",
        m[1]
    );
}

#[test]
fn broken_yaml_in_a_jenkinsfile_and_container_templates_after_it() {
    assert_eq!(
        findings("more/broken.Jenkinsfile"),
        vec![
            (9, 1, "error", "parse-error"),
            (13, 47, "error", "invalid-image")
        ]
    );
}

#[test]
fn pod_yaml_held_in_a_groovy_variable() {
    // The GString's `${args.image ?: '…'}` is a placeholder, not broken YAML;
    // the string that only mentions containers: and spec: is not YAML and
    // yields no parse error.
    assert_eq!(
        findings("more/vars-pod.groovy"),
        vec![(12, 13, "error", "jenkins-always-pull-image")]
    );
}

// ---- the binary ----

fn imagedrift(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_imagedrift"))
        .arg("lint")
        .args(args)
        .current_dir(fixtures())
        .env_remove("IMAGEDRIFT_LINT_OUTPUT")
        .env_remove("IMAGEDRIFT_LINT_FAIL_ON")
        .env_remove("IMAGEDRIFT_LINT_MUTABLE_TAG_SEVERITY")
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
    child.wait_with_output().expect("wait imagedrift")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn text_output_format_and_default_exit_code() {
    let o = imagedrift(&["deployment-pod-level-policy.yaml"], None);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    let first = out.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("deployment-pod-level-policy.yaml:13:7: error pod-level-pull-policy: imagePullPolicy at pod level"),
        "{out}"
    );
    assert_eq!(out.lines().count(), 3);
}

#[test]
fn fail_on_thresholds() {
    // suppressed.yaml has one warning, no errors.
    assert_eq!(
        imagedrift(&["suppressed.yaml"], None).status.code(),
        Some(0)
    );
    assert_eq!(
        imagedrift(&["--fail-on", "warning", "suppressed.yaml"], None)
            .status
            .code(),
        Some(1)
    );
    assert_eq!(
        imagedrift(&["--fail-on", "info", "suppressed.yaml"], None)
            .status
            .code(),
        Some(1)
    );
    // implicit-latest.yaml has only info findings.
    assert_eq!(
        imagedrift(&["--fail-on", "warning", "implicit-latest.yaml"], None)
            .status
            .code(),
        Some(0)
    );
    assert_eq!(
        imagedrift(&["--fail-on", "info", "implicit-latest.yaml"], None)
            .status
            .code(),
        Some(1)
    );
    assert_eq!(
        imagedrift(&["--fail-on", "info", "clean.yaml"], None)
            .status
            .code(),
        Some(0)
    );
    let o = imagedrift(
        &["--mutable-tag-severity", "error", "suppressed.yaml"],
        None,
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains(":14:14: error mutable-tag-default-policy:"));
}

#[test]
fn usage_and_io_errors_exit_2() {
    let o = imagedrift(&["no-such-file.yaml"], None);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("no-such-file.yaml"), "{err}");
    assert_eq!(
        imagedrift(&["--fail-on", "fatal", "clean.yaml"], None)
            .status
            .code(),
        Some(2)
    );
    assert_eq!(imagedrift(&[], None).status.code(), Some(2));
}

#[test]
fn parse_errors_are_findings_not_exit_2() {
    let o = imagedrift(&["broken-middle.yaml"], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("error parse-error:"));
}

#[test]
fn stdin_dash() {
    let text = read("deployment-pod-level-policy.yaml");
    let o = imagedrift(&["-"], Some(&text));
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).starts_with("<stdin>:13:7: error pod-level-pull-policy:"),
        "{}",
        stdout(&o)
    );
    let o = imagedrift(
        &["--stdin-filename", "ci/Jenkinsfile", "-"],
        Some(&read("Jenkinsfile")),
    );
    assert!(
        stdout(&o).contains("ci/Jenkinsfile:11:9: error jenkins-always-pull-image:"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn directories_are_walked() {
    let o = imagedrift(&["-o", "json", "."], None);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let paths: std::collections::BTreeSet<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["path"].as_str())
        .collect();
    for name in [
        "./Jenkinsfile",
        "./list.json",
        "./multi-doc.yaml",
        "./broken-middle.yaml",
    ] {
        assert!(paths.contains(name), "{name} missing from {paths:?}");
    }
    assert!(
        !paths.iter().any(|p| p.contains("templates")),
        "Helm chart templates/ must be skipped"
    );
    // 11 fixtures here, and in more/: Chart.yaml, broken.Jenkinsfile,
    // vars-pod.groovy, workload-level-policy.yaml
    assert_eq!(v["summary"]["files"], 15);
}

#[test]
fn json_output() {
    let o = imagedrift(&["-o", "json", "multi-doc.yaml"], None);
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let f = &v["findings"][0];
    assert_eq!(f["path"], "multi-doc.yaml");
    assert_eq!(f["line"], 21);
    assert_eq!(f["column"], 16);
    assert_eq!(f["severity"], "warning");
    assert_eq!(f["rule"], "mutable-tag-default-policy");
    assert_eq!(f["object"], "Deployment shop");
    assert_eq!(f["container"], "migrate");
    assert_eq!(f["template"], "shop/templates/deployment.yaml");
    assert_eq!(v["summary"]["warning"], 2);
}

#[test]
fn sarif_output_shape() {
    let o = imagedrift(
        &[
            "-o",
            "sarif",
            "Jenkinsfile",
            "deployment-pod-level-policy.yaml",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("sarif is json");
    assert_eq!(v["version"], "2.1.0");
    assert!(
        v["$schema"]
            .as_str()
            .unwrap_or_default()
            .contains("sarif-2.1.0")
    );
    let run = &v["runs"][0];
    let driver = &run["tool"]["driver"];
    assert_eq!(driver["name"], "imagedrift");
    let rules = driver["rules"].as_array().expect("rules");
    let ids: Vec<&str> = rules.iter().filter_map(|r| r["id"].as_str()).collect();
    for id in [
        "parse-error",
        "pod-level-pull-policy",
        "pod-level-container-field",
        "jenkins-always-pull-image",
        "mutable-tag-default-policy",
        "implicit-latest-policy",
        "invalid-pull-policy",
        "invalid-image",
        "pinned-always",
    ] {
        assert!(ids.contains(&id), "rule {id} missing");
    }
    for r in rules {
        assert!(
            r["shortDescription"]["text"]
                .as_str()
                .is_some_and(|t| !t.is_empty())
        );
        assert!(matches!(
            r["defaultConfiguration"]["level"].as_str(),
            Some("error" | "warning" | "note")
        ));
    }
    let results = run["results"].as_array().expect("results");
    assert_eq!(results.len(), 8);
    let r = &results[0];
    assert_eq!(r["ruleId"], "jenkins-always-pull-image");
    assert_eq!(r["level"], "error");
    assert!(
        r["message"]["text"]
            .as_str()
            .is_some_and(|t| t.contains("alwaysPullImage"))
    );
    let loc = &r["locations"][0]["physicalLocation"];
    assert_eq!(loc["artifactLocation"]["uri"], "Jenkinsfile");
    assert_eq!(loc["region"]["startLine"], 11);
    assert_eq!(loc["region"]["startColumn"], 9);
    let idx = r["ruleIndex"].as_u64().expect("ruleIndex") as usize;
    assert_eq!(rules[idx]["id"], "jenkins-always-pull-image");
    let info = results
        .iter()
        .find(|r| r["ruleId"] == "pinned-always")
        .expect("pinned-always result");
    assert_eq!(info["level"], "note");
}

#[test]
fn truncated_and_garbled_inputs_never_panic() {
    let mut names = vec![
        "Jenkinsfile",
        "broken-middle.yaml",
        "deployment-pod-level-policy.yaml",
        "list.json",
        "multi-doc.yaml",
        "more/broken.Jenkinsfile",
        "more/workload-level-policy.yaml",
    ];
    names.sort();
    let opts = LintOptions::default();
    for name in names {
        let text = read(name);
        let cuts: Vec<usize> = text.char_indices().map(|(i, _)| i).step_by(5).collect();
        for cut in cuts {
            let prefix = &text[..cut];
            let garbled = format!("{prefix}\t: [{{'\"\n{}", &text[cut..]);
            for kind in [InputKind::Yaml, InputKind::Json, InputKind::Jenkins] {
                for input in [prefix, garbled.as_str()] {
                    let found = lint_text(name, input, kind, &opts);
                    // every finding points inside the text (or just past its end)
                    let lines = input.lines().count().max(1) + 1;
                    assert!(
                        found
                            .iter()
                            .all(|f| f.pos.line >= 1 && f.pos.line <= lines && f.pos.col >= 1)
                    );
                }
            }
        }
    }
}

#[test]
fn non_utf8_files_and_json_syntax_errors_are_findings() {
    let dir = std::env::temp_dir().join(format!("imagedrift-lint-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let latin1 = dir.join("latin1.yaml");
    std::fs::write(&latin1, b"kind: Pod\n# caf\xe9\n").expect("write");
    let bad_json = dir.join("bad.json");
    std::fs::write(
        &bad_json,
        "{\n  \"kind\": \"Pod\",\n  \"spec\": {\"containers\": [}\n}\n",
    )
    .expect("write");
    let o = imagedrift(
        &[
            "-o",
            "json",
            latin1.to_str().unwrap_or_default(),
            bad_json.to_str().unwrap_or_default(),
        ],
        None,
    );
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let f = v["findings"].as_array().expect("findings");
    assert_eq!(f.len(), 2, "{f:?}");
    assert_eq!(
        (&f[0]["rule"], &f[0]["line"]),
        (&"parse-error".into(), &1.into())
    );
    assert!(
        f[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("not UTF-8"))
    );
    assert_eq!(
        (&f[1]["rule"], &f[1]["line"]),
        (&"parse-error".into(), &3.into())
    );
    assert!(
        f[1]["message"]
            .as_str()
            .is_some_and(|m| m.contains("not valid JSON"))
    );
}

#[test]
fn list_rules() {
    let o = imagedrift(&["--list-rules"], None);
    assert_eq!(o.status.code(), Some(0));
    let out = stdout(&o);
    assert_eq!(out.lines().count(), 13, "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("mutable-tag-default-policy") && l.contains(" warning ")),
        "{out}"
    );
}
