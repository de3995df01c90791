//! Every container with what is known about it, as `scan` and `explain`
//! print it, and the Event references of pods, containers and workloads.

use super::*;

impl State {
    /// Every container with its current judgement, for `scan` and `explain`.
    pub fn rows(&self) -> Vec<Row> {
        self.rows_iter().collect()
    }

    /// [`State::rows`], one row at a time in the same order (namespace,
    /// pod, kind, container): `scan -o json` writes each as it is made
    /// instead of holding a copy of the cluster.
    pub fn rows_iter(&self) -> impl Iterator<Item = Row> + '_ {
        let mut pods: Vec<&PodView> = self.pods.values().collect();
        pods.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        pods.into_iter().flat_map(move |pod| {
            let workload = self.owners.workload_of(pod);
            let mut containers: Vec<&ContainerView> = pod.containers.iter().collect();
            containers.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
            containers
                .into_iter()
                .map(move |c| self.row(pod, c, &workload))
        })
    }

    pub(super) fn row(&self, pod: &PodView, c: &ContainerView, workload: &Workload) -> Row {
        let key = ContainerKey::of(pod, c);
        let image = match self.parsed.get(&c.image) {
            Some(Ok((i, _))) => Ok(i.clone()),
            Some(Err(e)) => Err(e.clone()),
            None => Err(Str::from("not parsed")),
        };
        let policy = image
            .as_ref()
            .ok()
            .zip(c.pull_policy)
            .map(|(i, p)| EffectivePolicy::infer_from_live(i, p));
        Row {
            pod: pod.clone(),
            container: c.clone(),
            image,
            policy,
            workload: workload.clone(),
            judgement: self
                .containers
                .get(&key)
                .and_then(|s| s.judgement.as_deref().cloned()),
        }
    }

    /// The current judgement of a container.
    pub fn judgement(&self, key: &ContainerKey) -> Option<&Judgement> {
        self.containers.get(key)?.judgement.as_deref()
    }
}

/// One container and everything known about it.
#[derive(Clone, Debug)]
pub struct Row {
    /// Its pod.
    pub pod: PodView,
    /// The container.
    pub container: ContainerView,
    /// The parsed spec image (or the parse error).
    pub image: Result<Arc<ImageRef>, Str>,
    /// Its effective pull policy, when known.
    pub policy: Option<EffectivePolicy>,
    /// Its workload.
    pub workload: Workload,
    /// Its judgement, once judged.
    pub judgement: Option<Judgement>,
}

/// The Event reference of a pod.
pub fn pod_reference(pod: &PodView) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        namespace: Some(pod.namespace.to_string()),
        name: Some(pod.name.to_string()),
        uid: Some(pod.uid.to_string()).filter(|u| !u.is_empty()),
        ..ObjectReference::default()
    }
}

/// The Event reference of one container of a pod: the pod, with the
/// container's field path as kubelet writes it (`spec.containers{app}`), so
/// Events about two containers of one pod stay apart.
pub fn container_reference(pod: &PodView, c: &ContainerView) -> ObjectReference {
    let list = c.kind.field();
    ObjectReference {
        field_path: Some(format!("spec.{list}{{{}}}", c.name)),
        ..pod_reference(pod)
    }
}

/// The Event reference of a workload.
pub fn workload_reference(w: &Workload) -> ObjectReference {
    ObjectReference {
        api_version: Some(w.api_version.to_string()),
        kind: Some(w.kind.to_string()),
        namespace: Some(w.namespace.to_string()),
        name: Some(w.name.to_string()),
        uid: w.uid.as_ref().map(|u| u.to_string()),
        ..ObjectReference::default()
    }
}
