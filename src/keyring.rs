//! Registry credentials as kubelet finds them (SEMANTICS.md §5): pull
//! secrets of both docker types and docker `config.json` files, matched to
//! an image with kubelet's keyring rules (`pkg/credentialprovider`): keys
//! lose their scheme and `/v1/`/`/v2/`; host labels are globs matched label
//! by label; ports must be equal; the path is a plain prefix; every match
//! counts, most specific (reverse-sorted key) first. Pure: no I/O.

use crate::facts::{Credential, Secret};
use crate::reference::{DOCKER_HUB, ImageRef};
use std::collections::BTreeMap;

/// Why a secret or config file yields no credentials. Names the source and
/// the key, never a secret value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}: {problem}")]
pub struct KeyringError {
    /// Where the data came from (`secret team-a/regcred`, a file path).
    pub origin: String,
    /// What is wrong, naming the key at fault.
    pub problem: String,
}

/// Credentials by registry key, looked up for images.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Keyring {
    /// Normalised key (`host[:port][/path]`) → credentials, in insertion order.
    entries: BTreeMap<String, Vec<Credential>>,
}

fn err(origin: &str, problem: impl Into<String>) -> KeyringError {
    KeyringError {
        origin: origin.to_string(),
        problem: problem.into(),
    }
}

/// A key as kubelet stores it: no scheme, `/v1/` or `/v2/` reduced to the
/// host, Docker Hub's aliases as `docker.io`, host lowercased.
fn normalise_key(key: &str) -> String {
    let k = key.trim();
    let k = k
        .strip_prefix("https://")
        .or_else(|| k.strip_prefix("http://"))
        .unwrap_or(k);
    let (host, path) = match k.find('/') {
        Some(i) => (&k[..i], &k[i..]),
        None => (k, ""),
    };
    let path = if path.starts_with("/v2/") || path.starts_with("/v1/") {
        &path[3..]
    } else {
        path
    };
    let path = if path == "/" { "" } else { path };
    let mut host = host.to_ascii_lowercase();
    if host == "index.docker.io" || host == "registry-1.docker.io" {
        host = DOCKER_HUB.to_string();
    }
    format!("{host}{path}")
}

/// `filepath.Match` on one host label: `*`, `?` and `[...]` classes.
fn glob(pattern: &[char], text: &[char]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some(('*', rest)) => (0..=text.len()).any(|i| glob(rest, &text[i..])),
        Some(('?', rest)) => !text.is_empty() && glob(rest, &text[1..]),
        Some(('[', rest)) => {
            let Some((&c, text_rest)) = text.split_first() else {
                return false;
            };
            let Some(end) = rest.iter().skip(1).position(|&x| x == ']').map(|p| p + 1) else {
                return false;
            };
            let (class, after) = (&rest[..end], &rest[end + 1..]);
            let (negate, class) = match class.split_first() {
                Some(('^' | '!', cls)) => (true, cls),
                _ => (false, class),
            };
            let mut hit = false;
            let mut i = 0;
            while i < class.len() {
                if i + 2 < class.len() && class[i + 1] == '-' {
                    hit |= class[i] <= c && c <= class[i + 2];
                    i += 3;
                } else {
                    hit |= class[i] == c;
                    i += 1;
                }
            }
            hit != negate && glob(after, text_rest)
        }
        Some(('\\', rest)) if !rest.is_empty() => {
            text.first() == Some(&rest[0]) && glob(&rest[1..], &text[1..])
        }
        Some((p, rest)) => text.first() == Some(p) && glob(rest, &text[1..]),
    }
}

/// Splits `host[:port][/path]` into host labels, port and path.
fn split(s: &str) -> (Vec<&str>, &str, &str) {
    let (hostport, path) = match s.find('/') {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, ""),
    };
    // `[v6]:port` or `[v6]`: the brackets go, as Go's SplitHostPort drops them.
    let (host, port) = match hostport.strip_prefix('[').and_then(|r| r.split_once(']')) {
        Some((v6, rest)) => (v6, rest.strip_prefix(':').unwrap_or(rest)),
        None => hostport.rsplit_once(':').unwrap_or((hostport, "")),
    };
    (host.split('.').collect(), port, path)
}

/// kubelet's `URLsMatch`: same port, same number of labels each matching
/// its glob, and the key's path a prefix of the image's.
fn matches(key: &str, target: &str) -> bool {
    let (kl, kp, kpath) = split(key);
    let (tl, tp, tpath) = split(target);
    kp == tp
        && kl.len() == tl.len()
        && tpath.starts_with(kpath)
        && kl.iter().zip(&tl).all(|(g, t)| {
            let g: Vec<char> = g.chars().collect();
            let t: Vec<char> = t.chars().collect();
            glob(&g, &t)
        })
}

/// Whether a key or a credential provider's `matchImages` pattern matches
/// the repository name `host[:port]/path`, by kubelet's rules.
pub fn pattern_matches(pattern: &str, name: &str) -> bool {
    matches(&normalise_key(pattern), &normalise_key(name))
}

fn string_field(
    origin: &str,
    key: &str,
    entry: &serde_json::Map<String, serde_json::Value>,
    field: &str,
) -> Result<String, KeyringError> {
    match entry.get(field) {
        None | Some(serde_json::Value::Null) => Ok(String::new()),
        Some(serde_json::Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(err(
            origin,
            format!("key {key:?}: field {field:?} is not a string"),
        )),
    }
}

/// One entry of a docker config: `auth` (base64 `user:password`) wins over
/// `username`/`password`; an identity token is a refresh token; a registry
/// token is used as is. `None` for an entry with nothing in it.
fn entry_secret(
    origin: &str,
    key: &str,
    v: &serde_json::Value,
) -> Result<Option<Secret>, KeyringError> {
    use base64::Engine as _;
    let serde_json::Value::Object(entry) = v else {
        return Err(err(origin, format!("key {key:?}: entry is not an object")));
    };
    let f = |name| string_field(origin, key, entry, name);
    let (identity, registry, auth) = (f("identitytoken")?, f("registrytoken")?, f("auth")?);
    if !identity.is_empty() {
        return Ok(Some(Secret::IdentityToken(identity)));
    }
    if !registry.is_empty() {
        return Ok(Some(Secret::RegistryToken(registry)));
    }
    if !auth.is_empty() {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|_| {
                err(
                    origin,
                    format!("key {key:?}: field \"auth\" is not valid base64"),
                )
            })?;
        let text = String::from_utf8(decoded).map_err(|_| {
            err(
                origin,
                format!("key {key:?}: field \"auth\" does not decode to text"),
            )
        })?;
        let Some((username, password)) = text.split_once(':') else {
            return Err(err(
                origin,
                format!("key {key:?}: field \"auth\" does not decode to user:password"),
            ));
        };
        return Ok(Some(Secret::Basic {
            username: username.to_string(),
            password: password.to_string(),
        }));
    }
    let (username, password) = (f("username")?, f("password")?);
    if username.is_empty() && password.is_empty() {
        return Ok(None);
    }
    Ok(Some(Secret::Basic { username, password }))
}

impl Keyring {
    /// Reads a docker `config.json` (`{"auths": {…}}`).
    pub fn from_docker_config_json(bytes: &[u8], origin: &str) -> Result<Keyring, KeyringError> {
        let v: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
            err(
                origin,
                format!("not valid JSON (line {}, column {})", e.line(), e.column()),
            )
        })?;
        match v.get("auths") {
            Some(auths) => Keyring::from_auths(auths, origin),
            None => Err(err(
                origin,
                "no \"auths\" object (expected a docker config.json: {\"auths\": {…}})",
            )),
        }
    }

    /// Reads a pull secret's data: `kubernetes.io/dockerconfigjson`
    /// (`.dockerconfigjson`) or `kubernetes.io/dockercfg` (`.dockercfg`, the
    /// `auths` map without the wrapper).
    pub fn from_secret(
        secret_type: &str,
        data: &BTreeMap<String, Vec<u8>>,
        origin: &str,
    ) -> Result<Keyring, KeyringError> {
        let (key, wrapped) = match secret_type {
            "kubernetes.io/dockerconfigjson" => (".dockerconfigjson", true),
            "kubernetes.io/dockercfg" => (".dockercfg", false),
            other => {
                return Err(err(
                    origin,
                    format!(
                        "type {other:?} is not a pull secret type (use kubernetes.io/dockerconfigjson or kubernetes.io/dockercfg)"
                    ),
                ));
            }
        };
        let bytes = data
            .get(key)
            .ok_or_else(|| err(origin, format!("data key {key} is missing")))?;
        let origin_key = format!("{origin} {key}");
        if wrapped {
            Keyring::from_docker_config_json(bytes, &origin_key)
        } else {
            let v: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
                err(
                    &origin_key,
                    format!("not valid JSON (line {}, column {})", e.line(), e.column()),
                )
            })?;
            Keyring::from_auths(&v, &origin_key)
        }
    }

    fn from_auths(auths: &serde_json::Value, origin: &str) -> Result<Keyring, KeyringError> {
        let serde_json::Value::Object(map) = auths else {
            return Err(err(origin, "\"auths\" is not an object"));
        };
        let mut ring = Keyring::default();
        for (key, entry) in map {
            if let Some(secret) = entry_secret(origin, key, entry)? {
                let cred = Credential {
                    secret,
                    origin: format!("{origin} key {key}"),
                };
                ring.add(normalise_key(key), cred);
            }
        }
        Ok(ring)
    }

    fn add(&mut self, key: String, cred: Credential) {
        let list = self.entries.entry(key).or_default();
        if !list.iter().any(|c| c.secret == cred.secret) {
            list.push(cred);
        }
    }

    /// Adds `other`'s credentials after this keyring's own.
    pub fn extend(&mut self, other: Keyring) {
        for (key, creds) in other.entries {
            for c in creds {
                self.add(key.clone(), c);
            }
        }
    }

    /// Whether the keyring holds no credential.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every credential whose key matches `image`, most specific key first.
    pub fn lookup(&self, image: &ImageRef) -> Vec<Credential> {
        self.lookup_name(&image.name())
    }

    /// [`Keyring::lookup`] on a repository name `host[:port]/path`.
    pub fn lookup_name(&self, name: &str) -> Vec<Credential> {
        let target = normalise_key(name);
        self.entries
            .iter()
            .rev()
            .filter(|(key, _)| matches(key, &target))
            .flat_map(|(_, creds)| creds.iter().cloned())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn ring(keys: &[&str]) -> Keyring {
        let auths: serde_json::Map<String, serde_json::Value> = keys
            .iter()
            .map(|k| {
                (
                    k.to_string(),
                    serde_json::json!({"auth": b64(&format!("user:{k}"))}),
                )
            })
            .collect();
        let json = serde_json::json!({ "auths": auths }).to_string();
        Keyring::from_docker_config_json(json.as_bytes(), "test").unwrap()
    }

    /// The keys (as written) that match `image`, in lookup order.
    fn found(r: &Keyring, image: &str) -> Vec<String> {
        r.lookup_name(image)
            .into_iter()
            .map(|c| match c.secret {
                Secret::Basic { password, .. } => password,
                _ => unreachable!(),
            })
            .collect()
    }

    #[test]
    fn matching_follows_kubelet() {
        // (keys in the keyring, image name, keys that match in order)
        let rows: &[(&[&str], &str, &[&str])] = &[
            (
                &["registry.example"],
                "registry.example/app",
                &["registry.example"],
            ),
            (
                &["https://registry.example"],
                "registry.example/app",
                &["https://registry.example"],
            ),
            (
                &["http://registry.example/v2/"],
                "registry.example/app",
                &["http://registry.example/v2/"],
            ),
            (
                &["https://registry.example/v1/"],
                "registry.example/app",
                &["https://registry.example/v1/"],
            ),
            (&["registry.example"], "other.example/app", &[]),
            (&["*.example.com"], "a.example.com/app", &["*.example.com"]),
            (&["*.example.com"], "a.b.example.com/app", &[]),
            (&["*.example.com"], "example.com/app", &[]),
            (
                &["*.*.example.com"],
                "a.b.example.com/app",
                &["*.*.example.com"],
            ),
            (&["reg?.example"], "reg1.example/app", &["reg?.example"]),
            (
                &["reg[0-9].example"],
                "reg7.example/app",
                &["reg[0-9].example"],
            ),
            (&["reg[0-9].example"], "regx.example/app", &[]),
            (
                &["registry.example:5000"],
                "registry.example:5000/app",
                &["registry.example:5000"],
            ),
            (&["registry.example:5000"], "registry.example/app", &[]),
            (&["registry.example"], "registry.example:5000/app", &[]),
            (
                &["*.example:5000"],
                "r.example:5000/app",
                &["*.example:5000"],
            ),
            (&["quay.io/team"], "quay.io/team/app", &["quay.io/team"]),
            (&["quay.io/team"], "quay.io/other/app", &[]),
            // a plain prefix, as kubelet does
            (&["quay.io/team"], "quay.io/teamx/app", &["quay.io/team"]),
            (
                &["quay.io", "quay.io/team"],
                "quay.io/team/app",
                &["quay.io/team", "quay.io"],
            ),
            (
                &["quay.io", "quay.io/team", "quay.io/team/app"],
                "quay.io/team/app",
                &["quay.io/team/app", "quay.io/team", "quay.io"],
            ),
            (
                &["https://index.docker.io/v1/"],
                "docker.io/library/nginx",
                &["https://index.docker.io/v1/"],
            ),
            (
                &["index.docker.io"],
                "docker.io/org/app",
                &["index.docker.io"],
            ),
            (
                &["registry-1.docker.io"],
                "docker.io/org/app",
                &["registry-1.docker.io"],
            ),
            (&["docker.io"], "docker.io/org/app", &["docker.io"]),
            (&["docker.io/org"], "docker.io/org/app", &["docker.io/org"]),
            (&["docker.io/org"], "docker.io/library/nginx", &[]),
            (&["https://index.docker.io/v1/"], "quay.io/org/app", &[]),
            (
                &["a.example", "*.example"],
                "a.example/app",
                &["a.example", "*.example"],
            ),
            (
                &["REGISTRY.example"],
                "registry.example/app",
                &["REGISTRY.example"],
            ),
            (&["10.0.0.1:5000"], "10.0.0.1:5000/app", &["10.0.0.1:5000"]),
            (&["10.0.0.*:5000"], "10.0.0.1:5000/app", &["10.0.0.*:5000"]),
            // IPv6 literals: brackets are not glob classes (Go's SplitHostPort drops them).
            (
                &["[fd00::1]:5000"],
                "[fd00::1]:5000/app",
                &["[fd00::1]:5000"],
            ),
            (&["[fd00::1]"], "[fd00::1]/app", &["[fd00::1]"]),
            (&["[fd00::1]:5000"], "[fd00::2]:5000/app", &[]),
            (&["[fd00::1]"], "[fd00::1]:5000/app", &[]),
        ];
        for (keys, image, want) in rows {
            let r = ring(keys);
            assert_eq!(found(&r, image), *want, "keys {keys:?} image {image}");
        }
    }

    #[test]
    fn ipv6_registry_images_find_their_key() {
        let r = ring(&["[fd00::1]:5000"]);
        let image = ImageRef::parse("[fd00::1]:5000/team/app:v1").unwrap();
        assert_eq!(r.lookup(&image).len(), 1, "{}", image.name());
    }

    #[test]
    fn fields_decode() {
        let json = serde_json::json!({"auths": {
            "a.example": {"auth": b64("alice:pa:ss")},
            "b.example": {"username": "bob", "password": "pw"},
            "c.example": {"auth": b64("x:y"), "identitytoken": "refresh"},
            "d.example": {"registrytoken": "bearer"},
            "e.example": {"email": "only@example"},
        }})
        .to_string();
        let r = Keyring::from_docker_config_json(json.as_bytes(), "file /etc/creds.json").unwrap();
        let show = |s: &Secret| match s {
            Secret::Basic { username, password } => format!("basic {username} {password}"),
            Secret::IdentityToken(t) => format!("identity {t}"),
            Secret::RegistryToken(t) => format!("registry {t}"),
        };
        let one = |n: &str| {
            r.lookup_name(n)
                .into_iter()
                .next()
                .map(|c| (show(&c.secret), c.origin))
        };
        assert_eq!(
            one("a.example/x"),
            Some((
                "basic alice pa:ss".into(),
                "file /etc/creds.json key a.example".into()
            ))
        );
        assert_eq!(
            one("b.example/x").map(|c| c.0).as_deref(),
            Some("basic bob pw")
        );
        assert_eq!(
            one("c.example/x").map(|c| c.0).as_deref(),
            Some("identity refresh")
        );
        assert_eq!(
            one("d.example/x").map(|c| c.0).as_deref(),
            Some("registry bearer")
        );
        assert_eq!(one("e.example/x"), None);
    }

    #[test]
    fn secrets_of_both_types() {
        let cfgjson = serde_json::json!({"auths": {"r.example": {"auth": b64("u:p")}}}).to_string();
        let cfg = serde_json::json!({"r.example": {"auth": b64("u2:p2")}}).to_string();
        let mut a = Keyring::from_secret(
            "kubernetes.io/dockerconfigjson",
            &BTreeMap::from([(".dockerconfigjson".to_string(), cfgjson.into_bytes())]),
            "secret ns/new",
        )
        .unwrap();
        let b = Keyring::from_secret(
            "kubernetes.io/dockercfg",
            &BTreeMap::from([(".dockercfg".to_string(), cfg.into_bytes())]),
            "secret ns/old",
        )
        .unwrap();
        a.extend(b);
        let origins: Vec<String> = a
            .lookup_name("r.example/app")
            .into_iter()
            .map(|c| c.origin)
            .collect();
        assert_eq!(
            origins,
            [
                "secret ns/new .dockerconfigjson key r.example",
                "secret ns/old .dockercfg key r.example"
            ]
        );
    }

    #[test]
    fn errors_name_origin_and_key_never_the_value() {
        let data = |k: &str, v: &str| BTreeMap::from([(k.to_string(), v.as_bytes().to_vec())]);
        let cases = [
            (
                "kubernetes.io/dockerconfigjson",
                data(".dockercfg", "{}"),
                ".dockerconfigjson is missing",
            ),
            (
                "Opaque",
                data(".dockerconfigjson", "{}"),
                "not a pull secret type",
            ),
            (
                "kubernetes.io/dockerconfigjson",
                data(".dockerconfigjson", "{\"auths\": 5}"),
                "not an object",
            ),
            (
                "kubernetes.io/dockerconfigjson",
                data(".dockerconfigjson", "{not json s3cr3t"),
                "not valid JSON",
            ),
            (
                "kubernetes.io/dockerconfigjson",
                data(".dockerconfigjson", r#"{"x":1}"#),
                "no \"auths\"",
            ),
            (
                "kubernetes.io/dockerconfigjson",
                data(
                    ".dockerconfigjson",
                    r#"{"auths":{"r.example":{"auth":"!!s3cr3t!!"}}}"#,
                ),
                "key \"r.example\"",
            ),
            (
                "kubernetes.io/dockerconfigjson",
                data(
                    ".dockerconfigjson",
                    &format!(
                        r#"{{"auths":{{"r.example":{{"auth":"{}"}}}}}}"#,
                        b64("s3cr3t")
                    ),
                ),
                "user:password",
            ),
            (
                "kubernetes.io/dockercfg",
                data(".dockercfg", r#"{"r.example":{"password":12}}"#),
                "\"password\" is not a string",
            ),
        ];
        for (ty, d, want) in cases {
            let e = Keyring::from_secret(ty, &d, "secret team-a/regcred")
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("secret team-a/regcred"), "{e}");
            assert!(e.contains(want), "{e} lacks {want}");
            assert!(!e.contains("s3cr3t"), "{e} leaks the secret");
        }
    }
}
