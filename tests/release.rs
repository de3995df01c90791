//! The release workflow can't run here (it needs GitHub's runners, ghcr.io
//! and Sigstore), so this checks what can be checked offline: the tag
//! trigger, the jobs and their order, least-privilege permissions, that
//! every action in every workflow is pinned by commit SHA, the image name
//! against the manifests, the published artefact list, and the krew plugin
//! manifest that scripts/krew-manifest.sh fills from the checksums.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    let path = root().join(rel);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn yaml(text: &str, origin: &str) -> Value {
    serde_yaml_ng::from_str(text).unwrap_or_else(|e| panic!("{origin}: invalid YAML: {e}"))
}

fn workflow() -> Value {
    yaml(&read(".github/workflows/release.yml"), "release.yml")
}

fn job<'a>(w: &'a Value, name: &str) -> &'a Value {
    w["jobs"]
        .get(name)
        .unwrap_or_else(|| panic!("release.yml has no job {name}"))
}

/// Every step's `run:` script of a job, joined.
fn scripts(job: &Value) -> String {
    job["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["run"].as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The steps of a job that use `action` (owner/name, without the pin).
fn uses<'a>(job: &'a Value, action: &str) -> Vec<&'a Value> {
    job["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| {
            s["uses"]
                .as_str()
                .is_some_and(|u| u.split('@').next() == Some(action))
        })
        .collect()
}

fn needs(job: &Value) -> BTreeSet<String> {
    match &job["needs"] {
        Value::String(s) => [s.clone()].into(),
        Value::Array(a) => a
            .iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect(),
        _ => BTreeSet::new(),
    }
}

#[test]
fn runs_on_version_tags_only() {
    let w = workflow();
    assert_eq!(w["on"], json!({"push": {"tags": ["v*"]}}), "{}", w["on"]);
}

#[test]
fn jobs_test_then_build_then_sign_then_release() {
    let w = workflow();
    let names: BTreeSet<&str> = w["jobs"]
        .as_object()
        .expect("jobs")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        names,
        ["image", "linux", "macos", "release", "test"].into(),
        "the release jobs"
    );
    assert!(
        scripts(job(&w, "test")).contains("bash .ci/run"),
        "the test job runs .ci/run"
    );
    let order = [
        ("test", vec![]),
        ("linux", vec!["test"]),
        ("macos", vec!["test"]),
        ("image", vec!["linux"]),
        ("release", vec!["image", "linux", "macos"]),
    ];
    for (name, want) in order {
        let want: BTreeSet<String> = want.into_iter().map(String::from).collect();
        assert_eq!(needs(job(&w, name)), want, "{name}.needs");
    }

    // Static Linux binaries and images for both architectures, each on a
    // native runner; macOS binaries for both.
    let linux: BTreeMap<String, String> = job(&w, "linux")["strategy"]["matrix"]["include"]
        .as_array()
        .expect("linux matrix")
        .iter()
        .map(|e| {
            (
                e["arch"].as_str().unwrap().into(),
                e["runner"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(linux.keys().collect::<Vec<_>>(), ["amd64", "arm64"]);
    assert!(
        linux["arm64"].contains("arm"),
        "arm64 builds natively: {linux:?}"
    );
    let macos: BTreeSet<&str> = job(&w, "macos")["strategy"]["matrix"]["include"]
        .as_array()
        .expect("macos matrix")
        .iter()
        .filter_map(|e| e["target"].as_str())
        .collect();
    assert_eq!(
        macos,
        ["aarch64-apple-darwin", "x86_64-apple-darwin"].into()
    );
    assert!(
        job(&w, "macos")["runs-on"]
            .as_str()
            .unwrap()
            .starts_with("macos")
    );

    // The tag must be the crate's version: checked before anything is built.
    let check = scripts(job(&w, "test"));
    assert!(
        check.contains("Cargo.toml") && check.contains("GITHUB_REF_NAME"),
        "{check}"
    );
}

#[test]
fn permissions_are_least_privilege() {
    let w = workflow();
    assert_eq!(w["permissions"], json!({}), "nothing granted by default");
    let mut writes: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (name, job) in w["jobs"].as_object().expect("jobs") {
        let perms = job["permissions"]
            .as_object()
            .unwrap_or_else(|| panic!("job {name} sets its permissions"));
        for (scope, level) in perms {
            match level.as_str() {
                Some("read") => {}
                Some("write") => {
                    writes
                        .entry(scope.clone())
                        .or_default()
                        .insert(name.clone());
                }
                other => panic!("{name}: permission {scope}: {other:?}"),
            }
        }
    }
    let set = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<BTreeSet<_>>();
    let want: BTreeMap<String, BTreeSet<String>> = [
        ("contents".to_string(), set(&["release"])),
        ("packages".to_string(), set(&["image", "linux"])),
        ("id-token".to_string(), set(&["image", "release"])),
    ]
    .into();
    assert_eq!(writes, want, "write permissions per job");
    // Each job that may get an OIDC token uses it to sign, keylessly.
    for name in &want["id-token"] {
        let job = job(&w, name);
        assert_eq!(uses(job, "sigstore/cosign-installer").len(), 1, "{name}");
        let s = scripts(job);
        assert!(
            s.contains("cosign sign") && !s.contains("--key"),
            "{name}: {s}"
        );
    }
}

/// `uses:` values of a workflow's text, with the rest of their line.
fn uses_lines(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let t = l.trim_start().trim_start_matches("- ");
            let rest = t.strip_prefix("uses:")?.trim();
            let (value, comment) = rest.split_once(' ').unwrap_or((rest, ""));
            Some((value.to_string(), comment.trim().to_string()))
        })
        .collect()
}

fn is_release(s: &str) -> bool {
    s.strip_prefix('v').is_some_and(|v| {
        !v.is_empty()
            && v.split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// Why a `uses:` line is not pinned, if it isn't.
fn unpinned(value: &str, comment: &str) -> Option<String> {
    let Some((action, pin)) = value.split_once('@') else {
        return Some(format!("{value}: no @pin"));
    };
    if action.starts_with("./") {
        return None;
    }
    if pin.len() != 40
        || !pin
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    {
        return Some(format!("{value}: not pinned by a full commit SHA"));
    }
    match comment.strip_prefix('#').map(str::trim) {
        Some(v) if is_release(v) => None,
        _ => Some(format!(
            "{value}: the comment must name the release (# vX.Y.Z)"
        )),
    }
}

fn workflow_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(root().join(".github/workflows"))
        .expect(".github/workflows")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yml" || x == "yaml"))
        .collect();
    files.sort();
    files
}

/// Every step's `uses:` in a parsed workflow.
fn parsed_uses(w: &Value) -> Vec<String> {
    w["jobs"]
        .as_object()
        .into_iter()
        .flatten()
        .flat_map(|(_, j)| j["steps"].as_array().into_iter().flatten())
        .filter_map(|s| s["uses"].as_str().map(String::from))
        .collect()
}

#[test]
fn every_action_in_every_workflow_is_pinned_by_sha() {
    let files = workflow_files();
    assert!(files.len() >= 2, "release.yml and e2e.yml: {files:?}");
    let mut pins: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for path in files {
        let text = fs::read_to_string(&path).expect("read");
        let lines = uses_lines(&text);
        // The text scan sees every `uses:` the parser sees (jobs are a
        // map, so compare sorted).
        let mut parsed = parsed_uses(&yaml(&text, &path.display().to_string()));
        let mut scanned: Vec<String> = lines.iter().map(|(v, _)| v.clone()).collect();
        parsed.sort();
        scanned.sort();
        assert_eq!(scanned, parsed, "{}", path.display());
        for (value, comment) in &lines {
            if let Some(why) = unpinned(value, comment) {
                panic!("{}: {why}", path.display());
            }
            let (action, pin) = value.split_once('@').expect("pinned");
            pins.entry(action.into())
                .or_default()
                .insert(format!("{pin} {comment}"));
        }
    }
    for (action, versions) in &pins {
        assert_eq!(
            versions.len(),
            1,
            "{action} is pinned to several commits: {versions:?}"
        );
    }
    for action in [
        "actions/checkout",
        "docker/build-push-action",
        "anchore/sbom-action",
        "sigstore/cosign-installer",
    ] {
        assert!(pins.contains_key(action), "{action} is used");
    }
}

#[test]
fn pin_check_catches_tags_branches_and_short_shas() {
    let sha = "3d3c42e5aac5ba805825da76410c181273ba90b1";
    assert_eq!(
        unpinned(&format!("actions/checkout@{sha}"), "# v7.0.1"),
        None
    );
    for (value, comment) in [
        ("actions/checkout@v4", "# v4"),
        ("actions/checkout@main", ""),
        ("actions/checkout@3d3c42e", "# v7.0.1"),
        ("actions/checkout", ""),
        (
            &format!("actions/checkout@{}", sha.to_uppercase()),
            "# v7.0.1",
        ),
        (&format!("actions/checkout@{sha}"), ""),
        (&format!("actions/checkout@{sha}"), "# latest"),
    ] {
        assert!(unpinned(value, comment).is_some(), "{value} {comment}");
    }
    let lines = uses_lines("steps:\n  - uses: a/b@c # v1\n  - name: x\n    uses: d/e@f\n");
    assert_eq!(
        lines,
        [
            ("a/b@c".into(), "# v1".into()),
            ("d/e@f".into(), String::new())
        ]
    );
}

#[test]
fn image_goes_to_the_registry_the_manifests_name() {
    let w = workflow();
    let image = w["env"]["IMAGE"].as_str().expect("env.IMAGE");
    let deployment = yaml(&read("deploy/base/deployment.yaml"), "deployment.yaml");
    let runs = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .expect("the Deployment's image");
    let (repo, tag) = runs.rsplit_once(':').expect("a tagged image");
    assert_eq!(
        image, repo,
        "the workflow pushes the image deploy/base runs"
    );
    let cargo = read("Cargo.toml");
    assert!(
        cargo.contains(&format!("\nversion = \"{tag}\"\n")),
        "deploy/base runs the crate's version ({tag})"
    );

    let linux = job(&w, "linux");
    let [build] = uses(linux, "docker/build-push-action")[..] else {
        panic!("one build-push step in linux");
    };
    assert_eq!(build["with"]["platforms"], "linux/${{ matrix.arch }}");
    let outputs = build["with"]["outputs"].as_str().expect("outputs");
    assert!(
        outputs.contains("name=${{ env.IMAGE }}") && outputs.contains("push=true"),
        "{outputs}"
    );
    assert_eq!(
        uses(linux, "docker/login-action")[0]["with"]["registry"],
        "ghcr.io"
    );
    assert!(image.starts_with("ghcr.io/"));
    // The multi-arch index joins both platforms' digests under the version.
    let index = scripts(job(&w, "image"));
    assert!(
        index.contains("imagetools create --tag \"$IMAGE:$version\""),
        "{index}"
    );
    for arch in ["amd64", "arm64"] {
        assert!(
            index.contains(&format!("digests/linux-{arch}")),
            "{arch}: {index}"
        );
    }
    assert!(
        index.contains("cosign sign --yes --recursive \"$IMAGE@$DIGEST\""),
        "{index}"
    );
    assert!(
        index.contains("cosign attest --yes --type spdxjson"),
        "{index}"
    );
    // The Linux binaries are the images' own, and static.
    let take = scripts(linux);
    assert!(
        take.contains("docker cp \"$id:/usr/local/bin/imagedrift\""),
        "{take}"
    );
    assert!(
        take.contains("readelf -d imagedrift | grep -q NEEDED"),
        "{take}"
    );
}

/// The artefact names the release job checks before publishing.
fn expected_artefacts(w: &Value, tag: &str) -> BTreeSet<String> {
    let s = scripts(job(w, "release"));
    let block = s
        .split_once("expected=\"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(b, _)| b)
        .expect("the release job lists the expected artefacts");
    block
        .split_whitespace()
        .map(|f| f.replace("$t", tag))
        .collect()
}

#[test]
fn release_publishes_the_artefact_list() {
    let w = workflow();
    let tag = "v1.2.3";
    let got = expected_artefacts(&w, tag);
    let mut want: BTreeSet<String> = BTreeSet::new();
    for platform in ["linux-amd64", "linux-arm64", "darwin-amd64", "darwin-arm64"] {
        want.insert(format!("imagedrift-{tag}-{platform}.tar.gz"));
    }
    for arch in ["amd64", "arm64"] {
        want.insert(format!("imagedrift-{tag}-linux-{arch}.image.spdx.json"));
    }
    for f in [
        format!("imagedrift-{tag}.spdx.json"),
        "sha256sums.txt".into(),
        "sha256sums.txt.sigstore.json".into(),
        "imagedrift.yaml".into(),
    ] {
        want.insert(f);
    }
    assert_eq!(got, want);

    // Where each comes from.
    let linux = scripts(job(&w, "linux"));
    let macos = scripts(job(&w, "macos"));
    for (s, os) in [(&linux, "linux"), (&macos, "darwin")] {
        let tar = s
            .lines()
            .find(|l| l.contains("tar -czf"))
            .unwrap_or_else(|| panic!("{os}: packaging"));
        assert!(
            tar.contains(&format!(
                "\"dist/imagedrift-$GITHUB_REF_NAME-{os}-$ARCH.tar.gz\""
            )),
            "{tar}"
        );
        assert!(
            tar.contains(" imagedrift LICENSE "),
            "the archive holds the binary and LICENSE: {tar}"
        );
    }
    let release = job(&w, "release");
    let s = scripts(release);
    assert!(
        s.contains("sha256sum -- imagedrift-*.tar.gz imagedrift-*.spdx.json > sha256sums.txt"),
        "{s}"
    );
    assert!(s.contains("bash scripts/krew-manifest.sh"), "{s}");
    assert!(
        s.contains(
            "cosign sign-blob --yes --bundle dist/sha256sums.txt.sigstore.json dist/sha256sums.txt"
        ),
        "{s}"
    );
    assert!(
        s.contains("gh release create \"$GITHUB_REF_NAME\" --verify-tag"),
        "{s}"
    );
    let sboms: Vec<&Value> = [job(&w, "linux"), release]
        .into_iter()
        .flat_map(|j| uses(j, "anchore/sbom-action"))
        .collect();
    assert_eq!(sboms.len(), 2, "image SBOMs and the source SBOM");
    for s in sboms {
        assert_eq!(s["with"]["format"], "spdx-json");
        assert_eq!(
            s["with"]["upload-release-assets"], false,
            "published once, by gh"
        );
    }
}

/// Runs scripts/krew-manifest.sh; (exit ok, stdout, stderr).
fn krew_manifest(tag: &str, sums: &str) -> (bool, String, String) {
    let dir = std::env::temp_dir().join(format!("imagedrift-krew-{}-{tag}", std::process::id()));
    fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("sha256sums.txt");
    fs::write(&file, sums).expect("write sums");
    let out = Command::new("bash")
        .arg(root().join("scripts/krew-manifest.sh"))
        .args([
            tag,
            "https://example.invalid/download/",
            file.to_str().unwrap(),
        ])
        .output()
        .expect("bash runs");
    fs::remove_dir_all(&dir).expect("clean up");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const PLATFORMS: [(&str, &str); 4] = [
    ("linux", "amd64"),
    ("linux", "arm64"),
    ("darwin", "amd64"),
    ("darwin", "arm64"),
];

fn fake_sums(tag: &str) -> (String, BTreeMap<String, String>) {
    let mut by_file = BTreeMap::new();
    let mut text = String::new();
    for (i, (os, arch)) in PLATFORMS.iter().enumerate() {
        let sha = format!("{i:x}").repeat(64);
        let file = format!("imagedrift-{tag}-{os}-{arch}.tar.gz");
        text.push_str(&format!("{sha}  {file}\n"));
        by_file.insert(file, sha);
    }
    text.push_str(&format!("{}  imagedrift-{tag}.spdx.json\n", "f".repeat(64)));
    (text, by_file)
}

#[test]
fn krew_manifest_is_filled_from_the_checksums() {
    let tag = "v9.8.7";
    let (sums, by_file) = fake_sums(tag);
    let (ok, out, err) = krew_manifest(tag, &sums);
    assert!(ok, "{err}");
    assert!(!out.contains("{{"), "placeholders left:\n{out}");
    let m = yaml(&out, "the filled krew manifest");
    assert_eq!(
        m["apiVersion"],
        "krew.googlecontainertools.github.com/v1alpha2"
    );
    assert_eq!(m["kind"], "Plugin");
    assert_eq!(m["metadata"]["name"], "imagedrift", "kubectl imagedrift");
    assert_eq!(m["spec"]["version"], tag);
    for key in ["homepage", "shortDescription", "description"] {
        assert!(
            m["spec"][key].as_str().is_some_and(|s| !s.is_empty()),
            "spec.{key}"
        );
    }
    let platforms = m["spec"]["platforms"].as_array().expect("platforms");
    let mut seen = BTreeSet::new();
    for p in platforms {
        let os = p["selector"]["matchLabels"]["os"].as_str().expect("os");
        let arch = p["selector"]["matchLabels"]["arch"].as_str().expect("arch");
        seen.insert((os.to_string(), arch.to_string()));
        let file = format!("imagedrift-{tag}-{os}-{arch}.tar.gz");
        assert_eq!(p["uri"], format!("https://example.invalid/download/{file}"));
        assert_eq!(p["sha256"], by_file[&file].as_str(), "{file}");
        assert_eq!(p["bin"], "kubectl-imagedrift");
        let files = p["files"].as_array().expect("files");
        assert!(files.contains(&json!({"from": "imagedrift", "to": "kubectl-imagedrift"})));
        assert!(files.contains(&json!({"from": "LICENSE", "to": "."})));
    }
    let want: BTreeSet<(String, String)> = PLATFORMS
        .iter()
        .map(|(o, a)| (o.to_string(), a.to_string()))
        .collect();
    assert_eq!(seen, want);
    // What the manifest downloads is what the release publishes.
    let published = expected_artefacts(&workflow(), tag);
    for file in by_file.keys() {
        assert!(published.contains(file), "{file} is not published");
    }
}

#[test]
fn krew_manifest_refuses_a_missing_checksum_or_a_bad_tag() {
    let tag = "v9.8.7";
    let (sums, _) = fake_sums(tag);
    let without_darwin_arm64: String = sums
        .lines()
        .filter(|l| !l.contains("darwin-arm64"))
        .map(|l| format!("{l}\n"))
        .collect();
    let (ok, out, err) = krew_manifest(tag, &without_darwin_arm64);
    assert!(!ok, "{out}");
    assert!(
        err.contains("no checksum for \"imagedrift-v9.8.7-darwin-arm64.tar.gz\""),
        "{err}"
    );
    let (ok, _, err) = krew_manifest("9.8.7", &sums);
    assert!(!ok);
    assert!(err.contains("is not vX.Y.Z"), "{err}");
    let (ok, _, err) = krew_manifest(tag, "not-a-sum  imagedrift-v9.8.7-linux-amd64.tar.gz\n");
    assert!(!ok);
    assert!(err.contains("not a SHA-256"), "{err}");
}
