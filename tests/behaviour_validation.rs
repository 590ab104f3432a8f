//! Behaviour validation: every problem is found before anything runs, with its location.

use selflet::SourceFile;
use selflet::behaviour::Behaviour;

fn problems(text: &str) -> Vec<(usize, usize, String)> {
    let err = Behaviour::parse(SourceFile::new("b.yaml", text)).expect_err("should be refused");
    err.problems()
        .iter()
        .map(|p| (p.line(), p.column(), p.message().to_owned()))
        .collect()
}

fn has(p: &[(usize, usize, String)], line: usize, col: usize, needle: &str) {
    assert!(
        p.iter()
            .any(|(l, c, m)| *l == line && *c == col && m.contains(needle)),
        "no `{needle}` at {line}:{col} in {p:?}"
    );
}

#[test]
fn shipped_behaviours_validate() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/behaviors");
    let mut validated = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            Behaviour::load(&path).unwrap_or_else(|e| panic!("{e}"));
            validated += 1;
        }
    }
    assert_eq!(validated, 7, "every behaviour in behaviors/");
}

#[test]
fn a_transition_to_an_unknown_state_is_located_at_its_target() {
    let p = problems(
        "behaviour: b\ninitial: a\nstates:\n  a: { on: { done: nowhere } }\n  z: { final: true }\n",
    );
    has(&p, 4, 20, "unknown state `nowhere`");
    assert_eq!(
        p.len(),
        2,
        "no cascade of errors from one bad target: {p:?}"
    );
}

#[test]
fn an_unknown_initial_state_is_located() {
    let p = problems("behaviour: b\ninitial: x\nstates:\n  a: { final: true }\n");
    has(&p, 2, 10, "initial state `x`");
}

#[test]
fn unreachable_states_are_reported_at_their_key() {
    let p = problems(
        "behaviour: b\ninitial: a\nstates:\n  a: { final: true }\n  lost: { on: { done: a } }\n",
    );
    has(&p, 5, 3, "cannot be reached");
}

#[test]
fn a_behaviour_without_a_final_state_is_refused() {
    let p = problems("behaviour: b\ninitial: a\nstates:\n  a: { on: { done: a } }\n");
    has(&p, 2, 10, "at least one final state");
}

#[test]
fn a_state_that_cannot_be_left_is_refused() {
    let p = problems(
        "behaviour: b\ninitial: a\nstates:\n  a: { do: { set: { x: \"1\" } } }\n  f: { final: true }\n",
    );
    has(&p, 4, 3, "no transition out");
}

#[test]
fn guards_and_expressions_that_do_not_compile_are_located() {
    let p = problems(
        "behaviour: b\ninitial: a\nstates:\n  a:\n    on:\n      done: { target: f, guard: \"x >\" }\n  f: { final: true, output: \"1 +* 2\" }\n",
    );
    has(&p, 6, 33, "`x >` does not compile");
    has(&p, 7, 29, "does not compile");
}

#[test]
fn duplicate_state_names_are_refused() {
    let p =
        problems("behaviour: b\ninitial: a\nstates:\n  a: { final: true }\n  a: { final: true }\n");
    assert_eq!(p[0].0, 5);
    assert!(p[0].2.to_lowercase().contains("duplicate"), "{p:?}");
}

#[test]
fn unknown_keys_are_refused_with_what_was_expected() {
    let p = problems("behaviour: b\ninitial: a\nstates:\n  a: { final: true, outptu: \"1\" }\n");
    has(&p, 4, 21, "unknown field `outptu`");
    assert!(p[0].2.contains("output"));
}

#[test]
fn calls_to_services_not_in_requires_are_refused() {
    let p = problems(
        "behaviour: b\ninitial: a\nstates:\n  a: { do: { call: s9 }, on: { done: f } }\n  f: { final: true }\n",
    );
    has(&p, 4, 20, "not listed in `requires`");
}

#[test]
fn bad_durations_actions_and_probabilities_are_refused() {
    let p = problems(
        "behaviour: b\ninitial: a\nstates:\n  a:\n    after: { soon: f }\n    do: { set: { x: \"1\" }, log: \"x\" }\n    on: { done: { target: f, probability: 1.5 } }\n  f: { final: true }\n",
    );
    has(&p, 5, 14, "not a duration");
    has(&p, 4, 3, "exactly one of");
    has(&p, 7, 43, "between 0 and 1");
}

#[test]
fn assigning_reserved_variables_is_refused() {
    let p = problems(
        "behaviour: b\ninitial: a\nstates:\n  a: { entry: { set: { input: \"1\" } }, on: { done: f } }\n  f: { final: true }\n",
    );
    has(&p, 4, 24, "set by the interpreter");
}

#[test]
fn states_certain_to_loop_without_waiting_are_refused_at_the_first_of_them() {
    // Issue 13, case 1: this passed `selflet check`, then spun a core for ever.
    let p = problems(
        "behaviour: b\ninitial: a\nstates:\n  a: { on: { done: [a, f] } }\n  f: { final: true, output: \"1\" }\n",
    );
    has(&p, 4, 3, "loop for ever without waiting");
    // A longer cycle, through eventless transitions and a state that only sets a variable.
    let p = problems(
        // (`go` can never be taken: `always` moves on first.)
        "behaviour: b\ninitial: a\nvars: { x: 0 }\nstates:\n  a: { always: b, on: { go: f } }\n  b: { do: { set: { x: \"x + 1\" } }, on: { done: a } }\n  f: { final: true }\n",
    );
    has(&p, 5, 3, "[a, b]");
}

#[test]
fn loops_that_wait_or_may_end_are_not_refused() {
    for ok in [
        // A guard may end it.
        "behaviour: b\ninitial: a\nvars: { n: 0 }\nstates:\n  a: { always: [ { target: a, guard: \"n < 3\", do: { set: { n: \"n + 1\" } } }, f ] }\n  f: { final: true }\n",
        // A timer between rounds.
        "behaviour: b\ninitial: a\nstates:\n  a: { after: { 1s: a }, on: { go: f } }\n  f: { final: true }\n",
        // A call to wait for.
        "behaviour: b\nrequires: [s]\ninitial: a\nstates:\n  a: { do: { call: s }, on: { done: a, error: f } }\n  f: { final: true }\n",
    ] {
        Behaviour::parse(SourceFile::new("b.yaml", ok)).unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn durations_beyond_a_year_are_refused_where_they_are_written() {
    // Issue 13, case 2: this passed, then panicked a tokio worker whenever the state was
    // entered.
    let p = problems(
        "behaviour: b\ninitial: a\nstates:\n  a: { after: { 10000000000000000000s: f } }\n  f: { final: true }\n",
    );
    has(&p, 4, 17, "longer than the longest duration");
}

#[test]
fn yaml_reads_only_true_and_false_as_booleans() {
    // YAML 1.1 took `n`, `no`, `on` and `off` for booleans (the "Norway problem"); selflet reads
    // YAML 1.2's core schema, so an edited behaviour keeps its `n`.
    let b = Behaviour::parse(SourceFile::new(
        "b.yaml",
        "behaviour: b\ninput: [n, no]\nvars: { country: no }\ninitial: a\nstates:\n  a: { final: true, output: country }\n",
    ))
    .unwrap();
    assert_eq!(b.inputs(), ["n", "no"]);
    // An edit reads the file as values and writes it back: nothing turns into a boolean.
    let edited = b.modify(|_| Ok(())).unwrap();
    assert_eq!(edited.inputs(), ["n", "no"]);
    let text: selflet::Value = selflet::source::from_yaml("[n, on, off, yes, true]").unwrap();
    assert_eq!(
        text,
        selflet::Value::List(vec![
            "n".into(),
            "on".into(),
            "off".into(),
            "yes".into(),
            selflet::Value::Bool(true)
        ])
    );
}

#[test]
fn timers_wait_at_least_a_millisecond() {
    // A loop of timers that do not wait would reset the step budget for ever.
    let p = problems(
        "behaviour: b\ninitial: a\nstates:\n  a: { after: { 0ms: a, 0.5ms: f } }\n  f: { final: true }\n",
    );
    has(&p, 4, 17, "at least 1ms");
    has(&p, 4, 25, "at least 1ms");
}
