//! The core's modules use only modules of lower layers, as the table in `core/src/lib.rs`
//! says: no cycles, and no part reaching up into another.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

const CORE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/core/src");

/// The layer of each module, from the table in the crate's docs.
fn layers() -> BTreeMap<String, usize> {
    let lib = std::fs::read_to_string(format!("{CORE}/lib.rs")).unwrap();
    let table = lib
        .split("| layer | modules |")
        .nth(1)
        .expect("the layer table");
    let mut out = BTreeMap::new();
    for line in table.lines().skip(2) {
        let cells: Vec<&str> = line.trim_start_matches("//!").trim().split('|').collect();
        let [_, layer, modules, _] = cells[..] else {
            break;
        };
        let layer: usize = layer.trim().parse().expect("a layer number");
        for m in modules.split(',') {
            out.insert(m.trim().trim_matches('`').to_owned(), layer);
        }
    }
    out
}

/// The modules each module's files name as `crate::<module>`, outside comments.
fn uses() -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut files = vec![Path::new(CORE).to_path_buf()];
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        let rel = path.strip_prefix(CORE).unwrap();
        let module = rel
            .iter()
            .next()
            .unwrap()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_owned();
        if module == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let entry = out.entry(module.clone()).or_default();
        for line in text.lines().filter(|l| !l.trim_start().starts_with("//")) {
            for (i, _) in line.match_indices("crate::") {
                let used: String = line[i + 7..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if used != module {
                    entry.insert(used);
                }
            }
        }
    }
    out
}

#[test]
fn every_module_uses_only_modules_of_lower_layers() {
    let layers = layers();
    let uses = uses();
    let mut wrong = Vec::new();
    for (module, used) in &uses {
        let Some(&layer) = layers.get(module) else {
            wrong.push(format!("`{module}` is not in the layer table"));
            continue;
        };
        for u in used {
            match layers.get(u) {
                Some(&l) if l < layer => {}
                Some(&l) => {
                    wrong.push(format!("`{module}` (layer {layer}) uses `{u}` (layer {l})"))
                }
                None => wrong.push(format!("`{module}` uses `{u}`, which is not in the table")),
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert_eq!(
        layers.keys().collect::<BTreeSet<_>>(),
        uses.keys().collect::<BTreeSet<_>>(),
        "the table lists exactly the modules"
    );
}
