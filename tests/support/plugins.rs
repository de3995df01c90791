//! Fake credential programs for the tests: kubelet credential-provider
//! plugins and docker credential helpers as small shell scripts in a temp
//! dir. Each records its runs in `<script>.count` and its last stdin in
//! `<script>.req`; an answering plugin prints `<script>.answer`.

use std::path::{Path, PathBuf};

pub const PLUGIN_API: &str = "credentialprovider.kubelet.k8s.io/v1";

/// Writes an executable script (via a rename, so it is never run half-written).
pub fn write_exec(path: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("#!/bin/sh\n{body}\n")).expect("write script");
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::rename(&tmp, path).expect("rename script");
}

/// A plugin that records the run and prints its `.answer` file.
pub fn answering_plugin(bin: &Path, name: &str, answer: &str) -> PathBuf {
    let path = bin.join(name);
    std::fs::write(path.with_extension("answer"), answer).expect("answer");
    write_exec(
        &path,
        r#"cat > "$0.req"
echo run >> "$0.count"
[ -n "$PLUGIN_DELAY" ] && sleep "$PLUGIN_DELAY"
cat "$0.answer""#,
    );
    path
}

/// A CredentialProviderResponse.
pub fn response(key_type: &str, duration: Option<&str>, auth: &[(&str, &str, &str)]) -> String {
    let auth: serde_json::Map<String, serde_json::Value> = auth
        .iter()
        .map(|(k, u, p)| {
            (
                k.to_string(),
                serde_json::json!({"username": u, "password": p}),
            )
        })
        .collect();
    let mut v = serde_json::json!({
        "kind": "CredentialProviderResponse",
        "apiVersion": PLUGIN_API,
        "cacheKeyType": key_type,
        "auth": auth,
    });
    if let Some(d) = duration {
        v["cacheDuration"] = serde_json::json!(d);
    }
    v.to_string()
}

/// How many times the script at `path` ran.
pub fn runs(path: &Path) -> usize {
    std::fs::read_to_string(path.with_extension("count"))
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

/// One provider entry of a CredentialProviderConfig.
pub struct Entry<'a> {
    pub name: &'a str,
    pub match_images: &'a [&'a str],
    pub default_cache_duration: &'a str,
    /// Extra YAML lines, indented under the entry (args, env).
    pub extra: &'a str,
}

/// Writes a CredentialProviderConfig with `entries` to `path`.
pub fn provider_config(path: &Path, entries: &[Entry]) {
    let mut y = String::from(
        "apiVersion: kubelet.config.k8s.io/v1\nkind: CredentialProviderConfig\nproviders:\n",
    );
    for e in entries {
        y.push_str(&format!(
            "  - name: {}\n    matchImages: {}\n    defaultCacheDuration: {}\n    apiVersion: {PLUGIN_API}\n{}",
            e.name,
            serde_json::to_string(e.match_images).unwrap(),
            e.default_cache_duration,
            e.extra
        ));
    }
    std::fs::write(path, y).expect("provider config");
}
