//! The parts of the dependency step that need no sandbox: which changes are inputs, why a
//! layer is not reused, the step's environment.

use super::*;

#[test]
fn inputs_and_what_is_inside_them_are_left_out_of_the_layer() {
    let inputs = vec!["requirements.txt".to_string(), "wheelhouse".to_string()];
    let add = |p: &str| Change::Add(PathBuf::from(p));
    assert!(is_input(&add("app/requirements.txt"), &inputs));
    assert!(is_input(&add("/app/wheelhouse/a-1.0.whl"), &inputs));
    assert!(is_input(
        &Change::Whiteout(PathBuf::from("app/wheelhouse")),
        &inputs
    ));
    assert!(!is_input(&add("app/requirements.txt.lock"), &inputs));
    assert!(!is_input(&add("app/node_modules/x"), &inputs));
    assert!(!is_input(&add("app"), &inputs));
    assert!(!is_input(&add("opt/venv/requirements.txt"), &inputs));
}

#[test]
fn the_reason_names_the_inputs_that_changed() {
    // Each set of inputs has a key of its own, as real keys hold the inputs' digests.
    let digests = |pairs: &[(&str, Option<&str>)]| LastStep {
        key: format!("{pairs:?}"),
        inputs: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
            .collect(),
    };
    let now = digests(&[("requirements.txt", Some("b")), ("wheelhouse", Some("w"))]);
    assert_eq!(why_not_cached(None, &now), "first install");
    let before = digests(&[("requirements.txt", Some("a")), ("wheelhouse", Some("w"))]);
    assert_eq!(
        why_not_cached(Some(&before), &now),
        "requirements.txt changed"
    );
    assert_eq!(
        why_not_cached(Some(&now), &now),
        "its layer is no longer in the store"
    );
    let other_key = LastStep {
        key: "other".to_string(),
        inputs: now.inputs.clone(),
    };
    assert_eq!(
        why_not_cached(Some(&other_key), &now),
        "the badger, the environment or the build's options changed"
    );
    let added = digests(&[("requirements.txt", Some("b")), ("wheelhouse", None)]);
    assert_eq!(why_not_cached(Some(&added), &now), "wheelhouse changed");
}

#[test]
fn the_step_environment_has_no_revision_and_the_dependency_epoch() {
    let build = vec![
        "PATH=/usr/bin".to_string(),
        "SOLUM_SOURCE_REVISION=abc".to_string(),
        "SOURCE_DATE_EPOCH=1800000000".to_string(),
    ];
    assert_eq!(
        step_env(&build, None),
        ["PATH=/usr/bin", "SOURCE_DATE_EPOCH=1704067200"]
    );
    assert_eq!(
        step_env(&build, Some(5)),
        ["PATH=/usr/bin", "SOURCE_DATE_EPOCH=5"]
    );
}

#[test]
fn a_stack_with_two_dependency_steps_is_refused_naming_both() {
    let digest: Digest = format!("sha256:{}", "a".repeat(64)).parse().unwrap();
    let dependencies = Dependencies {
        inputs: vec!["requirements.txt".to_string()],
        script: "deps.sh".to_string(),
    };
    let declaring = |reference: &'static str| DeclaringBadger {
        reference,
        name: reference.to_string(),
        digest: &digest,
        dependencies: &dependencies,
    };
    assert!(one_step_per_stack(&[]).is_ok());
    assert!(one_step_per_stack(&[declaring("badgers/python")]).is_ok());
    let err = one_step_per_stack(&[declaring("badgers/python"), declaring("badgers/nodejs")])
        .unwrap_err();
    assert_eq!(err.class(), ErrorClass::Input);
    let message = err.to_string();
    assert!(message.contains("badgers/python and badgers/nodejs both declare"));
    assert!(message.contains("remove `dependencies:`"));
}
