//! What grows with the population stays bounded per agent: starting N agents that offer
//! services costs O(N) adverts, not O(N²), and a discovery among many providers gets a few
//! answers, not one from each.

use selflet::behaviour::Behaviour;
use selflet::negotiation::ADVERT_FANOUT;
use selflet::transport::{MAX_PUBLISH_FANOUT, Transport};
use selflet::{Agent, AgentHandle, Network, OfferModes, Service, SourceFile, Value};

const N: usize = 600;

async fn provider(net: &Network, i: usize) -> AgentHandle {
    let echo = "behaviour: work\ninitial: e\nstates:\n  e: { do: { ability: echo, args: { x: input }, save: out }, on: { done: f } }\n  f: { final: true, output: out }\n";
    Agent::builder(format!("p{i}"))
        .network(net)
        .behaviour(Behaviour::parse(SourceFile::new("work.yaml", echo)).unwrap())
        .service(Service::new("work", OfferModes::CAN_DO))
        .ability("echo", |input: Value| async move {
            Ok(input.get("x").cloned().unwrap_or_default())
        })
        .spawn()
        .await
        .unwrap()
}

fn adverts(net: &Network) -> u64 {
    net.counters().by_kind.get("advert").copied().unwrap_or(0)
}

#[tokio::test(start_paused = true)]
async fn starting_many_providers_costs_adverts_linear_in_their_number() {
    let net = Network::new();
    let mut agents = Vec::new();
    for i in 0..N {
        agents.push(provider(&net, i).await);
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    // Each agent tells at most ADVERT_FANOUT others, and each of those answers once.
    let sent = adverts(&net);
    let bound = (2 * ADVERT_FANOUT * N) as u64;
    assert!(
        sent <= bound,
        "{sent} adverts for {N} agents (at most {bound}; all to all would be {})",
        N * (N - 1)
    );
    assert!(sent >= N as u64, "every agent advertised: {sent}");
    // Each knows a bounded number of providers, none of them itself.
    for a in &agents {
        let known = a.knowledge().providers().providers("work");
        assert!(known.len() <= selflet::knowledge::MAX_PROVIDERS_PER_SERVICE);
        assert!(known.iter().all(|p| p.agent != a.name()));
    }

    // A newcomer that needs `work` discovers providers: a bounded number answer, and the
    // call is served.
    let before = adverts(&net);
    let c = Agent::builder("client")
        .network(&net)
        .spawn()
        .await
        .unwrap();
    assert_eq!(c.call("work", 7).await.unwrap(), Value::Int(7));
    let answers = adverts(&net) - before;
    assert!(
        (1..=MAX_PUBLISH_FANOUT as u64).contains(&answers),
        "{answers} providers answered one discovery among {N}"
    );
}
