//! A and B of the teaching demo on a fast clock (`tests/fixtures/console`), on one in-process
//! network, both shown by a console.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use selflet::console::Console;
use selflet::{Agent, AgentHandle, Manifest, Network};

/// A and B, reporting to `console` every `period`; A without its policy unless `policy`.
pub(crate) async fn teaching_pair(
    console: &Console,
    period: Duration,
    policy: bool,
) -> (AgentHandle, AgentHandle) {
    let root = env!("CARGO_MANIFEST_DIR");
    let net = Network::new();
    let mut agents = Vec::new();
    for name in ["a", "b"] {
        let mut m = Manifest::load(format!("{root}/tests/fixtures/console/{name}.yaml")).unwrap();
        if !policy {
            m.policies.clear();
        }
        let agent = Agent::from_manifest(&m)
            .transport(Arc::new(net.clone()))
            .predictor_kinds(selflet::plugins::kinds())
            .spawn()
            .await
            .unwrap();
        console.watch(&agent, period);
        agents.push(agent);
    }
    let b = agents.pop().unwrap();
    (agents.pop().unwrap(), b)
}
