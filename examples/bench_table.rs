//! The performance table: every figure the benches measure, against its reference from the
//! same run, as a ratio, and whether it meets its target. Reads criterion's estimates in
//! `target/criterion`, the Zenoh bench's p50s in `target/criterion/zenoh_round_trips.json` and
//! the idle-agent measurement in `target/criterion/idle_agents.json`;
//! `benches/table.sh` runs everything and then this.
//!
//! ```text
//! benches/table.sh                          # all benches, then the table
//! cargo run --release --example bench_table # the table from the last runs
//! ```

use std::path::{Path, PathBuf};

use selflet::Value;

/// One row: a figure, its reference, and the target on their ratio (or on the figure).
struct Row {
    figure: String,
    value: Option<f64>,
    reference: Option<f64>,
    /// How the row is judged, from (value, reference).
    target: Target,
    unit: Unit,
}

#[derive(Clone, Copy)]
enum Target {
    /// value / reference at most this.
    RatioAtMost(f64),
    /// reference / value at least this (throughput as a share of the reference's).
    ShareAtLeast(f64),
    /// value at most this, in the row's unit.
    AtMost(f64),
}

#[derive(Clone, Copy)]
enum Unit {
    Nanos,
    KiB,
    MiB,
    Seconds,
}

fn median_ns(root: &Path, id: &str) -> Option<f64> {
    let path = root.join(id).join("new/estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let v: Value = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .map(Value::from_json)?;
    v.get("median")?.get("point_estimate")?.as_f64()
}

/// A JSON file a bench or example wrote beside criterion's estimates.
fn written(root: &Path, file: &str) -> Option<Value> {
    let text = std::fs::read_to_string(root.join(file)).ok()?;
    serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .map(Value::from_json)
}

fn rows(root: &Path) -> Vec<Row> {
    let m = |id: &str| median_ns(root, id);
    let zenoh = written(root, "zenoh_round_trips.json");
    let p50 = |kind: &str| zenoh.as_ref()?.get("p50_ns")?.get(kind)?.as_f64();
    let mut rows = vec![
        Row {
            figure: "bus publish → deliver, 1 subscriber (vs raw async-channel)".into(),
            value: m("publish_deliver/bus/1"),
            reference: m("publish_deliver/raw_async_channel/1"),
            target: Target::ShareAtLeast(0.8),
            unit: Unit::Nanos,
        },
        Row {
            // The event the bus makes per publish (shared, stamped on tokio's clock) carried by
            // the raw channel, with no bus around it: the floor under the row above.
            figure: "the bus's event alone on a raw async-channel (vs raw async-channel)".into(),
            value: m("publish_deliver/raw_async_channel_events/1"),
            reference: m("publish_deliver/raw_async_channel/1"),
            target: Target::ShareAtLeast(0.8),
            unit: Unit::Nanos,
        },
        Row {
            figure: "matched policy rule (vs a native closure)".into(),
            value: m("policy/rhai_rule_matching"),
            reference: m("policy/native_closure"),
            target: Target::AtMost(1_000.0),
            unit: Unit::Nanos,
        },
        Row {
            // rhai's own cost for the rule's two closures: the floor under the row above.
            figure: "the rule's closures in plain rhai (vs a native closure)".into(),
            value: m("policy/rhai_closures_alone"),
            reference: m("policy/native_closure"),
            target: Target::AtMost(1_000.0),
            unit: Unit::Nanos,
        },
        Row {
            // The same rule inline, one entry into rhai, the event made the map rules see: the
            // least this rule costs in rhai in any form, with no sandbox around it.
            figure: "the rule inline in plain rhai, event map made (vs a native closure)".into(),
            value: m("policy/rhai_inline_alone"),
            reference: m("policy/native_closure"),
            target: Target::AtMost(1_000.0),
            unit: Unit::Nanos,
        },
        // The Zenoh targets are set at p50: the bench's interleaved round trips, not
        // criterion's blocks, which this VM's drift between blocks moves by up to 40 %.
        Row {
            figure: "service call across two processes, p50 (vs a bare Zenoh query)".into(),
            value: p50("service_call"),
            reference: p50("bare_query_request_size"),
            target: Target::RatioAtMost(1.2),
            unit: Unit::Nanos,
        },
        Row {
            figure: "teaching across two processes, p50 (vs a query of the package's size)".into(),
            value: p50("teaching"),
            reference: p50("bare_query_package_size"),
            target: Target::RatioAtMost(1.5),
            unit: Unit::Nanos,
        },
    ];
    for k in ["100", "1024", "10000"] {
        for (reference, figure) in [
            (
                "topk_filtered_space_saving",
                "Space-Saving update, Zipf 1.1 (vs topk), k = ",
            ),
            (
                "datasketches_frequent_items",
                "Space-Saving update, Zipf 1.1 (vs datasketches), k = ",
            ),
        ] {
            rows.push(Row {
                figure: format!("{figure}{k}"),
                value: m(&format!("space_saving/selflet/{k}")),
                reference: m(&format!("space_saving/{reference}/{k}")),
                target: Target::RatioAtMost(1.0),
                unit: Unit::Nanos,
            });
        }
    }
    for w in ["1 worker(s)", "2 worker(s)"] {
        rows.push(Row {
            figure: format!("call between two agents in one process, {w} (vs a ractor call)"),
            value: m(&format!("call/selflet/{w}")),
            reference: m(&format!("call/ractor/{w}")),
            target: Target::RatioAtMost(5.0),
            unit: Unit::Nanos,
        });
    }
    let idle = written(root, "idle_agents.json");
    rows.push(Row {
        figure: "idle agent, 100,000 in one process (resident memory per agent)".into(),
        value: idle.as_ref().and_then(|v| v.get("per_agent_kib")?.as_f64()),
        reference: None,
        target: Target::AtMost(4.0),
        unit: Unit::KiB,
    });
    rows.push(Row {
        figure: "100,000 idle agents in one process (resident memory)".into(),
        value: idle.as_ref().and_then(|v| v.get("total_mib")?.as_f64()),
        reference: None,
        target: Target::AtMost(511.0),
        unit: Unit::MiB,
    });
    rows.push(Row {
        figure: "100,000 idle agents spawned".into(),
        value: idle.as_ref().and_then(|v| v.get("spawn_s")?.as_f64()),
        reference: None,
        target: Target::AtMost(5.0),
        unit: Unit::Seconds,
    });
    rows
}

fn show(x: f64, unit: Unit) -> String {
    match unit {
        Unit::Nanos if x >= 1e6 => format!("{:.2} ms", x / 1e6),
        Unit::Nanos if x >= 1e3 => format!("{:.2} µs", x / 1e3),
        Unit::Nanos => format!("{x:.1} ns"),
        // Two places: the target is 4.0 and a figure just under it must not print as 4.0.
        Unit::KiB => format!("{x:.2} KiB"),
        Unit::MiB => format!("{x:.0} MiB"),
        Unit::Seconds => format!("{x:.2} s"),
    }
}

/// The ratio shown and whether the target holds.
fn judge(r: &Row) -> (String, Option<bool>) {
    let (Some(v), reference) = (r.value, r.reference) else {
        return ("—".into(), None);
    };
    match (r.target, reference) {
        (Target::RatioAtMost(t), Some(b)) => (format!("{:.2}× (≤ {t})", v / b), Some(v / b <= t)),
        (Target::ShareAtLeast(t), Some(b)) => (format!("{:.2} (≥ {t})", b / v), Some(b / v >= t)),
        (Target::AtMost(t), Some(b)) => (
            format!("{:.1}× (≤ {})", v / b, show(t, r.unit)),
            Some(v <= t),
        ),
        (Target::AtMost(t), None) => (format!("≤ {}", show(t, r.unit)), Some(v <= t)),
        (Target::RatioAtMost(_) | Target::ShareAtLeast(_), None) => ("—".into(), None),
    }
}

fn main() {
    let root: PathBuf = [env!("CARGO_MANIFEST_DIR"), "target", "criterion"]
        .iter()
        .collect();
    println!("| figure | selflet | reference | ratio (target) | holds |");
    println!("|---|---|---|---|---|");
    for r in rows(&root) {
        let (ratio, holds) = judge(&r);
        let value = r.value.map_or("not run".into(), |v| show(v, r.unit));
        let reference = r.reference.map_or("—".into(), |v| show(v, r.unit));
        let holds = match holds {
            Some(true) => "yes",
            Some(false) => "no",
            None => "—",
        };
        println!(
            "| {} | {value} | {reference} | {ratio} | {holds} |",
            r.figure
        );
    }
    println!(
        "\nMedians of criterion's samples (the Zenoh rows: p50s of interleaved round trips), from {}; machine: {} cores.",
        root.display(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
}
