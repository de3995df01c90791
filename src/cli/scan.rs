//! `imagedrift scan` and `imagedrift explain`: one-shot, same code path as
//! the controller (lists instead of watches).

use super::{Cluster, init_tracing, kube_client, kube_error, oneshot_setup};
use imagedrift::config::{KubeFlags, Log};
use imagedrift::controller::oneshot::{OneShotError, Scope, collect_state, exit_code};
use imagedrift::controller::output;
use imagedrift::controller::reconcile::{Row, State};
use imagedrift::controller::secrets::{Anonymous, ApiSecrets, KeyringParser, SecretCredentials};
use std::process::ExitCode;

/// Output format of `scan`.
#[derive(Clone, Copy, Debug, Default, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns.
    #[default]
    Table,
    /// More columns: node, policy, digests, owner.
    Wide,
    /// `{"items": [...]}`.
    Json,
}

/// Output format of `explain`.
#[derive(Clone, Copy, Debug, Default, clap::ValueEnum)]
pub enum ExplainFormat {
    /// Plain language, one block per container.
    #[default]
    Text,
    /// `{"items": [...]}`, as `scan -o json`.
    Json,
}

/// Which verdicts make `scan` and `explain` exit 1.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum FailOn {
    /// A stale container.
    #[default]
    Stale,
    /// A stale or an unknown container (a cluster where nothing could be
    /// checked is not a pass).
    Unknown,
}

/// `scan` flags.
#[derive(clap::Args, Debug)]
pub struct ScanArgs {
    /// Namespace (default: the context's namespace).
    #[arg(short = 'n', long, env = "IMAGEDRIFT_NAMESPACE")]
    pub namespace: Option<String>,
    /// Every namespace.
    #[arg(
        short = 'A',
        long,
        env = "IMAGEDRIFT_ALL_NAMESPACES",
        conflicts_with = "namespace"
    )]
    pub all_namespaces: bool,
    /// Label selector, as for kubectl.
    #[arg(short = 'l', long, env = "IMAGEDRIFT_LABEL_SELECTOR")]
    pub selector: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, env = "IMAGEDRIFT_OUTPUT", value_enum, default_value_t = Format::Table)]
    pub output: Format,
    /// Exit 1 when a container is stale (`stale`), or stale or unknown (`unknown`).
    #[arg(long, env = "IMAGEDRIFT_FAIL_ON", value_enum, default_value_t = FailOn::Stale)]
    pub fail_on: FailOn,
    /// Configuration file; its `registries:` (mirrors, TLS, the credentials
    /// file) and `pullSecrets:` sections are used.
    #[arg(long, env = "IMAGEDRIFT_CONFIG")]
    pub config: Option<std::path::PathBuf>,
    /// Read pods' imagePullSecrets (by name, with your credentials) to
    /// resolve private images as kubelet does. Key: pullSecrets.enabled.
    #[arg(long, env = "IMAGEDRIFT_READ_PULL_SECRETS")]
    pub read_pull_secrets: bool,
    /// `--creds`, plugins and your docker config.
    #[command(flatten)]
    pub credentials: imagedrift::credentials::CliCredentialFlags,
    /// Registry lookups at once (as `run`'s key maxConcurrentChecks).
    #[arg(
        long = "max-concurrent-checks",
        alias = "concurrency",
        env = "IMAGEDRIFT_MAX_CONCURRENT_CHECKS",
        default_value_t = 8,
        value_parser = clap::value_parser!(u16).range(1..=256)
    )]
    pub concurrency: u16,
    /// Cluster connection.
    #[command(flatten)]
    pub kube: KubeFlags,
}

/// `explain` flags.
#[derive(clap::Args, Debug)]
pub struct ExplainArgs {
    /// What to explain, as kubectl names it: `POD`, `pod/POD`,
    /// `deployment/NAME` (all its pods), `statefulset/NAME`, `daemonset/NAME`
    /// or `job/NAME` (short names `deploy`, `sts`, `ds` work too).
    #[arg(value_name = "[TYPE/]NAME")]
    pub target: String,
    /// Namespace (default: the context's namespace).
    #[arg(short = 'n', long, env = "IMAGEDRIFT_NAMESPACE")]
    pub namespace: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, env = "IMAGEDRIFT_OUTPUT", value_enum, default_value_t = ExplainFormat::Text)]
    pub output: ExplainFormat,
    /// Exit 1 when a container is stale (`stale`), or stale or unknown (`unknown`).
    #[arg(long, env = "IMAGEDRIFT_FAIL_ON", value_enum, default_value_t = FailOn::Stale)]
    pub fail_on: FailOn,
    /// Configuration file; its `registries:` and `pullSecrets:` sections are used.
    #[arg(long, env = "IMAGEDRIFT_CONFIG")]
    pub config: Option<std::path::PathBuf>,
    /// Read the pod's imagePullSecrets, as for `scan`. Key: pullSecrets.enabled.
    #[arg(long, env = "IMAGEDRIFT_READ_PULL_SECRETS")]
    pub read_pull_secrets: bool,
    /// `--creds`, plugins and your docker config.
    #[command(flatten)]
    pub credentials: imagedrift::credentials::CliCredentialFlags,
    /// Cluster connection.
    #[command(flatten)]
    pub kube: KubeFlags,
}

fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("imagedrift: cannot start the async runtime: {e}");
            ExitCode::from(2)
        })
}

/// A one-shot command's logs: only imagedrift's own warnings, unless `-v`
/// (info, libraries included) or `-vv` (debug); `$RUST_LOG` wins.
pub fn quiet_logs() {
    let filter = match super::verbosity() {
        0 => "off,imagedrift=warn",
        1 => "info",
        _ => "debug",
    };
    init_tracing(&Log {
        filter: filter.into(),
        ..Log::default()
    });
}

/// Lists and judges with the pods' pull secrets when asked, else anonymously
/// (plus the registries' own credentials file either way).
async fn collect_with(
    client: kube::Client,
    cluster: &Cluster,
    setup: &super::OneShotSetup,
    scope: &Scope,
    concurrency: usize,
) -> anyhow::Result<State> {
    let registry = &setup.registry;
    let r = match setup.pull_secrets {
        Some(ttl) => {
            let creds = SecretCredentials::new(ApiSecrets(client.clone()), KeyringParser, ttl);
            collect_state(client, registry, &creds, scope, concurrency).await
        }
        None => collect_state(client, registry, &Anonymous, scope, concurrency).await,
    };
    r.map_err(|e| match e {
        OneShotError::ListPods(k) => {
            let where_ = scope
                .namespace
                .as_deref()
                .map_or("in any namespace".to_string(), |n| {
                    format!("in namespace {n}")
                });
            anyhow::anyhow!(kube_error(
                &format!("cannot list pods {where_}"),
                &k,
                cluster
            ))
        }
        other => other.into(),
    })
}

/// The exit code for `rows` under `--fail-on`: 1 when a container is stale
/// (or, with `unknown`, stale or unknown), else 0.
pub fn fail_code(rows: &[Row], fail_on: FailOn) -> u8 {
    let unknown = rows.iter().any(|r| {
        r.judgement
            .as_ref()
            .is_none_or(|j| matches!(j.verdict, imagedrift::verdict::Verdict::Unknown(_)))
    });
    let stale = exit_code(rows) == 1;
    u8::from(stale || (fail_on == FailOn::Unknown && unknown))
}

/// Runs `scan`: exit 0 when nothing is stale, 1 when something is (or is
/// unknown, with `--fail-on unknown`), 2 on error.
pub fn scan(args: ScanArgs) -> ExitCode {
    quiet_logs();
    if let Some(sel) = &args.selector
        && let Err(why) = imagedrift::selector::check(sel)
    {
        eprintln!("imagedrift scan: --selector {sel:?} is not a label selector: {why}");
        return ExitCode::from(2);
    }
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let result = rt.block_on(async {
        // The config first: a broken file is reported without a cluster.
        let setup = oneshot_setup(
            args.config.as_deref(),
            args.read_pull_secrets,
            &args.credentials,
        )?;
        let (client, cluster) = kube_client(&args.kube).await?;
        let namespace = match (args.all_namespaces, &args.namespace) {
            (true, _) => None,
            (false, Some(ns)) => Some(ns.clone()),
            (false, None) => Some(client.default_namespace().to_string()),
        };
        let scope = Scope {
            namespace,
            selector: args.selector.clone(),
            pod: None,
        };
        let state = collect_with(client, &cluster, &setup, &scope, args.concurrency.into()).await?;
        anyhow::Ok((state, scope))
    });
    match result {
        // JSON is written item by item as the rows are made; a table
        // needs every row first to size its columns.
        Ok((state, _)) if matches!(args.output, Format::Json) => {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let written = output::write_json(state.rows_iter(), &mut out)
                .and_then(|n| std::io::Write::flush(&mut out).map(|()| n));
            match written {
                Ok((stale, unknown)) => ExitCode::from(u8::from(
                    stale > 0 || (args.fail_on == FailOn::Unknown && unknown > 0),
                )),
                Err(e) => {
                    eprintln!("imagedrift scan: cannot write the output: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Ok((state, scope)) => {
            let rows = state.rows();
            drop(state);
            if rows.is_empty() {
                // kubectl's words, on stderr as kubectl writes them.
                match &scope.namespace {
                    Some(ns) => eprintln!("No resources found in {ns} namespace."),
                    None => eprintln!("No resources found"),
                }
                return ExitCode::SUCCESS;
            }
            let text = match args.output {
                Format::Wide => output::table(&rows, true),
                _ => output::table(&rows, false),
            };
            println!("{}", text.trim_end());
            ExitCode::from(fail_code(&rows, args.fail_on))
        }
        Err(e) => {
            eprintln!("imagedrift scan: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// What `explain` was asked about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// One pod.
    Pod(String),
    /// Every pod a workload selects: (kind as the API names it, name).
    Workload(&'static str, String),
}

impl Target {
    /// Parses `NAME`, `pod/NAME`, `deployment/NAME`… as kubectl types them.
    pub fn parse(s: &str) -> Result<Target, String> {
        let Some((kind, name)) = s.split_once('/') else {
            return Ok(Target::Pod(s.to_string()));
        };
        if name.is_empty() || name.contains('/') {
            return Err(format!("{s:?} is not TYPE/NAME"));
        }
        let kind = match kind.to_ascii_lowercase().as_str() {
            "pod" | "pods" | "po" => return Ok(Target::Pod(name.to_string())),
            "deployment" | "deployments" | "deploy" => "Deployment",
            "statefulset" | "statefulsets" | "sts" => "StatefulSet",
            "daemonset" | "daemonsets" | "ds" => "DaemonSet",
            "job" | "jobs" => "Job",
            other => {
                return Err(format!(
                    "cannot explain {other:?}: use pod, deployment, statefulset, daemonset or job (e.g. deployment/{name})"
                ));
            }
        };
        Ok(Target::Workload(kind, name.to_string()))
    }
}

/// The label selector of a workload's pods, as `kubectl -l` takes it.
async fn workload_selector(
    client: &kube::Client,
    cluster: &Cluster,
    ns: &str,
    kind: &'static str,
    name: &str,
) -> anyhow::Result<String> {
    use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
    use k8s_openapi::api::batch::v1::Job;
    use kube::Api;
    let what = format!(
        "cannot get {}/{name} in namespace {ns}",
        kind.to_ascii_lowercase()
    );
    let not_found = |e: &kube::Error| matches!(e, kube::Error::Api(s) if s.code == 404);
    let missing = || {
        anyhow::anyhow!(
            "{}/{name} not found in namespace {ns} (kubectl get {} -n {ns})",
            kind.to_ascii_lowercase(),
            kind.to_ascii_lowercase()
        )
    };
    macro_rules! get {
        ($t:ty) => {
            match Api::<$t>::namespaced(client.clone(), ns).get(name).await {
                Ok(o) => o.spec.and_then(|s| s.selector.into()),
                Err(e) if not_found(&e) => return Err(missing()),
                Err(e) => anyhow::bail!(kube_error(&what, &e, cluster)),
            }
        };
    }
    let selector: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector> = match kind
    {
        "Deployment" => get!(Deployment),
        "StatefulSet" => get!(StatefulSet),
        "DaemonSet" => get!(DaemonSet),
        _ => match Api::<Job>::namespaced(client.clone(), ns).get(name).await {
            Ok(o) => o.spec.and_then(|s| s.selector),
            Err(e) if not_found(&e) => return Err(missing()),
            Err(e) => anyhow::bail!(kube_error(&what, &e, cluster)),
        },
    };
    let selector = selector
        .map(|s| selector_string(&s))
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "{}/{name} selects no pods (its spec has no selector)",
                kind.to_ascii_lowercase()
            )
        })?;
    Ok(selector)
}

/// A `LabelSelector` written as `kubectl -l` takes it.
pub fn selector_string(
    s: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
) -> String {
    let mut parts: Vec<String> = s
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for e in s.match_expressions.iter().flatten() {
        let values = e.values.clone().unwrap_or_default().join(",");
        parts.push(match e.operator.as_str() {
            "In" => format!("{} in ({values})", e.key),
            "NotIn" => format!("{} notin ({values})", e.key),
            "Exists" => e.key.clone(),
            _ => format!("!{}", e.key),
        });
    }
    parts.join(",")
}

/// Runs `explain`: exit codes as for `scan`.
pub fn explain(args: ExplainArgs) -> ExitCode {
    quiet_logs();
    let target = match Target::parse(&args.target) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("imagedrift explain: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let result = rt.block_on(async {
        let setup = oneshot_setup(
            args.config.as_deref(),
            args.read_pull_secrets,
            &args.credentials,
        )?;
        let (client, cluster) = kube_client(&args.kube).await?;
        let namespace = args
            .namespace
            .clone()
            .unwrap_or_else(|| client.default_namespace().to_string());
        let scope = match &target {
            Target::Pod(pod) => Scope {
                namespace: Some(namespace),
                selector: None,
                pod: Some(pod.clone()),
            },
            Target::Workload(kind, name) => Scope {
                selector: Some(workload_selector(&client, &cluster, &namespace, kind, name).await?),
                namespace: Some(namespace),
                pod: None,
            },
        };
        let rows = collect_with(client, &cluster, &setup, &scope, 8)
            .await?
            .rows();
        anyhow::Ok((rows, scope))
    });
    match result {
        Ok((rows, scope)) => {
            if rows.is_empty()
                && let Target::Workload(kind, name) = &target
            {
                eprintln!(
                    "No pods found for {}/{name} in {} namespace.",
                    kind.to_ascii_lowercase(),
                    scope.namespace.as_deref().unwrap_or_default()
                );
                return ExitCode::SUCCESS;
            }
            match args.output {
                ExplainFormat::Text => print!("{}", output::explain(&rows)),
                ExplainFormat::Json => println!("{}", output::json(&rows)),
            }
            ExitCode::from(fail_code(&rows, args.fail_on))
        }
        Err(e) => {
            eprintln!("imagedrift explain: {e:#}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::oneshot_setup;
    use std::time::Duration;

    #[test]
    fn pull_secrets_are_read_when_the_flag_or_the_config_says_so() {
        assert_eq!(
            oneshot_setup(None, false, &Default::default())
                .unwrap()
                .pull_secrets,
            None
        );
        assert_eq!(
            oneshot_setup(None, true, &Default::default())
                .unwrap()
                .pull_secrets,
            Some(Duration::from_secs(300))
        );
        let dir = std::env::temp_dir().join(format!("imagedrift-scan-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("config.yaml");
        std::fs::write(&path, "pullSecrets:\n  enabled: true\n  cacheTtl: 1m\n").unwrap();
        let got = oneshot_setup(Some(&path), false, &Default::default())
            .unwrap()
            .pull_secrets;
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(got, Some(Duration::from_secs(60)));
    }
}

#[cfg(test)]
mod target_tests {
    use super::Target;

    #[test]
    fn targets_as_kubectl_types_them() {
        assert_eq!(Target::parse("web-1"), Ok(Target::Pod("web-1".into())));
        assert_eq!(Target::parse("pod/web-1"), Ok(Target::Pod("web-1".into())));
        assert_eq!(
            Target::parse("deploy/web"),
            Ok(Target::Workload("Deployment", "web".into()))
        );
        assert_eq!(
            Target::parse("statefulset/db"),
            Ok(Target::Workload("StatefulSet", "db".into()))
        );
        assert_eq!(
            Target::parse("ds/agent"),
            Ok(Target::Workload("DaemonSet", "agent".into()))
        );
        assert_eq!(
            Target::parse("job/migrate"),
            Ok(Target::Workload("Job", "migrate".into()))
        );
        assert!(
            Target::parse("cronjob/x")
                .unwrap_err()
                .contains("use pod, deployment")
        );
        assert!(Target::parse("pod/").is_err());
    }
}
