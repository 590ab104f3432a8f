//! The table of topics is written once, in `selflet::topic`; `policies/README.md` shows it.

#[test]
fn the_event_table_of_the_policies_readme_is_the_topic_table() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/policies/README.md"))
            .expect("policies/README.md");
    let section = readme
        .split("## Events selflet publishes")
        .nth(1)
        .expect("the events section");
    let table: String = section
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(
        table,
        selflet::topic::markdown_table(),
        "regenerate the table in policies/README.md from selflet::topic::markdown_table()"
    );
}
