//! The layering docs/design.md describes, checked on the source: the
//! top-level modules import each other without cycles, `config` imports
//! nothing above the sans-IO layer, and the connection code (`server`)
//! names no feature module: features hear it through the chain.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The feature modules of `src/modules.rs`.
const FEATURES: &[&str] = &[
    "notify",
    "record",
    "hls",
    "relay",
    "split",
    "exec",
    "access_log",
];

fn imports() -> BTreeMap<String, BTreeSet<String>> {
    fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(&src).unwrap().to_string_lossy().into_owned();
        let module = rel
            .split('/')
            .next()
            .unwrap()
            .trim_end_matches(".rs")
            .to_owned();
        if module == "main" || module == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        for line in text.lines() {
            let code = line.split("//").next().unwrap_or_default();
            for (i, _) in code.match_indices("crate::") {
                let name: String = code[i + 7..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() && name != module {
                    graph.entry(module.clone()).or_default().insert(name);
                }
            }
        }
    }
    graph
}

#[test]
fn no_import_cycles_between_top_level_modules() {
    let g = imports();
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) {
        if let Some(i) = path.iter().position(|p| p == n) {
            panic!("import cycle: {} -> {n}", path[i..].join(" -> "));
        }
        if done.contains(n) {
            return;
        }
        path.push(n.to_owned());
        for m in g.get(n).into_iter().flatten() {
            visit(m, g, path, done);
        }
        path.pop();
        done.insert(n.to_owned());
    }
    let mut done = BTreeSet::new();
    for n in g.keys() {
        visit(n, &g, &mut Vec::new(), &mut done);
    }
}

#[test]
fn config_and_the_connection_stay_in_their_layers() {
    let g = imports();
    let config = g.get("config").cloned().unwrap_or_default();
    assert!(
        config.iter().all(|m| m == "rtmp"),
        "config imports {config:?}: only the sans-IO rtmp layer is below it"
    );
    let server = g.get("server").cloned().unwrap_or_default();
    let named: Vec<_> = server
        .iter()
        .filter(|m| FEATURES.contains(&m.as_str()))
        .collect();
    assert!(
        named.is_empty(),
        "the connection code names features: {named:?}"
    );
    for f in FEATURES {
        let uses = g.get(*f).cloned().unwrap_or_default();
        let others: Vec<_> = uses
            .iter()
            .filter(|m| FEATURES.contains(&m.as_str()))
            .collect();
        assert!(others.is_empty(), "feature {f} names features {others:?}");
    }
}
