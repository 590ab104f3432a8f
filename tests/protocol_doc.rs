//! `docs/protocol.md` shows every kind of envelope as JSON: each example must parse as an
//! envelope and print back as the same JSON, so the page cannot drift from the code.

use selflet::transport::Envelope;

#[test]
fn every_json_example_of_the_protocol_page_is_an_envelope_that_round_trips() {
    let page = include_str!("../docs/protocol.md");
    let examples: Vec<&str> = page
        .split("```json\n")
        .skip(1)
        .filter_map(|b| b.split("\n```").next())
        .filter(|b| !b.contains("..."))
        .collect();
    let mut kinds = Vec::new();
    for example in &examples {
        let env: Envelope = serde_json::from_str(example)
            .unwrap_or_else(|e| panic!("not an envelope ({e}):\n{example}"));
        let back = serde_json::to_value(&env).unwrap();
        let written: serde_json::Value = serde_json::from_str(example).unwrap();
        assert_eq!(back, written, "printed back differently:\n{example}");
        kinds.push(env.body.kind());
    }
    kinds.sort_unstable();
    kinds.dedup();
    assert_eq!(
        kinds,
        [
            "advert", "discover", "failure", "gossip", "lesson", "load", "referral", "refusal",
            "request", "result", "teaching"
        ],
        "every kind of message has an example"
    );
}
