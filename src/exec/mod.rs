//! The exec module: nginx-rtmp's `exec_*` directives.
//!
//! * `exec_push` (and `exec`): a managed child per published stream,
//!   started on publish and stopped when the publish ends;
//! * `exec_pull`: a managed child per stream that a player asks for while
//!   nobody publishes it, stopped when its last player leaves;
//! * `exec_static`: managed children from start-up to shutdown;
//! * `exec_publish`, `exec_publish_done`, `exec_play`, `exec_play_done`,
//!   `exec_record_done`: one-shot commands.
//!
//! Managed children are respawned `respawn_timeout` after they exit while
//! they are wanted (`respawn on`, the default) and stopped with
//! `exec_kill_signal` (default KILL, as nginx-rtmp). Variables are
//! nginx-rtmp's: the session's `$app`, `$flashver`, `$swfurl`, `$tcurl`,
//! `$pageurl`, `$addr`, and `$name`, `$args`; `exec_pull` has only `$name`
//! and `$app`; `exec_record_done` adds `$path`, `$filename`, `$basename`,
//! `$dirname` and `$recorder`.

pub mod child;
pub mod eval;

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use child::Managed;
use eval::Prepared;

use crate::config::exec::{ExecCmd, ExecConf};
use crate::live::StreamKey;
use crate::node::chain::{CloseStream, Module, Play, Publish, RecordDone, Session, Want};
use crate::node::Shared;

/// Players of a stream an `exec_pull` publishes, and its children.
struct Pulled {
    players: usize,
    children: Vec<Managed>,
}

#[derive(Default)]
pub struct Exec {
    /// `exec_push` children, by publishing session.
    pushes: Mutex<HashMap<u64, Vec<Managed>>>,
    pulls: Mutex<HashMap<StreamKey, Pulled>>,
    statics: Mutex<Vec<Managed>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The session's variables, and `extra` ones.
fn session_vars<'a>(
    s: &'a Session,
    extra: &'a [(&'static str, &'a str)],
) -> impl Fn(&str) -> Option<String> + 'a {
    move |k: &str| {
        let f = &s.fields;
        let v = match k {
            "app" => f.app.as_str(),
            "flashver" => f.flashver.as_str(),
            "swfurl" => f.swfurl.as_str(),
            "tcurl" => f.tcurl.as_str(),
            "pageurl" => f.pageurl.as_str(),
            "addr" => f.addr.as_str(),
            _ => {
                return extra
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        Some(v.to_owned())
    }
}

fn prepare(c: &ExecCmd, get: &dyn Fn(&str) -> Option<String>) -> Prepared {
    eval::prepare(&c.program, &c.args, get)
}

/// Runs every one-shot command of `cmds` that applies to `name`.
fn run_all(cmds: &[ExecCmd], name: &str, what: &str, get: &dyn Fn(&str) -> Option<String>) {
    for c in cmds.iter().filter(|c| c.applies_to(name)) {
        child::run_once(prepare(c, get), format!("{what} {name}"));
    }
}

fn respawn(conf: &ExecConf) -> Option<std::time::Duration> {
    conf.respawn.then_some(conf.respawn_timeout)
}

impl Module for Exec {
    fn name(&self) -> &'static str {
        "exec"
    }

    fn start(&self, shared: &Arc<Shared>) {
        let config = shared.config();
        let (signal, respawn) = (config.exec_static.kill_signal, respawn(&config.exec_static));
        let mut statics = lock(&self.statics);
        for c in &config.exec_statics {
            let cmd = eval::prepare(&c.program, &c.args, &|_| None);
            statics.push(Managed::start(
                cmd,
                format!("static {}", c.at),
                signal,
                respawn,
            ));
        }
    }

    /// `exec_publish` runs; each `exec_push` starts a managed child.
    fn publish(&self, _shared: &Arc<Shared>, ev: &Publish) {
        let conf = &ev.app.exec;
        if ev.derived || conf.is_empty() {
            return;
        }
        let name = ev.key.name.as_str();
        let extra = [("name", name), ("args", ev.args)];
        let get = session_vars(ev.session, &extra);
        if !ev.resumed {
            run_all(&conf.publish, name, "publish", &get);
        }
        let children: Vec<Managed> = conf
            .push
            .iter()
            .filter(|c| c.applies_to(name))
            .map(|c| {
                let label = format!("push {}/{name}", ev.key.app);
                Managed::start(prepare(c, &get), label, conf.kill_signal, respawn(conf))
            })
            .collect();
        if !children.is_empty() {
            // A second publish on one connection replaces the first's.
            let old = lock(&self.pushes).insert(ev.session.id, children);
            old.into_iter().flatten().for_each(|m| drop(m.stop()));
        }
    }

    /// `exec_play` runs; the first player of a stream nobody publishes
    /// starts its `exec_pull` children.
    fn play(&self, _shared: &Arc<Shared>, ev: &Play) {
        let conf = &ev.app.exec;
        if conf.is_empty() {
            return;
        }
        let name = ev.key.name.as_str();
        let extra = [("name", name), ("args", ev.args)];
        if !ev.resumed {
            run_all(&conf.play, name, "play", &session_vars(ev.session, &extra));
        }
        let cmds: Vec<&ExecCmd> = conf.pull.iter().filter(|c| c.applies_to(name)).collect();
        if cmds.is_empty() || ev.stream.is_none() {
            return;
        }
        let mut pulls = lock(&self.pulls);
        if let Some(p) = pulls.get_mut(ev.key) {
            p.players += 1;
            return;
        }
        if ev.published {
            return;
        }
        let app = ev.key.app.as_str();
        let get = |k: &str| match k {
            "name" => Some(name.to_owned()),
            "app" => Some(app.to_owned()),
            _ => None,
        };
        let children = cmds
            .into_iter()
            .map(|c| {
                let label = format!("pull {app}/{name}");
                Managed::start(prepare(c, &get), label, conf.kill_signal, respawn(conf))
            })
            .collect();
        pulls.insert(
            ev.key.clone(),
            Pulled {
                players: 1,
                children,
            },
        );
    }

    fn wants(&self, _shared: &Arc<Shared>, ev: &Want) -> bool {
        ev.app.exec.pull.iter().any(|c| c.applies_to(&ev.key.name))
    }

    /// `exec_publish_done` / `exec_play_done` run; the stream's managed
    /// children stop.
    fn close_stream(&self, _shared: &Arc<Shared>, ev: &CloseStream) {
        let conf = &ev.app.exec;
        if !ev.started || conf.is_empty() {
            return;
        }
        let extra = [("name", ev.name), ("args", ev.args)];
        let get = session_vars(ev.session, &extra);
        if ev.publish {
            if !ev.moved {
                run_all(&conf.publish_done, ev.name, "publish_done", &get);
            }
            let children = lock(&self.pushes).remove(&ev.session.id);
            children.into_iter().flatten().for_each(|m| drop(m.stop()));
            return;
        }
        if !ev.moved {
            run_all(&conf.play_done, ev.name, "play_done", &get);
        }
        let key = StreamKey {
            server: ev.session.server,
            app: ev.app.name.clone(),
            name: ev.name.to_owned(),
        };
        let mut pulls = lock(&self.pulls);
        let last = pulls.get_mut(&key).is_some_and(|p| {
            p.players = p.players.saturating_sub(1);
            p.players == 0
        });
        if last {
            if let Some(p) = pulls.remove(&key) {
                p.children.into_iter().for_each(|m| drop(m.stop()));
            }
        }
    }

    /// `exec_record_done`, the recorder's own if it has some.
    fn record_done(&self, _shared: &Arc<Shared>, ev: &RecordDone) {
        let cmds = if ev.recorder.exec_record_done.is_empty() {
            &ev.app.exec.record_done
        } else {
            &ev.recorder.exec_record_done
        };
        run_recorded(cmds, ev, "record_done");
    }

    /// `exec_record_started` (sergey-dryabzhinsky fork), likewise.
    fn record_started(&self, _shared: &Arc<Shared>, ev: &RecordDone) {
        let cmds = if ev.recorder.exec_record_started.is_empty() {
            &ev.app.exec.record_started
        } else {
            &ev.recorder.exec_record_started
        };
        run_recorded(cmds, ev, "record_started");
    }

    fn stop(&self, _shared: &Arc<Shared>) -> Vec<tokio::task::JoinHandle<()>> {
        let mut all: Vec<Managed> = std::mem::take(&mut *lock(&self.statics));
        all.extend(lock(&self.pushes).drain().flat_map(|(_, v)| v));
        all.extend(lock(&self.pulls).drain().flat_map(|(_, p)| p.children));
        all.into_iter().map(Managed::stop).collect()
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Runs `exec_record_done`/`_started` commands with the file's variables.
fn run_recorded(cmds: &[ExecCmd], ev: &RecordDone, what: &str) {
    if cmds.is_empty() {
        return;
    }
    let path = ev.path.to_string_lossy().into_owned();
    let (dirname, filename, basename) = split_path(&path);
    let extra = [
        ("name", ev.name),
        ("args", ev.args),
        ("path", path.as_str()),
        ("filename", filename),
        ("basename", basename),
        ("dirname", dirname),
        ("recorder", ev.recorder.id.as_str()),
    ];
    run_all(cmds, ev.name, what, &session_vars(ev.session, &extra));
}

/// `(dirname, filename, basename)` of a recording's path, as nginx-rtmp
/// splits it: the directory without its last `/`, the file name, and the
/// file name without its last extension.
fn split_path(path: &str) -> (&str, &str, &str) {
    let (dir, file) = match path.rfind('/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => ("", path),
    };
    let base = file.rfind('.').map_or(file, |i| &file[..i]);
    (dir, file, base)
}

impl Exec {
    /// How many managed children run.
    pub fn running(&self) -> usize {
        lock(&self.statics).len()
            + lock(&self.pushes).values().map(Vec::len).sum::<usize>()
            + lock(&self.pulls)
                .values()
                .map(|p| p.children.len())
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_paths_split_as_nginx_rtmp() {
        assert_eq!(
            split_path("/tmp/rec/cam-123.flv"),
            ("/tmp/rec", "cam-123.flv", "cam-123")
        );
        assert_eq!(split_path("cam.x.flv"), ("", "cam.x.flv", "cam.x"));
        assert_eq!(split_path("/a/noext"), ("/a", "noext", "noext"));
    }
}
