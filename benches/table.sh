#!/usr/bin/env bash
# Runs every bench that has a target, each with its reference in the same run, measures idle
# agents, and prints the table of figures, references, ratios and targets (Markdown).
# Extra arguments go to criterion, e.g. `benches/table.sh --measurement-time 3`.
set -euo pipefail
cd "$(dirname "$0")/.."
for b in bus policy space_saving call zenoh; do
    cargo bench --bench "$b" -- "$@"
done
mkdir -p target/criterion
cargo run --release --example many_agents -- 100000 --json > target/criterion/idle_agents.json
cargo run --release --example bench_table
