//! The command: output formats, exit codes, stdin, directory walks.

use super::*;

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
    // 11 fixtures here, 7 in rules/, and in more/: Chart.yaml, values.yaml,
    // broken.Jenkinsfile, vars-pod.groovy, workload-level-policy.yaml
    assert_eq!(v["summary"]["files"], 23);
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
        "more/chart/values.yaml",
        "rules/duplicates.yaml",
        "rules/image-volumes.yaml",
        "rules/suppress-typo.yaml",
        "rules/templated.Jenkinsfile",
        "rules/templated.yaml",
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
