//! The `sluice` binary: `serve`, `check`, `publish`, `play`, `bench`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sluice::config::Config;

#[derive(Parser)]
#[command(
    name = "sluice",
    version,
    about = "RTMP live-streaming server, a drop-in for nginx-rtmp-module"
)]
struct Cli {
    /// Log level (error, warn, info, debug, trace) or a tracing filter.
    /// RUST_LOG is used when this is not given.
    #[arg(long, global = true)]
    log_level: Option<String>,
    /// rtmps:// clients (publish, play, bench): trust this CA (PEM) beside
    /// the system's roots.
    #[arg(long, global = true, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// rtmps:// clients: do not verify the server's certificate.
    #[arg(long, global = true)]
    insecure: bool,
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the server (the embedded default config without -c).
    Serve {
        /// nginx.conf with an rtmp {} block.
        #[arg(short = 'c', long = "config")]
        config: Option<PathBuf>,
    },
    /// Make the running server re-read its config (SIGHUP through the
    /// config's `pid` file), like `nginx -s reload`.
    Reload {
        #[arg(short = 'c', long = "config")]
        config: PathBuf,
    },
    /// Make the running server start the binary at its path again and hand
    /// it every live connection (SIGUSR2 through the config's `pid` file),
    /// like nginx's binary upgrade, without dropping anyone.
    Upgrade {
        #[arg(short = 'c', long = "config")]
        config: PathBuf,
    },
    /// Validate a config like `nginx -t`.
    Check {
        #[arg(short = 'c', long = "config")]
        config: PathBuf,
    },
    /// Publish an FLV file (paced in real time) or stdin (`-`) to URL,
    /// moving to the next URL (wrapping) when the server sends Go Away.
    Publish {
        input: String,
        #[arg(required = true, num_args = 1..)]
        urls: Vec<String>,
        /// Send as fast as possible instead of at the tags' timestamps.
        #[arg(long)]
        no_pace: bool,
    },
    /// Play URL and write what arrives as FLV to FILE (`-` for stdout).
    Play {
        url: String,
        #[arg(short = 'o', long = "output")]
        output: String,
        /// Stop after this many seconds.
        #[arg(long)]
        duration: Option<f64>,
        /// Stop when the publisher leaves.
        #[arg(long)]
        until_unpublish: bool,
        /// Stop after this many video frames.
        #[arg(long)]
        frames: Option<u64>,
        /// Start position in ms (a file; `play`'s start argument).
        #[arg(long)]
        start: Option<f64>,
        /// `AT:MS`: AT seconds after playing starts, seek to MS ms
        /// (may be repeated).
        #[arg(long, value_name = "AT:MS")]
        seek: Vec<String>,
        /// `AT:FOR`: AT seconds after playing starts, pause for FOR seconds
        /// (may be repeated).
        #[arg(long, value_name = "AT:FOR")]
        pause: Vec<String>,
        /// Buffer length to announce (SetBufferLength), ms.
        #[arg(long)]
        buffer: Option<u32>,
    },
    /// Load-test any RTMP server: players, publishers, ramp, churn.
    Bench {
        /// rtmp://host[:port]/app/name (names become name-0, name-1... with --streams)
        url: String,
        /// Players, spread round-robin over the streams.
        #[arg(long, default_value_t = 100)]
        players: usize,
        /// Streams to spread players (and publishers) over.
        #[arg(long, default_value_t = 1)]
        streams: usize,
        /// Publish this FLV to every stream in a loop at real-time pace;
        /// enables loss and latency measurement.
        #[arg(long, value_name = "FLV")]
        publish: Option<std::path::PathBuf>,
        /// Players started per second (default: all at once).
        #[arg(long)]
        ramp: Option<f64>,
        /// Seconds measured after the ramp.
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// Seconds of publishing before players join.
        #[arg(long, default_value_t = 2.0)]
        warmup: f64,
        /// Extra players joining per second during the measurement, each
        /// leaving after --churn-life seconds.
        #[arg(long)]
        churn: Option<f64>,
        #[arg(long, default_value_t = 2.0)]
        churn_life: f64,
        /// Sample this server process's CPU and RSS from /proc.
        #[arg(long)]
        server_pid: Option<u32>,
        /// Players read HTTP-FLV from BASE/NAME.flv (e.g.
        /// http://127.0.0.1:8080/live/live) instead of playing over RTMP;
        /// publishers still publish to the RTMP URL.
        #[arg(long, value_name = "BASE")]
        http_flv: Option<String>,
        /// Players follow the HLS playlist BASE/NAME.m3u8 (e.g.
        /// http://127.0.0.1:8080/hls) and fetch its segments, counting
        /// bytes; publishers still publish to the RTMP URL.
        #[arg(long, value_name = "BASE", conflicts_with = "http_flv")]
        hls: Option<String>,
    },
}

fn init_logging(level: Option<&str>) {
    let filter = match level {
        Some(l) => tracing_subscriber::EnvFilter::new(l),
        None => {
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into())
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

fn load(path: &Option<PathBuf>) -> Result<Config, ExitCode> {
    let r = match path {
        Some(p) => Config::load(p),
        None => Ok(Config::embedded()),
    };
    r.map_err(|errs| {
        for e in errs {
            eprintln!("{e}");
        }
        ExitCode::from(1)
    })
}

/// Sends `sig` to the server whose `pid` file `config` names.
fn signal_server(config: &std::path::Path, sig: nix::sys::signal::Signal) -> anyhow::Result<()> {
    let c = Config::load(config).map_err(|errs| {
        let all: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        anyhow::anyhow!("{}", all.join("\n"))
    })?;
    let pid_file = c.pid.as_ref().with_context(|| {
        format!(
            "{} has no \"pid\" directive: no running server to find",
            config.display()
        )
    })?;
    let text = std::fs::read_to_string(pid_file)
        .with_context(|| format!("cannot read {}", pid_file.display()))?;
    let pid: i32 = text
        .trim()
        .parse()
        .with_context(|| format!("{} holds no pid", pid_file.display()))?;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig)
        .with_context(|| format!("cannot signal process {pid}"))?;
    eprintln!("sluice: sent {sig} to {pid}");
    Ok(())
}

/// Writes the `pid` file, and removes it when dropped, if it still names
/// this process (after an upgrade it names the new one; this process's is
/// then `FILE.oldbin`, removed instead).
struct PidFile(Option<PathBuf>);

impl PidFile {
    fn write(path: Option<&PathBuf>) -> anyhow::Result<PidFile> {
        if let Some(p) = path {
            std::fs::write(p, format!("{}\n", std::process::id()))
                .with_context(|| format!("cannot write pid file {}", p.display()))?;
        }
        Ok(PidFile(path.cloned()))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let Some(p) = &self.0 else { return };
        let mut oldbin = p.clone().into_os_string();
        oldbin.push(".oldbin");
        let me = std::process::id().to_string();
        for f in [p.clone(), PathBuf::from(oldbin)] {
            if std::fs::read_to_string(&f).is_ok_and(|t| t.trim() == me) {
                let _ = std::fs::remove_file(&f);
            }
        }
    }
}

/// SIGUSR2: a binary upgrade. Starts the binary at the path this process
/// was started from, with the same arguments, and hands it every
/// connection (see `sluice::server::handover`).
fn spawn_upgrader(
    mut usr2: tokio::signal::unix::Signal,
    pid_file: Option<PathBuf>,
    tx: tokio::sync::mpsc::Sender<sluice::server::handover::old::Request>,
) {
    // The path as started: once the file is replaced, /proc/self/exe names
    // the deleted old one.
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("sluice"));
    let exe = match exe.to_str().and_then(|s| s.strip_suffix(" (deleted)")) {
        Some(s) => PathBuf::from(s),
        None => exe,
    };
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    tokio::spawn(async move {
        while usr2.recv().await.is_some() {
            tracing::info!(exe = %exe.display(), "SIGUSR2: upgrading the binary");
            let upgrade = sluice::server::handover::old::Upgrade {
                exe: exe.clone(),
                args: args.clone(),
                pid_file: pid_file.clone(),
            };
            let (done, answer) = tokio::sync::oneshot::channel();
            let req = sluice::server::handover::old::Request { upgrade, done };
            if tx.send(req).await.is_err() {
                break;
            }
            if answer.await.unwrap_or(false) {
                // The new process serves now; this one drains and exits.
                break;
            }
        }
    });
}

/// SIGHUP: re-reads the configuration file and hands it to the server; a
/// file that does not pass `check` is refused with its errors, and the old
/// configuration keeps serving. Never stops the process.
fn spawn_reloader(
    mut hup: tokio::signal::unix::Signal,
    path: Option<PathBuf>,
    tx: tokio::sync::mpsc::Sender<sluice::server::reload::Request>,
) {
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            let Some(p) = &path else {
                tracing::info!("SIGHUP: running on the embedded configuration; nothing to re-read");
                continue;
            };
            tracing::info!(config = %p.display(), "SIGHUP: reloading");
            sluice::sdnotify::reloading();
            let read = p.clone();
            let loaded = tokio::task::spawn_blocking(move || Config::load(&read)).await;
            match loaded {
                Ok(Ok(config)) => {
                    let (done, applied) = tokio::sync::oneshot::channel();
                    let req = sluice::server::reload::Request { config, done };
                    if tx.send(req).await.is_ok() {
                        let _ = applied.await;
                    }
                }
                Ok(Err(errs)) => {
                    for e in errs {
                        tracing::error!("reload refused: {e}");
                    }
                    tracing::error!("reload refused; the old configuration keeps serving");
                }
                Err(e) => tracing::error!("reload failed: {e}"),
            }
            sluice::sdnotify::notify("READY=1");
        }
    });
}

async fn serve(config: Config, path: Option<PathBuf>) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    // Before anything listens: a SIGHUP that arrives the moment the port
    // opens must find its handler (its default action ends the process).
    let hup = signal(SignalKind::hangup()).context("SIGHUP handler")?;
    let usr1 = signal(SignalKind::user_defined1()).context("SIGUSR1 handler")?;
    let usr2 = signal(SignalKind::user_defined2()).context("SIGUSR2 handler")?;
    // The new half of an upgrade: the old process's listening sockets.
    let inbound =
        tokio::task::spawn_blocking(sluice::server::handover::new::Inbound::from_env).await??;
    let upgraded = inbound.is_some();
    for w in &config.warnings {
        tracing::warn!("{w}");
    }
    sluice::redact::show_args(config.log_args);
    let mut server =
        sluice::server::Server::bind_with(config.clone(), sluice::modules::all(), inbound).await?;
    let _pid = PidFile::write(config.pid.as_ref())?;
    let (reload_tx, reload_rx) = tokio::sync::mpsc::channel(4);
    server.reloads(reload_rx);
    spawn_reloader(hup, path, reload_tx);
    let (upgrade_tx, upgrade_rx) = tokio::sync::mpsc::channel(1);
    server.upgrades(upgrade_rx);
    spawn_upgrader(usr2, config.pid.clone(), upgrade_tx);
    if upgraded {
        // systemd follows the service to this process.
        sluice::sdnotify::notify(&format!("MAINPID={}\nREADY=1", std::process::id()));
    } else {
        sluice::sdnotify::notify("READY=1");
    }
    eprintln!("sluice {} listening:", env!("CARGO_PKG_VERSION"));
    for (i, s) in config.servers.iter().enumerate() {
        let apps: Vec<&str> = s.apps.iter().map(|a| a.name.as_str()).collect();
        for l in &s.listen {
            let a = &l.at;
            let scheme = if l.ssl { "rtmps" } else { "rtmp" };
            eprintln!(
                "  {scheme}://{a}  server #{i}  applications: {}",
                apps.join(", ")
            );
        }
    }
    for h in &config.http {
        let locs: Vec<&str> = h.locations.iter().map(|l| l.prefix.as_str()).collect();
        for a in &h.listen {
            let scheme = if h.ssl.contains(a) { "https" } else { "http" };
            eprintln!("  {scheme}://{a}  locations: {}", locs.join(", "));
        }
    }
    for s in &config.servers {
        for app in s.open_for_publishing() {
            tracing::warn!(
                "application \"{app}\" lets anyone publish: add `on_publish http://...;` \
                 or `allow publish 127.0.0.1; deny publish all;` to it to lock it down"
            );
        }
    }
    // SIGUSR1 reopens log files (logrotate sends it to nginx).
    {
        let shared = server.shared();
        let mut usr1 = usr1;
        tokio::spawn(async move {
            while usr1.recv().await.is_some() {
                tracing::info!("SIGUSR1: reopening log files");
                shared.modules.reopen();
            }
        });
    }
    // SIGTERM, SIGINT or SIGQUIT starts a graceful drain; a second one
    // exits at once.
    let shutdown = async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
        let mut quit = signal(SignalKind::quit()).expect("SIGQUIT handler");
        let first = async {
            tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
                _ = quit.recv() => "SIGQUIT",
            }
        };
        let sig = first.await;
        tracing::info!("{sig}: draining (send another signal to exit at once)");
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
                _ = quit.recv() => {}
            }
            tracing::warn!("second signal: exiting without waiting for the drain");
            std::process::exit(1);
        });
    };
    server.run(shutdown).await
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_level.as_deref());
    sluice::client::tls::set_defaults(sluice::client::tls::Defaults {
        ca: cli.ca.clone(),
        insecure: cli.insecure,
    });
    let cmd = cli.cmd.unwrap_or(Cmd::Serve { config: None });
    if let Cmd::Check { config } = &cmd {
        return match Config::load(config) {
            Ok(c) => {
                for w in &c.warnings {
                    eprintln!("warning: {w}");
                }
                println!(
                    "sluice: the configuration file {} syntax is ok",
                    config.display()
                );
                println!(
                    "sluice: configuration file {} test is successful",
                    config.display()
                );
                ExitCode::SUCCESS
            }
            Err(errs) => {
                for e in errs {
                    eprintln!("{e}");
                }
                eprintln!(
                    "sluice: configuration file {} test failed",
                    config.display()
                );
                ExitCode::from(1)
            }
        };
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let r: anyhow::Result<()> = rt.block_on(async move {
        match cmd {
            Cmd::Serve { config: path } => match load(&path) {
                Ok(c) => {
                    raise_fd_limit();
                    serve(c, path).await
                }
                Err(_) => std::process::exit(1),
            },
            Cmd::Check { .. } => unreachable!("handled above"),
            Cmd::Reload { config } => signal_server(&config, nix::sys::signal::Signal::SIGHUP),
            Cmd::Upgrade { config } => signal_server(&config, nix::sys::signal::Signal::SIGUSR2),
            Cmd::Publish {
                input,
                urls,
                no_pace,
            } => {
                let stats = if input == "-" {
                    sluice::client::publish::publish(tokio::io::stdin(), &urls, !no_pace).await?
                } else {
                    let f = tokio::fs::File::open(&input)
                        .await
                        .with_context(|| format!("open {input}"))?;
                    sluice::client::publish::publish(f, &urls, !no_pace).await?
                };
                eprintln!(
                    "frames sent {}, moves {}, frames lost {} ({} bytes, {} reconnects)",
                    stats.frames, stats.moves, stats.lost, stats.bytes, stats.reconnects
                );
                Ok(())
            }
            Cmd::Play {
                url,
                output,
                duration,
                until_unpublish,
                frames,
                start,
                seek,
                pause,
                buffer,
            } => {
                use sluice::client::play::Action;
                let pair = |s: &str| -> anyhow::Result<(f64, f64)> {
                    let (a, b) = s
                        .split_once(':')
                        .with_context(|| format!("expected AT:VALUE, got {s}"))?;
                    Ok((a.parse()?, b.parse()?))
                };
                let mut actions = Vec::new();
                for s in &seek {
                    let (at, ms) = pair(s)?;
                    actions.push((Duration::from_secs_f64(at), Action::Seek(ms)));
                }
                for s in &pause {
                    let (at, len) = pair(s)?;
                    actions.push((Duration::from_secs_f64(at), Action::Pause(true)));
                    actions.push((Duration::from_secs_f64(at + len), Action::Pause(false)));
                }
                let opts = sluice::client::play::PlayOptions {
                    duration: duration.map(Duration::from_secs_f64),
                    until_unpublish,
                    max_video_frames: frames,
                    start,
                    actions,
                    buffer,
                };
                let stats = if output == "-" {
                    sluice::client::play::play(&url, Some(tokio::io::stdout()), &opts).await?
                } else {
                    let f = tokio::fs::File::create(&output)
                        .await
                        .with_context(|| format!("create {output}"))?;
                    sluice::client::play::play(&url, Some(tokio::io::BufWriter::new(f)), &opts)
                        .await?
                };
                eprintln!(
                    "received {} video frames ({} key), {} audio frames, {} bytes",
                    stats.video_frames, stats.keyframes, stats.audio_frames, stats.bytes
                );
                eprintln!("statuses: {}", stats.statuses.join(" "));
                Ok(())
            }
            Cmd::Bench {
                url,
                players,
                streams,
                publish,
                ramp,
                duration,
                warmup,
                churn,
                churn_life,
                server_pid,
                http_flv,
                hls,
            } => {
                raise_fd_limit();
                let opts = sluice::client::bench::BenchOptions {
                    url,
                    players,
                    streams,
                    publish,
                    ramp,
                    duration: Duration::from_secs_f64(duration),
                    warmup: Duration::from_secs_f64(warmup),
                    churn,
                    churn_life: Duration::from_secs_f64(churn_life),
                    server_pid,
                    http_flv,
                    hls,
                };
                let report = sluice::client::bench::bench(&opts).await?;
                println!("{}", report.render());
                Ok(())
            }
        }
    });
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluice: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Raises the open-file limit to its hard maximum: every RTMP connection is
/// a descriptor, and the usual soft default of 1024 caps a server (or a
/// bench) far below what the machine can carry.
fn raise_fd_limit() {
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}
