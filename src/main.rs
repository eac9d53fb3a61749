//! capsa's command line, compatible with runc's. Each subcommand is one
//! call into the library.

use capsa::container::{RunOptions, Runtime, bundle_dir};
use capsa::logging::{self, Format};
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "capsa",
    about = "A runc-compatible OCI container runtime",
    disable_version_flag = true
)]
struct Cli {
    /// Root directory for container state
    #[arg(long, global = true, value_name = "DIR")]
    root: Option<PathBuf>,
    /// Also write errors and warnings to FILE
    #[arg(long, global = true, value_name = "FILE")]
    log: Option<PathBuf>,
    /// Format of --log lines
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Print debug messages, with timings of each setup phase
    #[arg(long, global = true)]
    debug: bool,
    /// Accepted for compatibility; cgroups are managed through cgroupfs
    #[arg(long, global = true)]
    systemd_cgroup: bool,
    /// Rootless mode: true, false or auto (before the subcommand)
    #[arg(long, value_name = "true|false|auto")]
    rootless: Option<String>,
    /// Accepted and ignored, as runc does
    #[arg(long, global = true, value_name = "PATH")]
    criu: Option<PathBuf>,
    /// Print the version
    #[arg(short = 'v', long)]
    version: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(clap::Args)]
struct CreateArgs {
    /// Bundle directory (holding config.json)
    #[arg(short, long, value_name = "DIR")]
    bundle: Option<PathBuf>,
    /// Write the init's pid to FILE
    #[arg(long, value_name = "FILE")]
    pid_file: Option<PathBuf>,
    /// Unix socket to receive the pty master on (not supported yet)
    #[arg(long, value_name = "PATH")]
    console_socket: Option<PathBuf>,
    /// Use MS_MOVE and chroot instead of pivot_root
    #[arg(long)]
    no_pivot: bool,
    /// Do not create a new session keyring
    #[arg(long)]
    no_new_keyring: bool,
    /// Pass N extra fds (3..3+N) to the container
    #[arg(long, value_name = "N", default_value_t = 0)]
    preserve_fds: u32,
    /// Container id
    id: String,
}

#[derive(Subcommand)]
enum Command {
    /// Create a container; its process waits for `start`
    Create(CreateArgs),
    /// Start the process of a created container
    Start { id: String },
    /// Create and start a container, by default waiting for it to exit
    Run {
        #[command(flatten)]
        create: CreateArgs,
        /// Return once the container is started
        #[arg(short, long)]
        detach: bool,
        /// Keep the container's state after it exits
        #[arg(long)]
        keep: bool,
    },
    /// Print the state of a container as JSON
    State { id: String },
    /// Send a signal (default SIGTERM) to a container's init
    Kill {
        /// Signal every process of the container
        #[arg(short, long)]
        all: bool,
        id: String,
        signal: Option<String>,
    },
    /// Delete a container and everything it owns
    Delete {
        /// Kill a running container first
        #[arg(short, long)]
        force: bool,
        id: String,
    },
    /// List containers
    List {
        #[arg(short, long, value_enum, default_value = "table")]
        format: ListFormat,
        /// Print only the ids
        #[arg(short, long)]
        quiet: bool,
    },
    /// Write a default config.json
    Spec {
        #[arg(short, long, value_name = "DIR")]
        bundle: Option<PathBuf>,
        /// A config for running without root
        #[arg(long)]
        rootless: bool,
    },
    /// Print the features document of the runtime-spec
    Features,
    /// Not supported yet
    #[command(external_subcommand)]
    Other(Vec<String>),
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum ListFormat {
    Table,
    Json,
}

/// Go's flag parser accepts `-flag` for long flags and clients use it
/// (containerd: `restore -no-subreaper`); turn those into `--flag`.
fn normalize_args() -> Vec<String> {
    const LONG: &[&str] = &[
        "root",
        "log",
        "log-format",
        "debug",
        "systemd-cgroup",
        "rootless",
        "criu",
        "bundle",
        "pid-file",
        "console-socket",
        "no-pivot",
        "no-new-keyring",
        "preserve-fds",
        "detach",
        "keep",
        "force",
        "all",
        "format",
        "quiet",
        "version",
        "help",
    ];
    std::env::args()
        .map(|a| {
            let name = a
                .strip_prefix('-')
                .filter(|r| !r.starts_with('-'))
                .map(|r| r.split('=').next().unwrap_or(r));
            match name {
                Some(n) if n.len() > 1 && LONG.contains(&n) => format!("-{a}"),
                _ => a,
            }
        })
        .collect()
}

fn main() {
    let cli = Cli::parse_from(normalize_args());
    let format = match cli.log_format {
        LogFormat::Text => Format::Text,
        LogFormat::Json => Format::Json,
    };
    logging::init(cli.log.as_deref(), format, cli.debug);
    let _ = (&cli.criu, cli.systemd_cgroup, &cli.rootless);
    if cli.version {
        print!("{}", capsa::version_text());
        return;
    }
    let Some(command) = cli.command else {
        eprintln!("capsa: no command given; see capsa --help");
        std::process::exit(1);
    };
    let rt = Runtime::new(cli.root.unwrap_or_else(capsa::state::default_root));
    match dispatch(&rt, command) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            logging::error(&e.to_string());
            std::process::exit(1);
        }
    }
}

fn run_options(c: &CreateArgs) -> capsa::Result<RunOptions> {
    if c.console_socket.is_some() {
        return Err(capsa::Error::msg(
            "--console-socket: terminals are not supported yet",
        ));
    }
    Ok(RunOptions {
        bundle: bundle_dir(c.bundle.as_deref()),
        pid_file: c.pid_file.clone(),
        no_pivot: c.no_pivot,
        no_new_keyring: c.no_new_keyring,
        preserve_fds: c.preserve_fds,
    })
}

fn dispatch(rt: &Runtime, command: Command) -> capsa::Result<i32> {
    match command {
        Command::Create(c) => {
            let o = run_options(&c)?;
            let mask = nix::sys::signal::SigSet::thread_get_mask()
                .unwrap_or_else(|_| nix::sys::signal::SigSet::empty());
            rt.create(&c.id, &o, mask)?;
        }
        Command::Start { id } => rt.start(&id)?,
        Command::Run {
            create,
            detach,
            keep,
        } => {
            let o = run_options(&create)?;
            return rt.run(&create.id, &o, detach, keep);
        }
        Command::State { id } => {
            let v = rt.state(&id)?;
            println!(
                "{}",
                serde_json::to_string_pretty(&v).expect("json serializes")
            );
        }
        Command::Kill { all, id, signal } => {
            let sig = capsa::signals::parse(signal.as_deref().unwrap_or("SIGTERM"))?;
            rt.kill(&id, sig, all)?;
        }
        Command::Delete { force, id } => rt.delete(&id, force)?,
        Command::List { format, quiet } => list(rt, format, quiet)?,
        Command::Spec { bundle, rootless } => {
            capsa::spec::write_default(&bundle.unwrap_or_else(|| PathBuf::from(".")), rootless)?
        }
        Command::Features => {
            println!(
                "{}",
                serde_json::to_string_pretty(&capsa::features::document())
                    .expect("json serializes")
            )
        }
        Command::Other(args) => {
            let name = args.first().map(String::as_str).unwrap_or("");
            return Err(capsa::Error::msg(format!(
                "command {name:?} is not supported yet"
            )));
        }
    }
    Ok(0)
}

fn list(rt: &Runtime, format: ListFormat, quiet: bool) -> capsa::Result<()> {
    let all = rt.list()?;
    if quiet {
        for (st, _) in &all {
            println!("{}", st.id);
        }
        return Ok(());
    }
    if format == ListFormat::Json {
        let v: Vec<serde_json::Value> = all.iter().map(|(st, s)| rt.state_json(st, *s)).collect();
        println!("{}", serde_json::Value::Array(v));
        return Ok(());
    }
    let rows: Vec<[String; 6]> = all
        .iter()
        .map(|(st, s)| {
            let pid = if *s == capsa::container::Status::Stopped {
                0
            } else {
                st.pid
            };
            let owner = if st.owner.is_empty() {
                "root".to_string()
            } else {
                st.owner.clone()
            };
            [
                st.id.clone(),
                pid.to_string(),
                s.to_string(),
                st.bundle.display().to_string(),
                st.created.clone(),
                owner,
            ]
        })
        .collect();
    let header = ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(String::from);
    let mut widths = [0usize; 6];
    for r in std::iter::once(&header).chain(rows.iter()) {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    for r in std::iter::once(&header).chain(rows.iter()) {
        let line: Vec<String> = r
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", line.join("   ").trim_end());
    }
    Ok(())
}
