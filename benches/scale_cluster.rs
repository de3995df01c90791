//! The scale bench against a real API server (`IMAGEDRIFT_BENCH_KUBECONFIG`):
//! the same nodes, ReplicaSets and pods the fake API server serves are
//! created there (pods with their status written through the `status`
//! subresource, as a kubelet does), and the phases then measure the binary
//! against that server's paged lists and watches.
//!
//! Meant for a throw-away control plane without a controller-manager
//! (kubelab's `up.sh --no-node`, then stop `kube-controller-manager`): the
//! pods are bound to Node objects no kubelet serves, and a ReplicaSet
//! controller would scale them away. Objects of an earlier load are kept
//! (a second load of the same size adds nothing).

use futures::StreamExt as _;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, ServiceAccount};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// A real API server, through a kubeconfig.
#[derive(Clone)]
pub struct Cluster {
    client: kube::Client,
}

fn parse<T: DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).expect("a valid object")
}

/// Creates `obj`; an existing one of that name is kept.
async fn create<K>(api: &Api<K>, obj: &K)
where
    K: kube::Resource + Clone + DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    match api.create(&PostParams::default(), obj).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => panic!("create {:?}: {e}", obj.meta().name),
    }
}

impl Cluster {
    /// Connects with `kubeconfig`.
    pub async fn connect(kubeconfig: &str) -> Cluster {
        // TLS to the API server: the process-wide provider, as the binary's
        // `cli::install_crypto_provider` installs it.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let kc = kube::config::Kubeconfig::read_from(kubeconfig).expect("kubeconfig");
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .expect("kubeconfig");
        Cluster {
            client: kube::Client::try_from(cfg).expect("client"),
        }
    }

    /// Creates namespaces (with their default ServiceAccount, which no
    /// controller-manager makes here), nodes with their status, the
    /// ReplicaSets (0 replicas) and the pods with their status.
    pub async fn load(
        &self,
        namespaces: usize,
        nodes: Vec<Value>,
        replica_sets: Vec<Value>,
        pods: Vec<Value>,
    ) {
        let c = &self.client;
        for n in 0..namespaces {
            let ns = format!("ns-{n}");
            create(
                &Api::<Namespace>::all(c.clone()),
                &parse(json!({"metadata": {"name": ns}})),
            )
            .await;
            create(
                &Api::<ServiceAccount>::namespaced(c.clone(), &ns),
                &parse(json!({"metadata": {"name": "default"}})),
            )
            .await;
        }
        let node_api = Api::<Node>::all(c.clone());
        for mut n in nodes {
            let status = n["status"].take();
            n["metadata"].as_object_mut().unwrap().remove("uid");
            let name = n["metadata"]["name"].as_str().unwrap().to_string();
            create(&node_api, &parse(n)).await;
            node_api
                .patch_status(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"status": status})),
                )
                .await
                .expect("node status");
        }
        // ReplicaSets first: pods name their server-given UIDs.
        let mut rs_uid = std::collections::HashMap::new();
        for mut rs in replica_sets {
            let ns = rs["metadata"]["namespace"].as_str().unwrap().to_string();
            let name = rs["metadata"]["name"].as_str().unwrap().to_string();
            let app = name.trim_end_matches("-5d9c8f7b6").to_string();
            rs["metadata"].as_object_mut().unwrap().remove("uid");
            rs["metadata"]
                .as_object_mut()
                .unwrap()
                .remove("managedFields");
            rs["spec"] = json!({"replicas": 0, "selector": {"matchLabels": {"app": app}},
                "template": {"metadata": {"labels": {"app": app}},
                    "spec": {"containers": [{"name": "c0", "image": "example.invalid/app:v1"}]}}});
            let api = Api::<ReplicaSet>::namespaced(c.clone(), &ns);
            create(&api, &parse(rs)).await;
            let uid = api.get(&name).await.expect("rs").metadata.uid.expect("uid");
            rs_uid.insert((ns, name), uid);
        }
        let total = pods.len();
        let started = std::time::Instant::now();
        futures::stream::iter(pods.into_iter().map(|mut p| {
            let c = c.clone();
            let ns = p["metadata"]["namespace"].as_str().unwrap().to_string();
            let name = p["metadata"]["name"].as_str().unwrap().to_string();
            let owner = p["metadata"]["ownerReferences"][0]["name"]
                .as_str()
                .unwrap()
                .to_string();
            p["metadata"]["ownerReferences"][0]["uid"] = json!(rs_uid[&(ns.clone(), owner)]);
            let meta = p["metadata"].as_object_mut().unwrap();
            meta.remove("uid");
            meta.remove("generateName");
            let status = p["status"].take();
            async move {
                let api = Api::<Pod>::namespaced(c, &ns);
                create(&api, &parse(p)).await;
                api.patch_status(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"status": status})),
                )
                .await
                .expect("pod status");
            }
        }))
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
        println!(
            "loaded {total} pods into the API server in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }

    /// A node heartbeat (its status as `node` has it).
    pub async fn beat_node(&self, node: Value) {
        let name = node["metadata"]["name"].as_str().unwrap().to_string();
        let _ = Api::<Node>::all(self.client.clone())
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": node["status"]})),
            )
            .await;
    }

    /// A pod status bump (its status as `pod` has it).
    pub async fn bump_pod(&self, pod: Value) {
        let ns = pod["metadata"]["namespace"].as_str().unwrap().to_string();
        let name = pod["metadata"]["name"].as_str().unwrap().to_string();
        let _ = Api::<Pod>::namespaced(self.client.clone(), &ns)
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": pod["status"]})),
            )
            .await;
    }

    /// Events on record, all namespaces (creations and series patches are
    /// told apart only by the fake API server: this counts objects).
    pub async fn events(&self) -> usize {
        Api::<Event>::all(self.client.clone())
            .list_metadata(&ListParams::default().limit(500))
            .await
            .map(|l| l.items.len() + l.metadata.remaining_item_count.unwrap_or(0).max(0) as usize)
            .unwrap_or(0)
    }

    /// Deletes every Event the bench's runs wrote (`ns-*`).
    pub async fn clear_events(&self, namespaces: usize) {
        futures::stream::iter(0..namespaces)
            .map(|n| {
                let api = Api::<Event>::namespaced(self.client.clone(), &format!("ns-{n}"));
                async move {
                    let _ = api
                        .delete_collection(&Default::default(), &ListParams::default())
                        .await;
                }
            })
            .buffer_unordered(8)
            .collect::<Vec<()>>()
            .await;
    }
}
