//! `imagedrift lint`: one fixture per rule with the exact findings and
//! positions expected, driven through the library and through the binary.

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
    // 11 fixtures here, 6 in rules/, and in more/: Chart.yaml, values.yaml,
    // broken.Jenkinsfile, vars-pod.groovy, workload-level-policy.yaml
    assert_eq!(v["summary"]["files"], 22);
    assert!(paths.contains("./more/chart/values.yaml"), "{paths:?}");
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

// ---- issue 13: the classic mistakes ----

#[test]
fn explicit_if_not_present_on_latest_no_tag_and_conventional_tags() {
    assert_eq!(
        findings("rules/if-not-present.yaml"),
        vec![
            (11, 26, "error", "if-not-present-mutable-tag"), // nginx:latest
            (14, 26, "error", "if-not-present-mutable-tag"), // nginx (no tag)
            (17, 26, "warning", "if-not-present-mutable-tag"), // :main
            (20, 26, "warning", "if-not-present-mutable-tag"), // :2.1-SNAPSHOT
                                                             // nginx:1.27 and a digest-pinned image with IfNotPresent: fine
        ]
    );
    let m = messages("rules/if-not-present.yaml");
    assert!(
        m[0].starts_with("container `latest`: image `nginx:latest` uses `latest`"),
        "{}",
        m[0]
    );
    assert!(m[1].contains("has no tag"), "{}", m[1]);
    assert!(m[3].contains("ending in `-SNAPSHOT`"), "{}", m[3]);
    assert_eq!(
        imagedrift(&["rules/if-not-present.yaml"], None)
            .status
            .code(),
        Some(1)
    );
}

#[test]
fn image_volumes_are_linted_like_containers() {
    assert_eq!(
        findings("rules/image-volumes.yaml"),
        vec![
            (14, 19, "error", "if-not-present-mutable-tag"),
            (17, 18, "warning", "mutable-tag-default-policy"),
            (21, 19, "error", "invalid-pull-policy"),
        ]
    );
    let m = messages("rules/image-volumes.yaml");
    assert!(
        m[0].starts_with("image volume `tools`: image `ghcr.io/acme/tools:latest`"),
        "{}",
        m[0]
    );
    assert!(m[0].contains("set pullPolicy: Always"), "{}", m[0]);
    assert!(m[1].contains("with no pullPolicy"), "{}", m[1]);
    assert!(m[2].contains("invalid pullPolicy \"always\""), "{}", m[2]);
}

#[test]
fn templated_images_are_unknown_not_absent() {
    assert_eq!(
        findings("rules/templated.yaml"),
        vec![
            (6, 3, "error", "pod-level-pull-policy"),
            (9, 12, "warning", "mutable-tag-default-policy"),
        ]
    );
    let m = messages("rules/templated.yaml");
    assert!(!m[0].contains("has no effect"), "{}", m[0]);
    assert!(
        m[0].contains("container `tools` defaults to IfNotPresent for tag `java17`"),
        "{}",
        m[0]
    );
    assert!(
        m[0].contains("container `runner` defaults to a policy that depends on the tag of the templated image `${RUNNER_IMAGE}`, which cannot be told here"),
        "{}",
        m[0]
    );
    assert!(m[0].contains("container `jdk`"), "{}", m[0]);
    let o = imagedrift(&["rules/templated.yaml"], None);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn immutable_tag_heuristic_and_team_patterns() {
    assert_eq!(
        findings("rules/immutable-tags.yaml"),
        vec![
            (10, 16, "info", "mutable-tag-default-policy"), // 1.27.3
            (12, 16, "info", "mutable-tag-default-policy"), // git-3f2a1bc
            (14, 16, "warning", "mutable-tag-default-policy"), // release-42
            (16, 16, "warning", "mutable-tag-default-policy"), // nightly
        ]
    );
    let m = messages("rules/immutable-tags.yaml");
    assert!(
        m[0].contains("looks immutable (a full three-part version"),
        "{}",
        m[0]
    );
    assert!(
        m[1].contains("looks immutable (a git commit SHA"),
        "{}",
        m[1]
    );
    assert!(
        m[3].contains("`nightly` names a branch or channel"),
        "{}",
        m[3]
    );
    let opts = LintOptions {
        immutable_tags: vec![TagPattern::new(r"release-\d+").expect("regex")],
        ..LintOptions::default()
    };
    assert_eq!(
        findings_with("rules/immutable-tags.yaml", &opts)
            .iter()
            .map(|f| f.0)
            .collect::<Vec<_>>(),
        vec![10, 12, 16]
    );
    let file = "rules/immutable-tags.yaml";
    let code = |args: &[&str]| imagedrift(args, None).status.code();
    assert_eq!(code(&["--fail-on", "warning", file]), Some(1));
    assert_eq!(
        code(&[
            "--fail-on",
            "warning",
            "--immutable-tags",
            r"release-\d+",
            file
        ]),
        Some(1)
    );
    assert_eq!(
        code(&[
            "--fail-on",
            "warning",
            "--immutable-tags",
            r"release-\d+",
            "--immutable-tags",
            "nightly",
            file
        ]),
        Some(0)
    );
    let o = imagedrift(&["--immutable-tags", "(", file], None);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("invalid --immutable-tags regex"));
}

#[test]
fn duplicate_pull_policy_keys() {
    // The decoder keeps the last one (IfNotPresent), so `:main` is judged with it.
    assert_eq!(
        findings("rules/duplicates.yaml"),
        vec![
            (10, 5, "error", "duplicate-key"),
            (10, 22, "warning", "if-not-present-mutable-tag"),
        ]
    );
    let m = messages("rules/duplicates.yaml");
    assert!(
        m[0].starts_with("`imagePullPolicy` is written twice in container `app` (first on line 9)"),
        "{}",
        m[0]
    );
}

#[test]
fn suppressions_naming_unknown_rules() {
    assert_eq!(
        findings("rules/suppress-typo.yaml"),
        vec![
            (7, 23, "warning", "unknown-suppression"),
            (8, 12, "warning", "mutable-tag-default-policy"),
            (10, 35, "warning", "unknown-suppression"),
        ]
    );
    assert!(
        messages("rules/suppress-typo.yaml")[0]
            .contains("`mutable-tag-defualt-policy` is not a rule id")
    );
}

#[test]
fn helm_values_image_blocks() {
    assert_eq!(
        findings("more/chart/values.yaml"),
        vec![
            (5, 15, "error", "if-not-present-mutable-tag"), // scaffold with tag: latest
            (12, 17, "warning", "if-not-present-mutable-tag"), // backend.image tag: main
            // sidecarImage: tag "" (the chart's appVersion): not judged
            // workers[0]: 1.4.2 with IfNotPresent: fine
            (28, 19, "info", "pinned-always"),
            (33, 19, "error", "invalid-pull-policy"),
            (34, 7, "error", "duplicate-key"),
        ]
    );
    let m = messages("more/chart/values.yaml");
    assert!(
        m[0].starts_with("values `image`: image `nginx:latest`"),
        "{}",
        m[0]
    );
    assert!(
        m[1].starts_with("values `backend.image`: image `ghcr.io/acme/backend:main`"),
        "{}",
        m[1]
    );
    assert!(m[2].starts_with("values `workers[1].image`"), "{}", m[2]);
}

// ---- scoping ----

/// A fresh directory under the target dir (so no config file above it).
fn temp_tree(name: &str) -> PathBuf {
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("lint-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, text).expect("write");
}

const STALE_POD: &str =
    "kind: Pod\nspec:\n  containers:\n  - name: a\n    image: ghcr.io/acme/a:main\n";

fn finding_paths(o: &Output) -> Vec<(String, String)> {
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("json ({e}): {}", String::from_utf8_lossy(&o.stdout)));
    v["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap_or_default().to_string(),
                f["rule"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[test]
fn walk_honours_ignore_files_skips_dirs_symlinks_and_fifos() {
    let root = temp_tree("walk");
    write(&root, ".gitignore", "generated/\n*.rendered.yaml\n");
    write(&root, ".imagedriftignore", "legacy/\n!legacy/keep.yaml\n");
    write(&root, "app.yaml", STALE_POD);
    write(&root, "generated/out.yaml", STALE_POD);
    write(&root, "x.rendered.yaml", STALE_POD);
    write(&root, "legacy/old.yaml", STALE_POD);
    write(&root, "node_modules/pkg/deploy.yaml", STALE_POD);
    write(&root, "vendor/mod/pod.yaml", STALE_POD);
    write(&root, ".git/config.yaml", STALE_POD);
    write(&root, "flagged/pod.yaml", STALE_POD);
    write(&root, "sub/nested.yml", STALE_POD);
    std::os::unix::fs::symlink("missing.yaml", root.join("dangling.yaml")).expect("symlink");
    std::os::unix::fs::symlink("app.yaml", root.join("linked.yaml")).expect("symlink");
    let fifo = std::ffi::CString::new(root.join("pipe.yaml").into_os_string().into_encoded_bytes())
        .expect("path");
    // SAFETY: mkfifo(3) with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0, "mkfifo");

    let o = imagedrift_in(&root, &["-o", "json", "--exclude", "flagged/", "."], None);
    let got = finding_paths(&o);
    assert_eq!(
        got,
        vec![
            (
                "./app.yaml".to_string(),
                "mutable-tag-default-policy".to_string()
            ),
            (
                "./linked.yaml".to_string(),
                "mutable-tag-default-policy".to_string()
            ),
            (
                "./sub/nested.yml".to_string(),
                "mutable-tag-default-policy".to_string()
            ),
            ("./dangling.yaml".to_string(), "unreadable-path".to_string()),
        ],
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // The dangling link is a warning: the walk goes on and exits 0.
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let dangling = &v["findings"][3];
    assert_eq!(
        (&dangling["line"], &dangling["column"]),
        (&1.into(), &1.into())
    );
    assert_eq!(dangling["severity"], "warning");
    assert!(
        dangling["message"]
            .as_str()
            .is_some_and(|m| m.contains("symbolic link to missing.yaml points to nothing"))
    );
    assert_eq!(v["summary"]["files"], 3);

    // Without --exclude the flagged directory is linted too.
    let o = imagedrift_in(&root, &["-o", "json", "."], None);
    assert!(
        finding_paths(&o)
            .iter()
            .any(|(p, _)| p == "./flagged/pod.yaml")
    );
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_directory_with_nothing_to_lint_is_exit_2() {
    let root = temp_tree("empty");
    std::fs::create_dir_all(root.join("empty")).expect("mkdir");
    write(&root, "only-ignored/.imagedriftignore", "*.yaml\n");
    write(&root, "only-ignored/a.yaml", STALE_POD);
    write(&root, "docs/README.md", "# not a manifest\n");
    for dir in ["empty", "only-ignored", "docs"] {
        let o = imagedrift_in(&root, &[dir], None);
        assert_eq!(o.status.code(), Some(2), "{dir}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains(&format!("no files to lint under {dir}")),
            "{err}"
        );
    }
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn config_file_found_upward_and_flags_on_top() {
    let root = temp_tree("config");
    write(
        &root,
        ".imagedrift-lint.yaml",
        "exclude: [legacy/]\ndisable: [implicit-latest-policy]\nseverities:\n  mutable-tag-default-policy: error\nimmutableTags: ['release-\\d+']\n",
    );
    let pod = "kind: Pod\nspec:\n  containers:\n  - {name: a, image: 'ghcr.io/acme/a:main'}\n  - {name: b, image: 'ghcr.io/acme/b:release-7'}\n  - {name: c, image: nginx}\n";
    write(&root, "k8s/app.yaml", pod);
    write(&root, "k8s/legacy/old.yaml", pod);
    let lines = |o: &Output| {
        stdout(o)
            .lines()
            .map(|l| l.split(": ").take(2).collect::<Vec<_>>().join(": "))
            .collect::<Vec<_>>()
    };
    // From a subdirectory: the config above it applies; its exclude is
    // relative to the config's directory (.gitignore syntax: `legacy/` matches
    // k8s/legacy too).
    let o = imagedrift_in(&root.join("k8s"), &["."], None);
    assert_eq!(
        lines(&o),
        vec!["./app.yaml:4:22: error mutable-tag-default-policy"]
    );
    assert_eq!(o.status.code(), Some(1));
    // --enable turns the disabled rule back on; --disable drops another.
    let o = imagedrift_in(
        &root,
        &[
            "--enable",
            "implicit-latest-policy",
            "--disable",
            "mutable-tag-default-policy",
            "k8s",
        ],
        None,
    );
    assert_eq!(
        lines(&o),
        vec!["k8s/app.yaml:6:22: info implicit-latest-policy"]
    );
    assert_eq!(o.status.code(), Some(0));
    // --config names another file.
    write(&root, "other.yaml", "disable: []\n");
    let o = imagedrift_in(&root, &["--config", "other.yaml", "k8s/app.yaml"], None);
    assert_eq!(
        lines(&o),
        vec![
            "k8s/app.yaml:4:22: warning mutable-tag-default-policy",
            "k8s/app.yaml:5:22: warning mutable-tag-default-policy",
            "k8s/app.yaml:6:22: info implicit-latest-policy",
        ]
    );
    // Broken configs and unknown rules are exit 2, naming what and where.
    write(&root, "bad.yaml", "disable: [pinned-alway]\n");
    let o = imagedrift_in(&root, &["--config", "bad.yaml", "k8s"], None);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("bad.yaml: disable[0]: unknown rule \"pinned-alway\""),
        "{err}"
    );
    write(&root, "typo.yaml", "exlude: [a/]\n");
    let o = imagedrift_in(&root, &["--config", "typo.yaml", "k8s"], None);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("exlude"));
    let o = imagedrift_in(&root, &["--disable", "no-such-rule", "k8s"], None);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown rule \"no-such-rule\""));
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn force_exclude_applies_to_named_files() {
    let root = temp_tree("force");
    write(&root, "app.yaml", STALE_POD);
    write(&root, "legacy/old.yaml", STALE_POD);
    write(
        &root,
        "chart/Chart.yaml",
        "apiVersion: v2\nname: c\nversion: 0.1.0\n",
    );
    write(
        &root,
        "chart/templates/d.yaml",
        "kind: Pod\nspec: {{ .Values.x }\n",
    );
    let files = ["app.yaml", "legacy/old.yaml", "chart/templates/d.yaml"];
    let mut args = vec!["-o", "json", "--exclude", "legacy/"];
    args.extend(files);
    // Named files are linted whatever the excludes...
    let o = imagedrift_in(&root, &args, None);
    let paths: Vec<String> = finding_paths(&o).into_iter().map(|(p, _)| p).collect();
    assert_eq!(
        paths,
        vec!["app.yaml", "legacy/old.yaml", "chart/templates/d.yaml"]
    );
    // ...unless --force-exclude (what the pre-commit hook passes).
    args.insert(0, "--force-exclude");
    let o = imagedrift_in(&root, &args, None);
    let paths: Vec<String> = finding_paths(&o).into_iter().map(|(p, _)| p).collect();
    assert_eq!(paths, vec!["app.yaml"]);
    let _ = std::fs::remove_dir_all(&root);
}

// ---- where linters run ----

#[test]
fn sarif_rules_have_help_uri_and_full_description() {
    let o = imagedrift(&["-o", "sarif", "rules/if-not-present.yaml"], None);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("sarif is json");
    let rules = v["runs"][0]["tool"]["driver"]["rules"]
        .as_array()
        .expect("rules")
        .clone();
    assert_eq!(rules.len(), Rule::ALL.len());
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README");
    for (r, rule) in rules.iter().zip(Rule::ALL) {
        assert_eq!(r["id"], rule.id());
        assert_eq!(
            r["helpUri"],
            format!("{}#{}", imagedrift::lint::RULES_URL, rule.id())
        );
        let full = r["fullDescription"]["text"].as_str().unwrap_or_default();
        let short = r["shortDescription"]["text"].as_str().unwrap_or_default();
        assert!(
            full.len() > short.len(),
            "{}: fullDescription {full:?}",
            rule.id()
        );
        // the anchor helpUri points at exists
        assert!(
            readme.contains(&format!("<a name=\"{}\"></a>", rule.id())),
            "README lacks the anchor for {}",
            rule.id()
        );
    }
    let result = &v["runs"][0]["results"][0];
    assert_eq!(result["ruleId"], "if-not-present-mutable-tag");
    assert_eq!(result["properties"]["container"], "latest");
}

#[test]
fn text_output_keeps_the_helm_source_template() {
    let o = imagedrift(&["-"], Some(&read("multi-doc.yaml")));
    let out = stdout(&o);
    let first = out.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("<stdin>:21:16: warning mutable-tag-default-policy:")
            && first.ends_with(" [# Source: shop/templates/deployment.yaml]"),
        "{out}"
    );
    assert!(
        out.lines()
            .nth(1)
            .unwrap_or_default()
            .ends_with(" [# Source: shop/templates/cronjob.yaml]"),
        "{out}"
    );
}

fn repo_file(name: &str) -> serde_yaml_ng::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn pre_commit_hook_definition() {
    let hooks = repo_file(".pre-commit-hooks.yaml");
    let hooks = hooks.as_sequence().expect("a list of hooks");
    assert_eq!(hooks.len(), 1);
    let h = &hooks[0];
    assert_eq!(h["id"].as_str(), Some("imagedrift-lint"));
    assert_eq!(h["language"].as_str(), Some("rust"));
    for key in ["name", "description", "entry", "files"] {
        assert!(
            h[key].as_str().is_some_and(|s| !s.is_empty()),
            "hook lacks {key}"
        );
    }
    let entry = h["entry"].as_str().unwrap_or_default();
    let mut words = entry.split_whitespace();
    assert_eq!(words.next(), Some("imagedrift"));
    // The entry, run as pre-commit runs it (files appended), works.
    let rest: Vec<&str> = words.collect();
    assert_eq!(rest.first(), Some(&"lint"));
    let mut args: Vec<&str> = rest[1..].to_vec();
    args.extend(["rules/if-not-present.yaml", "clean.yaml", "Jenkinsfile"]);
    let o = imagedrift(&args, None);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // `files` (a Python regex, also valid for the regex crate) picks the
    // files a walk would lint.
    let files = regex::Regex::new(h["files"].as_str().unwrap_or_default()).expect("files regex");
    for yes in [
        "k8s/app.yaml",
        "a.yml",
        "list.json",
        "Jenkinsfile",
        "ci/Jenkinsfile.release",
        "build.jenkinsfile",
        "vars/pod.groovy",
    ] {
        assert!(files.is_match(yes), "{yes}");
    }
    for no in ["README.md", "src/main.rs", "MyJenkinsfileNotes/readme.txt"] {
        assert!(!files.is_match(no), "{no}");
    }
}

#[test]
fn github_action_definition() {
    let a = repo_file("action.yml");
    assert!(a["name"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(a["description"].as_str().is_some_and(|s| !s.is_empty()));
    let inputs = &a["inputs"];
    assert_eq!(inputs["paths"]["default"].as_str(), Some("."));
    assert_eq!(inputs["fail-on"]["default"].as_str(), Some("error"));
    assert_eq!(inputs["upload-sarif"]["default"].as_str(), Some("true"));
    assert_eq!(a["runs"]["using"].as_str(), Some("composite"));
    let steps = a["runs"]["steps"].as_sequence().expect("steps");
    let runs: Vec<&str> = steps.iter().filter_map(|s| s["run"].as_str()).collect();
    assert!(
        runs.iter()
            .any(|r| r.contains("cargo install --locked") && r.contains("$ACTION_PATH"))
    );
    let lint = runs
        .iter()
        .find(|r| r.contains("-o sarif"))
        .expect("a lint step writing SARIF");
    assert!(lint.contains("imagedrift lint") && lint.contains("$LINT_FAIL_ON"));
    // inputs reach scripts through env, never by ${{ }} inside `run` (script injection)
    for r in &runs {
        assert!(!r.contains("${{"), "expression inside run: {r}");
    }
    let upload = steps
        .iter()
        .find(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.starts_with("github/codeql-action/upload-sarif@"))
        })
        .expect("an upload-sarif step");
    assert!(upload["with"]["sarif_file"].as_str().is_some());
    assert!(
        upload["if"]
            .as_str()
            .is_some_and(|c| c.contains("always()"))
    );
    // the last step fails the job on findings
    assert!(
        steps
            .last()
            .and_then(|s| s["run"].as_str())
            .is_some_and(|r| r.contains("exit \"$STATUS\""))
    );
}
