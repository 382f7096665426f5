//! Every real nginx-rtmp configuration in `tests/data/corpus` (see its
//! SOURCES.md) passes `sluice check`, except where it uses a directive a
//! later feature brings (VOD `play`, RTMPS relays): those
//! files must fail on such directives and nothing else.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::BIN;

/// Directives of features still to come; a file that uses one is expected
/// to be refused for it.
const LATER: &[&str] = &[
    "play",
    "play_temp_path",
    "play_local_path",
    "rtmp_relay_ssl_trusted_certificate",
];

/// Errors Sluice gives on purpose: HTTP access restrictions it does not
/// implement refuse the config rather than serve what it meant to lock.
const FAIL_CLOSED: &[&str] = &[
    "restricts access and Sluice does not implement it",
    "block that denies requests is not implemented by Sluice",
];

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/corpus")
}

/// `NAME=value` lines of vars.env.
fn vars() -> HashMap<String, String> {
    std::fs::read_to_string(corpus().join("vars.env"))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Fills `${NAME}` and `$NAME` for the names vars.env gives, as envsubst
/// does for a list of names; every other `$` stays (nginx-rtmp's `$name`).
fn fill(src: &str, vars: &HashMap<String, String>) -> String {
    let mut out = src.to_owned();
    for (k, v) in vars {
        out = out.replace(&format!("${{{k}}}"), v);
        let bare = format!("${k}");
        let mut s = String::new();
        let mut rest = out.as_str();
        while let Some(i) = rest.find(&bare) {
            let after = &rest[i + bare.len()..];
            let word = after
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
            s.push_str(&rest[..i]);
            s.push_str(if word { &bare } else { v });
            rest = after;
        }
        s.push_str(rest);
        out = s;
    }
    out
}

#[test]
fn real_configs_load() {
    let vars = vars();
    let tmp = tempfile::tempdir().unwrap();
    let mut files: Vec<_> = std::fs::read_dir(corpus())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "conf"))
        .collect();
    files.sort();
    assert!(files.len() >= 30, "only {} fixtures", files.len());
    let (mut loaded, mut later, mut closed, mut bad) = (0, Vec::new(), Vec::new(), Vec::new());
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let src = std::fs::read_to_string(f).unwrap();
        let filled = tmp.path().join(&name);
        std::fs::write(&filled, fill(&src, &vars)).unwrap();
        let o = Command::new(BIN)
            .args(["check", "-c"])
            .arg(&filled)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        if o.status.success() {
            loaded += 1;
            continue;
        }
        let errors: Vec<&str> = err
            .lines()
            .filter(|l| l.starts_with(filled.to_str().unwrap()))
            .collect();
        let is_later = |l: &&str| {
            LATER
                .iter()
                .any(|d| l.contains(&format!("directive \"{d}\" is not implemented")))
        };
        let is_closed = |l: &&str| FAIL_CLOSED.iter().any(|m| l.contains(m));
        if !errors.is_empty() && errors.iter().all(is_later) {
            later.push(name);
        } else if !errors.is_empty() && errors.iter().all(|l| is_later(l) || is_closed(l)) {
            closed.push(name);
        } else {
            bad.push(format!("{name}:\n{err}"));
        }
    }
    eprintln!(
        "{loaded} of {} real configs load; {} wait for later directives: {later:?}; \
         {} refused for HTTP access rules Sluice cannot enforce: {closed:?}",
        files.len(),
        later.len(),
        closed.len()
    );
    assert!(bad.is_empty(), "configs refused:\n{}", bad.join("\n"));
}

#[test]
fn fill_leaves_other_variables() {
    let v = HashMap::from([("PORT".to_owned(), "1935".to_owned())]);
    assert_eq!(
        fill("listen ${PORT}; listen $PORT; exec x $name $PORTS;", &v),
        "listen 1935; listen 1935; exec x $name $PORTS;"
    );
}
