//! Pull-policy defaulting and remedies: SEMANTICS.md §4, one row per case.

use imagedrift::policy::{
    DefaultRule, EffectivePolicy, PolicySource, PullPolicy, Remedy, default_rule, remedies_for,
    restart_helps,
};
use imagedrift::reference::ImageRef;

const D: &str = "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";

#[test]
fn defaulting_table() {
    let rows: Vec<(String, PullPolicy, DefaultRule, &str)> = vec![
        (
            "nginx".into(),
            PullPolicy::Always,
            DefaultRule::NoTag,
            "no tag, which means `latest`",
        ),
        (
            "nginx:latest".into(),
            PullPolicy::Always,
            DefaultRule::LatestTag,
            "the tag is `latest`",
        ),
        (
            format!("nginx:latest@{D}"),
            PullPolicy::Always,
            DefaultRule::LatestTagWithDigest,
            "the digest does not change that",
        ),
        (
            format!("nginx@{D}"),
            PullPolicy::IfNotPresent,
            DefaultRule::DigestOnly,
            "pinned by digest",
        ),
        (
            "registry.example/team/gradle-agent:java17".into(),
            PullPolicy::IfNotPresent,
            DefaultRule::NonLatestTag("java17".into()),
            "the tag `java17` is not `latest`",
        ),
        (
            format!("nginx:v1@{D}"),
            PullPolicy::IfNotPresent,
            DefaultRule::NonLatestTagWithDigest("v1".into()),
            "the tag `v1` is not `latest`",
        ),
        // `Latest` is a different tag from `latest`: the rule is case-sensitive.
        (
            "nginx:Latest".into(),
            PullPolicy::IfNotPresent,
            DefaultRule::NonLatestTag("Latest".into()),
            "`Latest` is not `latest`",
        ),
    ];
    for (image, policy, rule, why) in rows {
        let r = ImageRef::parse(&image).unwrap_or_else(|e| panic!("{image}: {e}"));
        assert_eq!(default_rule(&r), (policy, rule.clone()), "{image}");
        let eff = EffectivePolicy::of(&r, None);
        assert_eq!(eff.source, PolicySource::Defaulted(rule), "{image}");
        assert_eq!(eff.source.kind(), "defaulted");
        let text = eff.explain();
        assert!(
            text.contains(why) && text.contains(policy.as_str()),
            "{image}: {text}"
        );
    }
}

#[test]
fn explicit_policy_wins_and_says_so() {
    let r = ImageRef::parse("registry.example/team/gradle-agent:java17").unwrap();
    let eff = EffectivePolicy::of(&r, Some(PullPolicy::Always));
    assert_eq!(eff.policy, PullPolicy::Always);
    assert_eq!(eff.source, PolicySource::Explicit);
    assert_eq!(eff.explain(), "Always (written in the pod spec)");
}

#[test]
fn live_pods_infer_defaulted_when_the_value_matches_the_default() {
    let r = ImageRef::parse("registry.example/team/gradle-agent:java17").unwrap();
    let live = EffectivePolicy::infer_from_live(&r, PullPolicy::IfNotPresent);
    assert_eq!(
        live.source,
        PolicySource::EqualsDefault(DefaultRule::NonLatestTag("java17".into()))
    );
    assert_eq!(live.source.kind(), "default");
    // The API server stores the field either way: say it equals the
    // default, never that it was defaulted.
    assert_eq!(
        live.explain(),
        "IfNotPresent, which equals the default for this tag (`java17` is not `latest`)"
    );
    assert!(!live.explain().contains("defaulted"));
    let live = EffectivePolicy::infer_from_live(&r, PullPolicy::Always);
    assert_eq!(live.source, PolicySource::Explicit);
    assert!(!live.explain().contains("container"), "{}", live.explain());
}

#[test]
fn remedies_follow_the_policy() {
    assert_eq!(
        remedies_for(PullPolicy::Always),
        vec![Remedy::Restart, Remedy::PinDigest]
    );
    let inp = remedies_for(PullPolicy::IfNotPresent);
    assert!(
        !inp.contains(&Remedy::Restart),
        "a restart does not help under IfNotPresent"
    );
    assert!(inp.contains(&Remedy::RefreshNode) && inp.contains(&Remedy::PinDigest));
    assert_eq!(
        remedies_for(PullPolicy::Never),
        vec![Remedy::ReprovisionNode]
    );
    assert!(restart_helps(PullPolicy::Always));
    assert!(!restart_helps(PullPolicy::IfNotPresent));
    assert!(!restart_helps(PullPolicy::Never));
}

#[test]
fn policy_spelling_is_exact_and_errors_suggest_the_fix() {
    assert_eq!(
        PullPolicy::parse("IfNotPresent"),
        Ok(PullPolicy::IfNotPresent)
    );
    for (bad, hint) in [
        ("always", Some("Always")),
        ("IfNotPresnt", Some("IfNotPresent")),
        ("never", Some("Never")),
        ("Sometimes", None),
    ] {
        let e = PullPolicy::parse(bad).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains(&format!("{bad:?}")), "{msg}");
        match hint {
            Some(h) => assert!(msg.contains(&format!("did you mean {h}")), "{msg}"),
            None => assert!(!msg.contains("did you mean"), "{msg}"),
        }
    }
}
