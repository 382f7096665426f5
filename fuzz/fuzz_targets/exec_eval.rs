//! exec lines: any template and any variable value fill without panicking,
//! and a value never turns into a redirection (redirections are decided on
//! the configured word).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice::exec::eval;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (template, value) = text.split_once('\u{0}').unwrap_or((&text, ">x"));
    let words: Vec<String> = template.split(' ').map(str::to_owned).collect();
    let value = value.to_owned();
    let get = |_: &str| Some(value.clone());
    let p = eval::prepare("prog", &words, &get);
    let none = |_: &str| None;
    let bare = eval::prepare("prog", &words, &none);
    assert_eq!(p.redirects.len(), bare.redirects.len());
    assert_eq!(p.args.len(), bare.args.len());
});
