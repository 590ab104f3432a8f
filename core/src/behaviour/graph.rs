//! Statecharts as pictures: Mermaid (renders on GitHub and in most Markdown viewers) and DOT.

use std::fmt::Write;

use super::Behaviour;

/// The behaviour as a Mermaid `stateDiagram-v2`.
pub fn mermaid(b: &Behaviour) -> String {
    let mut out = String::from("stateDiagram-v2\n");
    let _ = writeln!(out, "    [*] --> {}", id(b.initial()));
    for s in b.state_info() {
        for (trigger, target, p) in &s.transitions {
            let _ = writeln!(
                out,
                "    {} --> {}: {}",
                id(&s.name),
                id(target),
                label(trigger, *p)
            );
        }
        if s.is_final {
            let _ = writeln!(out, "    {} --> [*]", id(&s.name));
        }
    }
    out
}

/// The behaviour as a Graphviz DOT digraph.
pub fn dot(b: &Behaviour) -> String {
    let mut out = format!(
        "digraph \"{}\" {{\n    rankdir=LR;\n    __start [shape=point];\n",
        b.name()
    );
    let _ = writeln!(out, "    __start -> \"{}\";", b.initial());
    for s in b.state_info() {
        let shape = if s.is_final {
            "doublecircle"
        } else {
            "box, style=rounded"
        };
        let _ = writeln!(out, "    \"{}\" [shape={shape}];", s.name);
        for (trigger, target, p) in &s.transitions {
            let _ = writeln!(
                out,
                "    \"{}\" -> \"{}\" [label=\"{}\"];",
                s.name,
                target,
                label(trigger, *p).replace('"', "'")
            );
        }
    }
    out.push_str("}\n");
    out
}

/// Mermaid state ids may not contain `-`.
fn id(name: &str) -> String {
    name.replace('-', "_")
}

fn label(trigger: &str, p: Option<f64>) -> String {
    // `:` ends a Mermaid label's text early.
    let t = trigger.replace(':', " ");
    match p {
        Some(p) => format!("{t} ({p})"),
        None => t,
    }
}
