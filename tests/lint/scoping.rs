//! Walks, ignore files, excludes and config files, on temp trees.

use super::*;

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
    // --mutable-tag-severity wins over the file's severities.
    let o = imagedrift_in(
        &root.join("k8s"),
        &["--mutable-tag-severity", "warning", "."],
        None,
    );
    assert_eq!(
        lines(&o),
        vec!["./app.yaml:4:22: warning mutable-tag-default-policy"]
    );
    assert_eq!(o.status.code(), Some(0));
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
    write(&root, "gen/.imagedriftignore", "*.yaml\n");
    write(&root, "gen/out.yaml", STALE_POD);
    let files = [
        "app.yaml",
        "legacy/old.yaml",
        "chart/templates/d.yaml",
        "gen/out.yaml",
    ];
    let mut args = vec!["-o", "json", "--exclude", "legacy/"];
    args.extend(files);
    // Named files are linted whatever the excludes...
    let o = imagedrift_in(&root, &args, None);
    let paths: Vec<String> = finding_paths(&o).into_iter().map(|(p, _)| p).collect();
    assert_eq!(paths, files);
    // ...unless --force-exclude (what the pre-commit hook passes).
    args.insert(0, "--force-exclude");
    let o = imagedrift_in(&root, &args, None);
    let paths: Vec<String> = finding_paths(&o).into_iter().map(|(p, _)| p).collect();
    assert_eq!(paths, vec!["app.yaml"]);
    let _ = std::fs::remove_dir_all(&root);
}
