//! Where linters run: SARIF rule metadata, text output of Helm sources,
//! the pre-commit hook and the GitHub Action.

use super::*;

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
