//! A docker `config.json` as people have it: `auths`, plus `credHelpers`
//! (registry host → helper) and `credsStore` (the helper for every other
//! registry), asked as the docker CLI does: `docker-credential-<helper> get`
//! with the server on stdin, `{"ServerURL","Username","Secret"}` on stdout
//! (`Username` `<token>` means `Secret` is an identity token).
//!
//! A helper's answer is reused for [`HELPER_CACHE`] (docker asks on every
//! pull; a controller checks every few minutes, and helpers such as
//! ecr-login are slow); a failure for `registries.defaults.failureTtl`.

use super::exec::{self, ExecError};
use super::{Counters, CredentialsError};
use crate::facts::{Credential, FailureCategory, LookupFailure, Secret};
use crate::keyring::Keyring;
use crate::reference::{DOCKER_HUB, ImageRef};
use crate::registry::Clock;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// How long a credential helper's answer is reused.
pub const HELPER_CACHE: Duration = Duration::from_secs(300);

/// The server name docker hands helpers for Docker Hub.
const DOCKER_HUB_SERVER: &str = "https://index.docker.io/v1/";

/// One lock per (helper, server): lookups of one key wait for each other.
type Flight = Arc<tokio::sync::Mutex<()>>;

type HelperAnswer = Result<Option<Credential>, LookupFailure>;

/// One parsed docker config file.
pub struct DockerConfig {
    /// The file, for messages.
    pub path: PathBuf,
    auths: Keyring,
    creds_store: Option<String>,
    /// Normalised registry host → helper name.
    cred_helpers: BTreeMap<String, String>,
    timeout: Duration,
    failure_ttl: Duration,
    /// (helper, server) → (answer, expiry)
    cache: Mutex<HashMap<(String, String), (HelperAnswer, Instant)>>,
    flights: Mutex<HashMap<(String, String), Flight>>,
}

/// A registry host as docker config keys write it: no scheme, no path,
/// Docker Hub's aliases as `docker.io`.
fn host_of(key: &str) -> String {
    let k = key.trim();
    let k = k
        .strip_prefix("https://")
        .or_else(|| k.strip_prefix("http://"))
        .unwrap_or(k);
    let host = k.split('/').next().unwrap_or(k).to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB.to_string(),
        _ => host,
    }
}

fn helper_name(path: &Path, key: &str, v: &serde_json::Value) -> Result<String, CredentialsError> {
    match v.as_str() {
        Some(s)
            if !s.is_empty() && !s.contains(['/', '\\']) && !s.contains(char::is_whitespace) =>
        {
            Ok(s.to_string())
        }
        _ => Err(CredentialsError::DockerConfig {
            path: path.to_path_buf(),
            problem: format!(
                "{key} must name a helper (docker-credential-<name> on PATH), got {v}"
            ),
        }),
    }
}

impl DockerConfig {
    /// Parses a config file's bytes. With `require_entries`, a file with
    /// none of `auths`, `credsStore`, `credHelpers` is an error (a
    /// configured credentials file that says nothing is a mistake).
    pub fn parse(
        bytes: &[u8],
        path: &Path,
        origin: &str,
        require_entries: bool,
        timeout: Duration,
        failure_ttl: Duration,
    ) -> Result<DockerConfig, CredentialsError> {
        let v: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| CredentialsError::DockerConfig {
                path: path.to_path_buf(),
                problem: format!("not valid JSON (line {}, column {})", e.line(), e.column()),
            })?;
        let Some(obj) = v.as_object() else {
            return Err(CredentialsError::DockerConfig {
                path: path.to_path_buf(),
                problem: "not a JSON object".into(),
            });
        };
        let auths = match obj.get("auths") {
            Some(_) => Keyring::from_docker_config_json(bytes, origin)
                .map_err(CredentialsError::Keyring)?,
            None => Keyring::default(),
        };
        let creds_store = match obj.get("credsStore") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) if s.is_empty() => None,
            Some(v) => Some(helper_name(path, "credsStore", v)?),
        };
        let mut cred_helpers = BTreeMap::new();
        match obj.get("credHelpers") {
            None | Some(serde_json::Value::Null) => {}
            Some(serde_json::Value::Object(m)) => {
                for (host, v) in m {
                    let helper = helper_name(path, &format!("credHelpers.{host:?}"), v)?;
                    cred_helpers.insert(host_of(host), helper);
                }
            }
            Some(_) => {
                return Err(CredentialsError::DockerConfig {
                    path: path.to_path_buf(),
                    problem: "credHelpers is not an object".into(),
                });
            }
        }
        if require_entries
            && obj.get("auths").is_none()
            && creds_store.is_none()
            && cred_helpers.is_empty()
        {
            return Err(CredentialsError::DockerConfig {
                path: path.to_path_buf(),
                problem: "none of \"auths\", \"credsStore\", \"credHelpers\" (expected a docker config.json: {\"auths\": {…}})".into(),
            });
        }
        Ok(DockerConfig {
            path: path.to_path_buf(),
            auths,
            creds_store,
            cred_helpers,
            timeout,
            failure_ttl,
            cache: Mutex::new(HashMap::new()),
            flights: Mutex::new(HashMap::new()),
        })
    }

    /// The helper docker would ask for `image`'s registry, and the server
    /// name it would hand it.
    pub fn helper_for(&self, image: &ImageRef) -> Option<(String, String)> {
        let host = image.domain().to_ascii_lowercase();
        let server = if host == DOCKER_HUB {
            DOCKER_HUB_SERVER.to_string()
        } else {
            image.domain().to_string()
        };
        self.cred_helpers
            .get(&host)
            .or(self.creds_store.as_ref())
            .map(|h| (h.clone(), server))
    }

    /// Whether anything in the file may apply to `image`.
    pub fn may_match(&self, image: &ImageRef) -> bool {
        self.helper_for(image).is_some() || !self.auths.lookup(image).is_empty()
    }

    /// The credentials for `image`: the helper's answer first (as docker
    /// prefers it), then matching `auths` entries.
    pub async fn credentials(
        &self,
        image: &ImageRef,
        clock: &dyn Clock,
        counters: &Counters,
    ) -> (Vec<Credential>, Option<LookupFailure>) {
        let mut creds = Vec::new();
        let mut failure = None;
        if let Some((helper, server)) = self.helper_for(image) {
            match self.ask_helper(&helper, &server, clock, counters).await {
                Ok(Some(c)) => creds.push(c),
                Ok(None) => {}
                Err(f) => failure = Some(f),
            }
        }
        for c in self.auths.lookup(image) {
            if !creds.contains(&c) {
                creds.push(c);
            }
        }
        (creds, failure)
    }

    async fn ask_helper(
        &self,
        helper: &str,
        server: &str,
        clock: &dyn Clock,
        counters: &Counters,
    ) -> HelperAnswer {
        let key = (helper.to_string(), server.to_string());
        let cached = |now| {
            self.cache
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&key)
                .filter(|(_, exp)| *exp > now)
                .map(|(a, _)| a.clone())
        };
        if let Some(a) = cached(clock.now()) {
            return a;
        }
        let flight = self
            .flights
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key.clone())
            .or_default()
            .clone();
        let _turn = flight.lock().await;
        if let Some(a) = cached(clock.now()) {
            return a;
        }
        let program = format!("docker-credential-{helper}");
        counters.execs.with_label_values(&[&program]).inc();
        let answer = self.exec_helper(&program, server).await;
        if let Err(f) = &answer {
            counters.failures.with_label_values(&[&program]).inc();
            tracing::warn!(helper = %program, server, error = %f.detail, "docker credential helper failed");
        }
        let ttl = if answer.is_ok() {
            HELPER_CACHE
        } else {
            self.failure_ttl
        };
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.insert(
            key,
            (answer.clone(), crate::registry::until(clock.now(), ttl)),
        );
        answer
    }

    async fn exec_helper(&self, program: &str, server: &str) -> HelperAnswer {
        let origin = format!(
            "{} credential helper {program} for {server}",
            self.path.display()
        );
        let fail = |detail: String| {
            LookupFailure::new(
                FailureCategory::CredentialProvider,
                format!(
                    "credential helper {program} (from {}): {detail}",
                    self.path.display()
                ),
            )
        };
        let stdout = match exec::run(
            Path::new(program),
            &["get".to_string()],
            &[],
            server.as_bytes(),
            self.timeout,
        )
        .await
        {
            Ok(out) => out,
            // docker-credential-helpers' ErrCredentialsNotFound: nothing
            // stored for this server, which is not a failure.
            Err(ExecError::Exit { stdout, .. }) if stdout.contains("credentials not found") => {
                return Ok(None);
            }
            Err(ExecError::Exit { status, stderr, .. }) => {
                return Err(fail(format!("exited with {status}: {stderr}")));
            }
            Err(e) => return Err(fail(e.to_string())),
        };
        #[derive(serde::Deserialize)]
        struct Answer {
            #[serde(rename = "Username", default)]
            username: String,
            #[serde(rename = "Secret", default)]
            secret: String,
        }
        let a: Answer = serde_json::from_slice(&stdout)
            .map_err(|e| fail(format!("printed no valid answer ({e})")))?;
        if a.secret.is_empty() {
            return Ok(None);
        }
        let secret = if a.username == "<token>" {
            Secret::IdentityToken(a.secret)
        } else {
            Secret::Basic {
                username: a.username,
                password: a.secret,
            }
        };
        Ok(Some(Credential { secret, origin }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(json: &str, require: bool) -> Result<DockerConfig, String> {
        DockerConfig::parse(
            json.as_bytes(),
            Path::new("/home/u/.docker/config.json"),
            "docker config /home/u/.docker/config.json",
            require,
            Duration::from_secs(5),
            Duration::from_secs(30),
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn helpers_are_chosen_as_docker_does() {
        let c = cfg(
            r#"{"credsStore":"desktop","credHelpers":{"123.dkr.ecr.us-east-1.amazonaws.com":"ecr-login","https://gcr.io":"gcloud"}}"#,
            true,
        )
        .unwrap();
        let h = |i: &str| c.helper_for(&ImageRef::parse(i).unwrap());
        assert_eq!(
            h("123.dkr.ecr.us-east-1.amazonaws.com/app:v1"),
            Some((
                "ecr-login".into(),
                "123.dkr.ecr.us-east-1.amazonaws.com".into()
            ))
        );
        assert_eq!(h("gcr.io/p/app"), Some(("gcloud".into(), "gcr.io".into())));
        assert_eq!(
            h("nginx"),
            Some(("desktop".into(), DOCKER_HUB_SERVER.into()))
        );
        let c = cfg(r#"{"credHelpers":{"gcr.io":"gcloud"}}"#, true).unwrap();
        assert_eq!(c.helper_for(&ImageRef::parse("quay.io/a/b").unwrap()), None);
    }

    #[test]
    fn bad_files_name_the_file_and_field() {
        for (json, want) in [
            ("{", "not valid JSON"),
            ("[]", "not a JSON object"),
            (r#"{"credsStore":"../evil"}"#, "credsStore"),
            (r#"{"credHelpers":{"gcr.io":5}}"#, "credHelpers.\"gcr.io\""),
            (r#"{"credHelpers":[]}"#, "credHelpers is not an object"),
            (r#"{"currentContext":"x"}"#, "none of"),
        ] {
            let e = cfg(json, true)
                .err()
                .unwrap_or_else(|| panic!("accepted {json}"));
            assert!(
                e.contains("/home/u/.docker/config.json") && e.contains(want),
                "{e}"
            );
        }
        // The CLI's default ~/.docker/config.json may hold nothing.
        assert!(cfg(r#"{"currentContext":"x"}"#, false).is_ok());
    }
}
