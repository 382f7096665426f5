//! nginx-rtmp's exec directives: the commands an application runs when a
//! stream is published, played or recorded, and at start-up.

use std::time::Duration;

use super::syntax::Directive;

/// One `exec*` line: the program and its argument templates, unevaluated
/// (variables are filled when the command runs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecCmd {
    pub program: String,
    pub args: Vec<String>,
    /// `exec_options on` and `name=NAME` arguments: run only for these
    /// stream names.
    pub names: Vec<String>,
    /// `FILE:LINE` of the directive, for logs.
    pub at: String,
}

impl ExecCmd {
    fn parse(d: &Directive, options: bool) -> ExecCmd {
        let mut args = Vec::new();
        let mut names = Vec::new();
        for a in &d.args[1..] {
            match a.strip_prefix("name=") {
                Some(n) if options => names.push(n.to_owned()),
                _ => args.push(a.clone()),
            }
        }
        ExecCmd {
            program: d.args[0].clone(),
            args,
            names,
            at: d.pos.to_string(),
        }
    }

    /// Whether this command runs for stream `name`.
    pub fn applies_to(&self, name: &str) -> bool {
        self.names.is_empty() || self.names.iter().any(|n| n == name)
    }
}

/// An application's exec commands, by event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecConf {
    /// `exec_push` (and its alias `exec`): one child per published stream.
    pub push: Vec<ExecCmd>,
    /// `exec_pull`: one child per played stream nobody publishes.
    pub pull: Vec<ExecCmd>,
    pub publish: Vec<ExecCmd>,
    pub publish_done: Vec<ExecCmd>,
    pub play: Vec<ExecCmd>,
    pub play_done: Vec<ExecCmd>,
    pub record_done: Vec<ExecCmd>,
    /// `exec_record_started` (sergey-dryabzhinsky fork).
    pub record_started: Vec<ExecCmd>,
    /// `respawn`: restart a managed child that exits while its stream lives.
    pub respawn: bool,
    pub respawn_timeout: Duration,
    /// `exec_kill_signal`: what stops a managed child (nginx-rtmp: KILL).
    pub kill_signal: i32,
}

impl ExecConf {
    pub fn is_empty(&self) -> bool {
        self.push.is_empty()
            && self.pull.is_empty()
            && self.publish.is_empty()
            && self.publish_done.is_empty()
            && self.play.is_empty()
            && self.play_done.is_empty()
            && self.record_done.is_empty()
            && self.record_started.is_empty()
    }
}

/// Builds an application's exec commands from its scopes, innermost first.
pub(super) fn build(l: &super::Lookup, kill_signal: i32) -> ExecConf {
    let options = l.flag("exec_options", false);
    let cmds = |names: &[&str]| {
        l.list_all(names)
            .into_iter()
            .map(|d| ExecCmd::parse(d, options))
            .collect()
    };
    ExecConf {
        push: cmds(&["exec", "exec_push"]),
        pull: cmds(&["exec_pull"]),
        publish: cmds(&["exec_publish"]),
        publish_done: cmds(&["exec_publish_done"]),
        play: cmds(&["exec_play"]),
        play_done: cmds(&["exec_play_done"]),
        record_done: cmds(&["exec_record_done"]),
        record_started: cmds(&["exec_record_started"]),
        respawn: l.flag("respawn", true),
        respawn_timeout: l.msec("respawn_timeout", 5000),
        kill_signal,
    }
}

/// `exec_record_done` (or `_started`) written inside a `recorder {}`:
/// that recorder's own.
pub(super) fn recorder_cmds(l: &super::Lookup, name: &str) -> Vec<ExecCmd> {
    let options = l.flag("exec_options", false);
    l.list_nearest(&[name])
        .into_iter()
        .map(|d| ExecCmd::parse(d, options))
        .collect()
}

/// `exec_static` lines of a scope (nginx-rtmp keeps one process-wide list,
/// whatever scope they are written in).
pub(super) fn statics(lists: &[Directive]) -> Vec<ExecCmd> {
    lists
        .iter()
        .filter(|d| d.name == "exec_static")
        .map(|d| ExecCmd::parse(d, false))
        .collect()
}

/// `exec_kill_signal`: a number, or a POSIX signal name with or without
/// `SIG`, in any case (`term`, `SIGTERM`, `15`).
pub fn parse_signal(v: &str) -> Option<i32> {
    if let Ok(n) = v.parse::<i32>() {
        return (n > 0 && n < 65).then_some(n);
    }
    let up = v.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    Some(match name {
        "HUP" => 1,
        "INT" => 2,
        "QUIT" => 3,
        "ILL" => 4,
        "ABRT" => 6,
        "FPE" => 8,
        "KILL" => 9,
        "USR1" => 10,
        "SEGV" => 11,
        "USR2" => 12,
        "PIPE" => 13,
        "ALRM" => 14,
        "TERM" => 15,
        "CHLD" => 17,
        "CONT" => 18,
        "STOP" => 19,
        "TSTP" => 20,
        "TTIN" => 21,
        "TTOU" => 22,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_as_nginx_rtmp_names_them() {
        assert_eq!(parse_signal("term"), Some(15));
        assert_eq!(parse_signal("SIGKILL"), Some(9));
        assert_eq!(parse_signal("2"), Some(2));
        assert_eq!(parse_signal("nope"), None);
        assert_eq!(parse_signal("0"), None);
    }
}
