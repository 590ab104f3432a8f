//! `selflet host` processes over Zenoh in secure mode: members started by hosts manage their
//! own deployment, and killing the process of the coordinator leads the lowest live member to
//! take over and restore the deployment on another host.
#![cfg(feature = "zenoh")]

#[path = "support/loopback.rs"]
mod loopback;
#[path = "support/process.rs"]
mod process;

use loopback::free_endpoint;
use process::Running;

fn host(name: &str, members: &str, network: &[&str], keys: &str) -> Running {
    let mut args = vec![
        "host",
        "--name",
        name,
        "--members",
        members,
        "--objective",
        "tests/fixtures/deploy/two.rhai",
        "--period",
        "1s",
        "--network",
        "zenoh",
        "--namespace",
        "deploy",
        "--security",
        "secure",
        "--keys",
        keys,
    ];
    args.extend_from_slice(network);
    args.push("tests/fixtures/deploy/member.yaml");
    let mut p = Running::start(&args);
    p.wait_for("hosting; press Ctrl-C to stop");
    p
}

#[test]
fn killing_the_coordinators_process_leads_to_reelection_and_a_new_member_elsewhere() {
    let keys = std::env::temp_dir().join(format!("selflet-keys-deploy-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&keys);
    let keys = keys.display().to_string();
    let (e1, e2, e3) = (free_endpoint(), free_endpoint(), free_endpoint());
    let mut h1 = host("h1", "1", &["--listen", &e1], &keys);
    let mut h2 = host("h2", "1", &["--listen", &e2, "--connect", &e1], &keys);
    let mut h3 = host(
        "h3",
        "0",
        &["--listen", &e3, "--connect", &e1, "--connect", &e2],
        &keys,
    );
    // Two members on two hosts: what the objective wants; h1-m1 (lowest) coordinates.
    h1.wait_for_all(&["deployment coordinator", "agent=h1-m1"]);
    h1.kill();
    // h2-m1 is now the lowest live member: it takes over, observes a period, and starts a
    // member on the only host without one.
    h2.wait_for_all(&["deployment coordinator", "agent=h2-m1"]);
    h2.wait_for_all(&["deployment plan executed", "agent=h2-m1", "add on h3"]);
    h3.wait_for_all(&["member started", "member=h3-m1"]);
    h2.interrupt();
    h3.interrupt();
    let _ = std::fs::remove_dir_all(&keys);
}
