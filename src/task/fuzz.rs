//! Property tests of the task YAML parser and validator: any input, however
//! malformed, oversized or nested, gets an answer (a task or an error that
//! says what is wrong), never a panic or a hang.

use std::path::Path;

use proptest::prelude::*;

use super::{parse::parse_task_yaml, validate};
use crate::proto::skypilot::v1::{Resources, TaskSpec};

/// The answer for `text` must be a task that validates or fails with a
/// message, or an error with a message.
fn check(text: &str) {
    match parse_task_yaml(text, Path::new("/nonexistent-base")) {
        Ok((task, _required)) => {
            if let Err(err) = validate(&task) {
                assert!(!err.0.trim().is_empty(), "empty validation error for {text:?}");
            }
        }
        Err(err) => assert!(!err.0.trim().is_empty(), "empty parse error for {text:?}"),
    }
}

/// Fields of a task YAML and of its resources, with values of every shape.
fn yaml_task() -> impl Strategy<Value = String> {
    let key = prop::sample::select(vec![
        "name",
        "workdir",
        "num_nodes",
        "resources",
        "envs",
        "secrets",
        "file_mounts",
        "setup",
        "run",
        "service",
        "config",
        "infra",
        "cpus",
        "memory",
        "accelerators",
        "ports",
        "autostop",
        "use_spot",
        "idle_minutes",
        "down",
        "region",
        "~",
        "",
        "?",
    ]);
    let scalar = prop_oneof![
        Just("null".to_string()),
        Just("~".to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|n| n.to_string()),
        "[a-zA-Z0-9:+*._/ -]{0,12}",
        "\"[^\"\\\\]{0,12}\"",
        Just("true".to_string()),
        Just("[1, 2]".to_string()),
        Just("{a: 1}".to_string()),
        Just("|\n    echo hi".to_string()),
        Just("&anchor 1".to_string()),
        Just("*anchor".to_string()),
    ];
    let field = (key.clone(), scalar.clone()).prop_map(|(k, v)| format!("{k}: {v}"));
    let nested =
        (key, prop::collection::vec((prop::sample::select(vec!["cpus", "A", "memory", "x"]), scalar), 0..4))
            .prop_map(|(k, items)| {
                let body: String = items.iter().map(|(ik, iv)| format!("\n  {ik}: {iv}")).collect();
                format!("{k}:{body}")
            });
    prop::collection::vec(prop_oneof![field, nested], 0..8).prop_map(|lines| lines.join("\n"))
}

fn any_task_spec() -> impl Strategy<Value = TaskSpec> {
    let text = ".{0,16}";
    (
        (text, text, any::<i32>(), text, text),
        (text, text, text, prop::option::of(any::<i32>())),
        prop::collection::hash_map(text, text, 0..3),
        prop::collection::hash_map(text, text, 0..3),
    )
        .prop_map(
            |((name, workdir, num_nodes, setup, run), (infra, cpus, memory, autostop), envs, mounts)| {
                TaskSpec {
                    name,
                    workdir,
                    num_nodes,
                    resources: Some(Resources {
                        infra,
                        cpus,
                        memory,
                        autostop_idle_minutes: autostop,
                        ..Default::default()
                    }),
                    envs,
                    file_mounts: mounts,
                    setup,
                    run,
                    ..Default::default()
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_text_gets_a_task_or_an_error_that_says_why(text in ".{0,400}") {
        check(&text);
    }

    #[test]
    fn any_mix_of_task_fields_gets_a_task_or_an_error_that_says_why(text in yaml_task()) {
        check(&text);
    }

    #[test]
    fn any_task_spec_from_a_client_validates_or_says_why(task in any_task_spec()) {
        if let Err(err) = validate(&task) {
            prop_assert!(!err.0.trim().is_empty());
        }
    }
}

#[test]
fn deeply_nested_flow_collections_are_refused() {
    let text = format!("run: {}1{}", "[".repeat(100_000), "]".repeat(100_000));
    let err = parse_task_yaml(&text, Path::new("/")).unwrap_err();
    assert!(err.0.contains("nests deeper"), "{err}");
}

#[test]
fn deeply_nested_block_mappings_are_refused() {
    let text: String = (0..5_000).map(|depth| format!("{}k:\n", "  ".repeat(depth))).collect();
    let err = parse_task_yaml(&text, Path::new("/")).unwrap_err();
    assert!(!err.0.is_empty());
}

#[test]
fn oversized_yaml_is_refused_before_parsing() {
    let text = format!("run: |\n{}", "  echo padding\n".repeat(100_000));
    let err = parse_task_yaml(&text, Path::new("/")).unwrap_err();
    assert!(err.0.contains("larger than"), "{err}");
}

#[test]
fn alias_bombs_are_refused() {
    let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for level in 1..12 {
        let previous = format!("*a{}", level - 1);
        let items = [previous.as_str(); 10].join(", ");
        text.push_str(&format!("a{level}: &a{level} [{items}]\n"));
    }
    text.push_str("run: echo\n");
    let err = parse_task_yaml(&text, Path::new("/")).unwrap_err();
    assert!(!err.0.is_empty());
}
