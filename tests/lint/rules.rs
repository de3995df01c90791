//! Fixtures through the library: exact positions, severities, messages.

use super::*;
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
fn templated_container_templates_in_a_jenkinsfile() {
    assert_eq!(
        findings("rules/templated.Jenkinsfile"),
        vec![
            (2, 45, "warning", "mutable-tag-default-policy"),
            // `${IMAGE}`: the tag cannot be told, nothing is said
            (4, 47, "info", "mutable-tag-default-policy"),
        ]
    );
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
