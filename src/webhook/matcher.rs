//! Which normalised references a push may concern. A registry names itself
//! by the host its pusher used; imagedrift names it by the host written in
//! the pods' image references, which the per-host `endpoint` overrides map
//! onto the address actually asked (`registries.hosts.<host>.endpoint`).
//! So a push announced by `127.0.0.1:5000` also concerns every host whose
//! endpoint is `http://127.0.0.1:5000`. Normalisation is the reference
//! module's (`docker.io/library/`, `index.docker.io`).

use super::Push;
use crate::reference::ImageRef;
use crate::registry::RegistriesConfig;
use std::collections::BTreeMap;

/// Maps pushes to candidate normalised references.
#[derive(Clone, Debug, Default)]
pub struct Matcher {
    /// Endpoint authority (lowercase `host[:port]`) → hosts configured with it.
    aliases: BTreeMap<String, Vec<String>>,
}

/// `host[:port]` of an endpoint URL, lowercased, default ports dropped.
fn authority(endpoint: &str) -> Option<String> {
    let (scheme, rest) = endpoint.split_once("://")?;
    let host = rest.split(['/', '?', '#']).next()?.to_ascii_lowercase();
    let default = match scheme {
        "https" => ":443",
        "http" => ":80",
        _ => "",
    };
    let host = match host.strip_suffix(default) {
        Some(h) if !default.is_empty() => h.to_string(),
        _ => host,
    };
    (!host.is_empty()).then_some(host)
}

impl Matcher {
    /// A matcher for the hosts of `registries`.
    pub fn new(registries: &RegistriesConfig) -> Matcher {
        let mut aliases: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (label, hc) in &registries.hosts {
            if let Some(a) = hc.endpoint.as_deref().and_then(authority) {
                aliases.entry(a).or_default().push(label.clone());
            }
        }
        Matcher { aliases }
    }

    /// The normalised references (`ImageRef`'s `Display`) `push` may
    /// concern: the push as named, and as named through each host whose
    /// endpoint is the pushed-to host. Unparseable names yield nothing.
    pub fn candidates(&self, push: &Push) -> Vec<String> {
        let host = push.host.to_ascii_lowercase();
        let mut hosts = vec![host.clone()];
        if let Some(labels) = self.aliases.get(&host) {
            hosts.extend(labels.iter().cloned());
        }
        let mut out: Vec<String> = hosts
            .iter()
            .filter_map(|h| {
                ImageRef::parse(&format!("{h}/{}:{}", push.repository, push.tag))
                    .ok()
                    .map(|r| r.to_string())
            })
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(host: &str, repo: &str, tag: &str) -> Push {
        Push {
            host: host.into(),
            repository: repo.into(),
            tag: tag.into(),
        }
    }

    #[test]
    fn docker_hub_names_normalise() {
        let m = Matcher::default();
        assert_eq!(
            m.candidates(&push("docker.io", "nginx", "1.27")),
            vec!["docker.io/library/nginx:1.27"]
        );
        assert_eq!(
            m.candidates(&push("index.docker.io", "library/nginx", "1.27")),
            vec!["docker.io/library/nginx:1.27"]
        );
        assert_eq!(
            m.candidates(&push("Registry.Example:5000", "team/app", "v1")),
            vec!["registry.example:5000/team/app:v1"]
        );
        assert!(m.candidates(&push("h", "UPPER/case", "v1")).is_empty());
    }

    #[test]
    fn endpoint_overrides_are_aliases() {
        let cfg: RegistriesConfig = serde_saphyr::from_str(
            "hosts:\n  registry.example:\n    endpoint: http://127.0.0.1:5000\n  docker.io:\n    endpoint: https://mirror.internal:443/\n",
        )
        .unwrap();
        let m = Matcher::new(&cfg);
        assert_eq!(
            m.candidates(&push("127.0.0.1:5000", "team/app", "v1")),
            vec!["127.0.0.1:5000/team/app:v1", "registry.example/team/app:v1"]
        );
        assert_eq!(
            m.candidates(&push("mirror.internal", "library/nginx", "1")),
            vec![
                "docker.io/library/nginx:1",
                "mirror.internal/library/nginx:1"
            ]
        );
        assert_eq!(
            m.candidates(&push("127.0.0.1:5001", "team/app", "v1")),
            vec!["127.0.0.1:5001/team/app:v1"]
        );
    }
}
