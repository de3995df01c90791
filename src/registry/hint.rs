//! What to do about a failed registry lookup, in words an operator can act
//! on: which flag or configuration key, which name does not resolve, which
//! port refuses. Pure; `resolve`, `explain` and the Events' detail share it.

use crate::facts::FailureCategory;

/// Whether a lookup failure's detail is a name-resolution failure.
pub fn is_dns_failure(detail_lowercase: &str) -> bool {
    [
        "dns error",
        "failed to lookup address",
        "name or service not known",
        "no such host",
        "temporary failure in name resolution",
        "nodename nor servname",
    ]
    .iter()
    .any(|k| detail_lowercase.contains(k))
}

/// What to do about a failed lookup of `image` at `host`, in one or two
/// sentences; `detail` is the failure's message (any case).
pub fn for_failure(category: FailureCategory, host: &str, detail: &str, image: &str) -> String {
    let detail = detail.to_ascii_lowercase();
    let detail = detail.as_str();
    let creds = format!(
        "give imagedrift credentials for {host}: with scan/explain, --read-pull-secrets (the pods' imagePullSecrets), --creds FILE (a docker config.json) or --image-credential-provider-config/--image-credential-provider-bin-dir (the kubelet's credential-provider plugins: ECR, GCR/Artifact Registry, ACR); with run, the keys pullSecrets.enabled, registries.credentialsFile and registries.credentialProviders."
    );
    match category {
        FailureCategory::Unauthorized => {
            format!("{host} refused anonymous or wrong credentials: {creds}")
        }
        FailureCategory::Denied => {
            format!(
                "{host} accepted the credentials but denies pulling this repository: use credentials with pull access to it. {creds}"
            )
        }
        FailureCategory::NotFound => {
            format!(
                "{host} does not serve {image} (the tag or repository does not exist, or was deleted or renamed): pods already running it keep their cached content; point the workload at a tag that exists, or pin the digest it runs."
            )
        }
        FailureCategory::Unreachable if is_dns_failure(detail) => {
            format!(
                "the name {host} does not resolve where imagedrift runs: check the spelling, and whether it is a name only the nodes resolve; if the nodes pull through a mirror, point imagedrift at it with registries.hosts.\"{host}\".endpoint."
            )
        }
        FailureCategory::Unreachable if detail.contains("connection refused") => {
            format!(
                "nothing listens at {host}: check the port in the image reference, or set registries.hosts.\"{host}\".endpoint to where the registry really listens."
            )
        }
        FailureCategory::Unreachable => {
            format!(
                "imagedrift cannot connect to {host}: check egress from where it runs (a NetworkPolicy, a proxy: HTTPS_PROXY/NO_PROXY, a firewall)."
            )
        }
        FailureCategory::Timeout => {
            format!(
                "{host} did not answer in time: check egress to it, or raise registries.hosts.\"{host}\".timeout for a slow registry."
            )
        }
        FailureCategory::Tls => {
            format!(
                "TLS with {host} failed: for a private CA set registries.hosts.\"{host}\".caBundle; for a registry that speaks plain HTTP set registries.hosts.\"{host}\".insecureHttp: true."
            )
        }
        FailureCategory::RateLimited => {
            format!(
                "{host} limits requests (HTTP 429): imagedrift backs off by itself; authenticated pulls get higher limits (Docker Hub), and registries.hosts.\"{host}\".requestsPerSecond caps the rate. {creds}"
            )
        }
        FailureCategory::ServerError => {
            format!(
                "{host} answered with a server error (5xx): the fault is on the registry's side; imagedrift checks again each interval and reports if it lasts."
            )
        }
        FailureCategory::InvalidResponse => {
            format!(
                "{host} answered something that is not the registry API (a proxy's page, or a wrong endpoint): check registries.hosts.\"{host}\".endpoint."
            )
        }
        FailureCategory::InvalidReference => {
            "fix the image reference in the pod spec: it is not a valid reference.".into()
        }
        FailureCategory::CredentialProvider => {
            "the kubelet credential-provider plugin failed (see the detail): check its configuration (--image-credential-provider-config, or registries.credentialProviders) and that the plugin binary runs on its own.".into()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_failures_are_told_apart() {
        assert!(is_dns_failure(
            "get https://nope.invalid/v2/: error sending request: client error (connect): dns error: failed to lookup address information: name or service not known"
        ));
        assert!(!is_dns_failure("tcp connect error: connection refused"));
    }

    #[test]
    fn each_hint_names_what_to_change() {
        let h = |c, d: &str| for_failure(c, "reg.example:5000", d, "reg.example:5000/app:v1");
        let unauthorized = h(FailureCategory::Unauthorized, "HTTP 401");
        for flag in [
            "--read-pull-secrets",
            "--creds",
            "--image-credential-provider-config",
            "registries.credentialsFile",
            "pullSecrets.enabled",
        ] {
            assert!(unauthorized.contains(flag), "{flag}: {unauthorized}");
        }
        let dns = h(
            FailureCategory::Unreachable,
            "dns error: failed to lookup address information: Name or service not known",
        );
        assert!(dns.contains("does not resolve"), "{dns}");
        assert!(!dns.to_lowercase().contains("retry"), "{dns}");
        let refused = h(
            FailureCategory::Unreachable,
            "tcp connect error: Connection refused",
        );
        assert!(
            refused.starts_with("nothing listens at reg.example:5000"),
            "{refused}"
        );
        let tls = h(
            FailureCategory::Tls,
            "invalid peer certificate: UnknownIssuer",
        );
        assert!(
            tls.contains(r#"registries.hosts."reg.example:5000".caBundle"#),
            "{tls}"
        );
        let gone = h(FailureCategory::NotFound, "MANIFEST_UNKNOWN");
        assert!(gone.contains("reg.example:5000/app:v1"), "{gone}");
    }
}
