//! Seed 001's self-assembly experiment, reduced for CI (fewer agents, rounds and seeds, the
//! same code as `cargo run --release --example self_assembly`): two-layer RL assembles nearly
//! everything at high quality and fairness, above random choice; a join disturbs it and it
//! recovers; gossip traffic per agent does not grow with N.

#[path = "../examples/self_assembly/analysis.rs"]
mod analysis;
#[path = "../examples/self_assembly/experiment.rs"]
mod experiment;

use analysis::{Disturbance, Series};
use experiment::{Params, Run, Scenario};
use selflet::choice::{Choice, Learning};

const AGENTS: usize = 100;
const ROUNDS: u64 = 160;
const SEEDS: u64 = 2;

fn params(scenario: Scenario, choice: Choice, agents: usize, seed: u64) -> Params {
    Params {
        agents,
        rounds: ROUNDS,
        change_at: ROUNDS / 2,
        churn: agents / 2,
        ..Params::paper(scenario, choice, seed)
    }
}

async fn runs(scenario: Scenario, choice: Choice) -> Vec<Run> {
    let mut out = Vec::new();
    for seed in 1..=SEEDS {
        let p = params(scenario, choice, AGENTS, seed);
        out.push(experiment::run(&p, &|| ()).await.unwrap());
    }
    out
}

fn series(runs: &[Run], f: fn(&Run) -> &Vec<f64>) -> Series {
    Series::of(&runs.iter().map(|r| f(r).as_slice()).collect::<Vec<_>>())
}

fn two_layer() -> Choice {
    Choice::TwoLayerRl(Learning::default())
}

#[tokio::test(start_paused = true)]
async fn two_layer_rl_assembles_almost_everything_well_and_fairly_and_beats_random() {
    let rl = runs(Scenario::Static, two_layer()).await;
    let random = runs(Scenario::Static, Choice::Random).await;
    let (xi, zeta, resolved) = (
        series(&rl, |r| &r.xi),
        series(&rl, |r| &r.zeta),
        series(&rl, |r| &r.resolved),
    );
    let end = ROUNDS;
    assert!(
        resolved.at(end) >= 0.95,
        "resolved {:.3} at round {end}",
        resolved.at(end)
    );
    assert!(
        xi.at(end) >= 0.85 && zeta.at(end) >= 0.9,
        "ξ {:.3}, ζ {:.3} at round {end}",
        xi.at(end),
        zeta.at(end)
    );
    let (rxi, rzeta) = (series(&random, |r| &r.xi), series(&random, |r| &r.zeta));
    // Averaged over the last 40 rounds: at this size one round of one seed is noisy.
    let late = |s: &Series| s.mean_over(end - 39, end);
    assert!(
        late(&xi) > late(&rxi) && late(&zeta) > late(&rzeta),
        "two-layer RL ξ {:.3}, ζ {:.3}; random ξ {:.3}, ζ {:.3}",
        late(&xi),
        late(&zeta),
        late(&rxi),
        late(&rzeta)
    );
    assert!(rl.iter().all(|r| r.calls > 0), "agents called each other");
}

#[tokio::test(start_paused = true)]
async fn a_join_disturbs_two_layer_rl_and_it_makes_up_most_of_the_drop() {
    let rl = runs(Scenario::Join, two_layer()).await;
    let xi = series(&rl, |r| &r.xi);
    let d = Disturbance::of(&xi, ROUNDS / 2);
    assert!(
        d.before - d.lowest > 0.1,
        "the joiners' load disturbs the assembly: before {:.3}, lowest {:.3}",
        d.before,
        d.lowest
    );
    // Back within 0.02 of the level before takes about 60 rounds at this size, longer than
    // the paper's "few steps" (examples/self_assembly/README.md gives the figures at
    // N = 1000); half the drop is made up within 50 with a wide margin.
    assert!(
        d.half.is_some_and(|r| r <= 50),
        "half of the drop from {:.3} to {:.3} made up in ≤ 50 rounds: {:?}",
        d.before,
        d.lowest,
        d.half
    );
    let resolved = series(&rl, |r| &r.resolved);
    assert!(resolved.at(ROUNDS) >= 0.95, "the joiners are resolved too");
}

#[tokio::test(start_paused = true)]
async fn gossip_traffic_per_agent_does_not_grow_with_n() {
    let mut per_agent = Vec::new();
    for agents in [50, 100, 150] {
        let p = Params {
            rounds: 40,
            change_at: u64::MAX,
            ..params(Scenario::Static, two_layer(), agents, 1)
        };
        let run = experiment::run(&p, &|| ()).await.unwrap();
        // At most fan-out + 1 messages a round (one draw may be the agent itself), each of at
        // most N_K entries per needed type plus the agent's own offer.
        let g = p.gossip;
        assert!(run.gossip_messages <= (g.fanout + 1) as f64, "{run:?}");
        assert!(
            run.gossip_entries <= (g.fanout * (g.known * 9 + 1)) as f64,
            "{run:?}"
        );
        per_agent.push(run.gossip_entries);
    }
    let (lo, hi) = (per_agent[0], per_agent[2]);
    assert!(
        (hi - lo).abs() <= 0.15 * lo,
        "entries per agent and round: {per_agent:?}"
    );
}

/// The other scenarios of a seed branch from the static run at the change point instead of
/// playing the rounds before it again. A branch that changes nothing goes on as the trunk
/// does: every agent knows the providers it knew, advertises what it had settled, and its
/// strategy chooses as it had learned to. (Agents that forgot their providers, or whose
/// learners start afresh, try untried ones, and ξ falls by 0.1–0.2 for several rounds.)
#[tokio::test(start_paused = true)]
async fn a_branch_that_changes_nothing_goes_on_as_its_trunk_does() {
    let p = params(Scenario::Static, two_layer(), AGENTS, 1);
    let saved = std::sync::Mutex::new(None);
    let keep = |s| *saved.lock().unwrap() = Some(s);
    let trunk = experiment::trunk(&p, &|| (), Some(&keep)).await.unwrap();
    let snapshot = saved
        .into_inner()
        .unwrap()
        .expect("a snapshot at the change point");
    let branch = experiment::branch(&p, &snapshot, &|| ()).await.unwrap();
    let before = (p.change_at - 1) as usize;
    assert_eq!(
        branch.xi[..before],
        trunk.xi[..before],
        "the rounds before are the trunk's"
    );
    // Round by round over the first ten after the branch, and on average.
    let after = before..before + 10;
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    for (what, b, t) in [
        ("ξ", &branch.xi, &trunk.xi),
        ("resolved", &branch.resolved, &trunk.resolved),
    ] {
        let (b, t) = (&b[after.clone()], &t[after.clone()]);
        assert!(
            b.iter().zip(t).all(|(b, t)| (b - t).abs() <= 0.1) && (mean(b) - mean(t)).abs() <= 0.03,
            "{what} after the branch point: branch {b:.3?}, trunk {t:.3?}"
        );
    }
}

/// A run is a function of its seed: single-layer RL, which moves the most, through the quality
/// change, among 400 agents. It was written to catch learners that forget records in a hash
/// map's randomly seeded order (which failed it 3 times in 3 at 700 agents); since answers
/// carry their provider's advertisement and bindings move with the probability of the gain,
/// learners here no longer try more than 64 providers of a type (none forgotten at 700 or
/// 1000 agents over 160 rounds, counted), so that rule is now pinned by the unit test
/// `learners_of_one_seed_fed_the_same_calls_forget_the_same_records`.
#[tokio::test(start_paused = true)]
async fn the_same_seed_gives_the_same_run() {
    let p = params(
        Scenario::Quality,
        Choice::SingleLayerRl(Learning::default()),
        400,
        1,
    );
    let first = experiment::run(&p, &|| ()).await.unwrap();
    let second = experiment::run(&p, &|| ()).await.unwrap();
    assert_eq!(first.calls, second.calls);
    // Sums over agents are taken in the order they settle: equal up to rounding.
    let same = |a: &[f64], b: &[f64]| {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-9)
    };
    for (what, a, b) in [
        ("ξ", &first.xi, &second.xi),
        ("ζ", &first.zeta, &second.zeta),
        ("resolved", &first.resolved, &second.resolved),
    ] {
        assert!(same(a, b), "{what} differs between two runs of one seed");
    }
}
