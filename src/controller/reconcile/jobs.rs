//! The work the state hands out and what comes back: a reference to check
//! ([`CheckJob`]), containers to judge ([`JudgeJob`]), and the tasks that do
//! it, pure apart from registry reads.

use super::*;

/// One container to judge, with everything the verdict needs (a snapshot).
#[derive(Clone, Debug)]
pub struct JudgeJob {
    /// Which container.
    pub key: ContainerKey,
    /// The spec image, parsed; `Err` carries the parse error.
    pub image: Result<Arc<ImageRef>, Str>,
    /// `status.imageID` as reported.
    pub image_id: Str,
    /// Whether it is running.
    pub running: bool,
    /// The node's platform.
    pub platform: Option<Arc<Platform>>,
    /// The tag's current descriptor, if resolved (shared by every user).
    pub tag: Option<Answer>,
    /// Which answer of the reference `tag` is (0: none yet).
    pub answer_gen: u64,
    /// The pod's pull secret names.
    pub pull_secrets: Vec<Str>,
}

/// One unique reference to resolve, then the containers using it to judge.
#[derive(Clone, Debug)]
pub struct CheckJob {
    /// The normalised reference (the schedule's key).
    pub reference: Str,
    /// The parsed reference.
    pub image: Arc<ImageRef>,
    /// Pull secrets of the pods using it: (namespace, names), deduplicated.
    pub secrets: Vec<(Str, Vec<Str>)>,
    /// The containers using it (their `tag` is filled in after resolving).
    pub judge: Vec<JudgeJob>,
    /// When a webhook announced a push of it: the resolve bypasses the
    /// tag cache (the cached answer predates the push).
    pub hinted: Option<Instant>,
}

/// One container's new judgement, with the imageID it was made for.
#[derive(Clone, Debug)]
pub struct Judged {
    /// Which container.
    pub key: ContainerKey,
    /// The imageID judged (a result for an outdated imageID is dropped).
    pub image_id: Str,
    /// Whether it was running when judged (a result for an outdated
    /// running state is dropped, like one for an outdated imageID).
    pub running: bool,
    /// Which answer of the reference it was judged with (0: none).
    pub answer_gen: u64,
    /// The judgement.
    pub judgement: Judgement,
}

/// What finished work brings back to the state.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// A reference's new answer, when this was a check.
    pub answer: Option<(Str, Answer)>,
    /// New judgements.
    pub judged: Vec<Judged>,
}

/// Judges one container (the verdict plus the glue: parsing the imageID,
/// finding credentials). Pure apart from registry reads.
pub async fn run_judge<R: Registry, C: PullCredentials>(
    registry: &R,
    creds: &C,
    job: &JudgeJob,
) -> Judged {
    let done = |judgement| Judged {
        key: job.key.clone(),
        image_id: job.image_id.clone(),
        running: job.running,
        answer_gen: job.answer_gen,
        judgement,
    };
    let image = match &job.image {
        Ok(i) => i,
        Err(why) => {
            return done(verdict::invalid_reference(why));
        }
    };
    // An image volume in use whose digest the kubelet does not report
    // (no `ImageVolumeWithDigest` gate): nothing to compare, and never
    // "not running" either. A pinned spec is still judged pinned.
    if job.key.kind == ContainerKind::ImageVolume
        && job.running
        && job.image_id.is_empty()
        && !image.is_pinned()
    {
        return done(verdict::volume_digest_not_reported());
    }
    let id = match RuntimeImageId::parse(&job.image_id) {
        Ok(id) => id,
        Err(e) => return done(verdict::invalid_image_id(&job.image_id, e)),
    };
    let input = VerdictInput {
        spec: image,
        image_id: id.as_ref(),
        running: job.running,
        platform: job.platform.as_deref(),
    };
    let credentials = creds
        .for_image(&job.key.namespace, &job.pull_secrets, image)
        .await;
    let source = WithCredentials {
        registry,
        creds: &credentials,
    };
    done(verdict::judge(&input, job.tag.as_deref(), &source).await)
}

/// Resolves a reference's tag, then judges every container using it.
pub async fn run_check<R: Registry, C: PullCredentials>(
    registry: &R,
    creds: &C,
    job: CheckJob,
) -> Outcome {
    let mut credentials = Vec::new();
    for (ns, names) in &job.secrets {
        for c in creds.for_image(ns, names, &job.image).await {
            if !credentials.contains(&c) {
                credentials.push(c);
            }
        }
    }
    if job.hinted.is_some() {
        registry.forget_tag(&job.image);
    }
    let answer: Answer = Arc::new(registry.resolve_tag(&job.image, &credentials).await);
    let mut judged = Vec::with_capacity(job.judge.len());
    for mut j in job.judge {
        j.tag = Some(answer.clone());
        judged.push(run_judge(registry, creds, &j).await);
    }
    Outcome {
        answer: Some((job.reference, answer)),
        judged,
    }
}
