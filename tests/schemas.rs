//! The JSON Schemas editors use say what selflet accepts: every shipped manifest and behaviour
//! validates against its schema, and files selflet refuses for their shape are refused by the
//! schema too.

use std::path::Path;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn schema(path: &str) -> jsonschema::Validator {
    let text = std::fs::read_to_string(format!("{ROOT}/{path}")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    jsonschema::validator_for(&json).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A YAML file as JSON.
fn json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap();
    let value: selflet::Value = selflet::source::from_yaml(&text).unwrap();
    value.to_json().unwrap()
}

fn yaml_files(dirs: &[&str], is: impl Fn(&str) -> bool) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for dir in dirs {
        for entry in std::fs::read_dir(format!("{ROOT}/{dir}")).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if path.extension().is_some_and(|e| e == "yaml") && is(&text) {
                out.push(path);
            }
        }
    }
    out
}

fn is_behaviour(text: &str) -> bool {
    text.lines().any(|l| l.starts_with("behaviour:"))
}

#[test]
fn every_shipped_manifest_validates_against_the_manifest_schema() {
    let manifests = schema("docs/manifest.schema.json");
    let dirs = [
        "examples/home",
        "examples/teaching",
        "examples/chain",
        "examples/emergent",
        "tests/fixtures/zenoh",
        "tests/fixtures/contain",
    ];
    let files = yaml_files(&dirs, |t| !is_behaviour(t));
    assert!(files.len() >= 14, "{files:?}");
    for f in files {
        let errors: Vec<String> = manifests
            .iter_errors(&json(&f))
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{}: {errors:?}", f.display());
    }
}

#[test]
fn every_shipped_behaviour_validates_against_the_behaviour_schema() {
    let behaviours = schema("behaviors/behaviour.schema.json");
    let dirs = [
        "behaviors",
        "examples/chain",
        "examples/emergent/behaviors",
        "tests/fixtures/zenoh",
        "tests/fixtures/contain",
    ];
    let files = yaml_files(&dirs, is_behaviour);
    assert!(files.len() >= 15, "{files:?}");
    for f in files {
        let errors: Vec<String> = behaviours
            .iter_errors(&json(&f))
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{}: {errors:?}", f.display());
    }
}

#[test]
fn the_manifest_schema_refuses_what_selflet_refuses_for_its_shape() {
    let manifests = schema("docs/manifest.schema.json");
    for (bad, why) in [
        (r#"{"goal": "no name"}"#, "a name is required"),
        (
            r#"{"name": "a", "colour": "red"}"#,
            "unknown keys are refused",
        ),
        (r#"{"name": "1a"}"#, "names start with a letter"),
        (
            r#"{"name": "a", "services": {"s": {"modes": []}}}"#,
            "a service has a mode",
        ),
        (
            r#"{"name": "a", "services": {"s": {"modes": ["maybe"]}}}"#,
            "modes are the four",
        ),
        (
            r#"{"name": "a", "negotiation": {"timeout": "soon"}}"#,
            "durations have units",
        ),
        (r#"{"name": "a", "security": "paranoid"}"#, "open or secure"),
        (
            r#"{"name": "a", "network": {"zenoh": {"listen": ["udp/1.2.3.4:5"]}}}"#,
            "tcp endpoints",
        ),
    ] {
        let v: serde_json::Value = serde_json::from_str(bad).unwrap();
        assert!(!manifests.is_valid(&v), "{why}: {bad}");
        // And selflet itself refuses it too.
        let yaml = serde_saphyr::to_string(&selflet::Value::from_json(v)).unwrap();
        let parsed =
            selflet::Manifest::parse(&selflet::SourceFile::new("m.yaml", yaml), Path::new("."));
        assert!(
            parsed.is_err(),
            "selflet accepts what the schema refuses ({why}): {bad}"
        );
    }
}
