//! capsa's command line, compatible with runc's. Each subcommand is one
//! call into the library.

use capsa::container::{ExecRequest, RunOptions, Runtime, bundle_dir};
use capsa::logging::{self, Format};
use clap::{Args as _, Parser, ValueEnum};
use std::path::PathBuf;

/// With musl, dlmalloc: musl's own malloc maps and unmaps small areas one
/// at a time (about 140 mmap/munmap calls in a `run`), dlmalloc takes
/// 64 KiB at a time and reuses it.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOC: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

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
    /// Take linux.cgroupsPath as systemd's slice:prefix:name (cgroups are
    /// still managed through cgroupfs)
    #[arg(long, global = true)]
    systemd_cgroup: bool,
    /// How the container's cgroups are managed: cgroupfs (the default),
    /// systemd (as --systemd-cgroup) or disabled (no cgroup of its own;
    /// podman's --cgroups=disabled)
    #[arg(long, global = true, value_enum, value_name = "MANAGER")]
    cgroup_manager: Option<CgroupManager>,
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

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum CgroupManager {
    Cgroupfs,
    Systemd,
    Disabled,
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
    /// Unix socket that receives the pty master (SCM_RIGHTS) when process.terminal is set
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
    /// Unix socket that receives a pidfd of the container's init (SCM_RIGHTS)
    #[arg(long, value_name = "PATH")]
    pidfd_socket: Option<PathBuf>,
    /// Container id
    id: String,
}

/// The subcommands. Each one's flags are described to clap only when that
/// subcommand is the one given (`Command::defer`): building every flag of
/// every command on each call is most of clap's work and memory.
enum Command {
    Create(CreateArgs),
    Start(IdArg),
    Run(RunArgs),
    State(IdArg),
    Kill(KillArgs),
    Delete(DeleteArgs),
    List(ListArgs),
    Spec(SpecArgs),
    Features,
    Exec(Box<ExecArgs>),
    Update(Box<UpdateArgs>),
    Pause(IdArg),
    Resume(IdArg),
    Ps(PsArgs),
    Events(EventsArgs),
    /// Not supported yet
    Other(Vec<String>),
}

/// How a subcommand's flags are added to it.
type AddArgs = fn(clap::Command) -> clap::Command;

/// Each subcommand: its name, its one-line help and how its flags are added.
const SUBCOMMANDS: &[(&str, &str, AddArgs)] = &[
    (
        "create",
        "Create a container; its process waits for `start`",
        CreateArgs::augment_args,
    ),
    (
        "start",
        "Start the process of a created container",
        IdArg::augment_args,
    ),
    (
        "run",
        "Create and start a container, by default waiting for it to exit",
        RunArgs::augment_args,
    ),
    (
        "state",
        "Print the state of a container as JSON",
        IdArg::augment_args,
    ),
    (
        "kill",
        "Send a signal (default SIGTERM) to a container's init",
        KillArgs::augment_args,
    ),
    (
        "delete",
        "Delete a container and everything it owns",
        DeleteArgs::augment_args,
    ),
    ("list", "List containers", ListArgs::augment_args),
    (
        "spec",
        "Write a default config.json",
        SpecArgs::augment_args,
    ),
    (
        "features",
        "Print the features document of the runtime-spec",
        std::convert::identity,
    ),
    (
        "exec",
        "Run a new process in a running container",
        ExecArgs::augment_args,
    ),
    (
        "update",
        "Change a container's resource limits",
        UpdateArgs::augment_args,
    ),
    (
        "pause",
        "Freeze every process of a container",
        IdArg::augment_args,
    ),
    ("resume", "Thaw a paused container", IdArg::augment_args),
    ("ps", "List a container's processes", PsArgs::augment_args),
    (
        "events",
        "Print a container's OOM events and resource usage as JSON lines",
        EventsArgs::augment_args,
    ),
];

impl clap::Subcommand for Command {
    fn augment_subcommands(mut cmd: clap::Command) -> clap::Command {
        for (name, about, args) in SUBCOMMANDS {
            cmd = cmd.subcommand(clap::Command::new(*name).about(*about).defer(*args));
        }
        cmd.allow_external_subcommands(true)
            .external_subcommand_value_parser(clap::value_parser!(String))
    }

    fn augment_subcommands_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_subcommands(cmd)
    }

    fn has_subcommand(_name: &str) -> bool {
        // Any other name is an external subcommand: Command::Other.
        true
    }
}

impl clap::FromArgMatches for Command {
    fn from_arg_matches(m: &clap::ArgMatches) -> Result<Self, clap::Error> {
        use clap::FromArgMatches as F;
        let Some((name, sub)) = m.subcommand() else {
            return Err(clap::Error::new(clap::error::ErrorKind::MissingSubcommand));
        };
        Ok(match name {
            "create" => Command::Create(F::from_arg_matches(sub)?),
            "start" => Command::Start(F::from_arg_matches(sub)?),
            "run" => Command::Run(F::from_arg_matches(sub)?),
            "state" => Command::State(F::from_arg_matches(sub)?),
            "kill" => Command::Kill(F::from_arg_matches(sub)?),
            "delete" => Command::Delete(F::from_arg_matches(sub)?),
            "list" => Command::List(F::from_arg_matches(sub)?),
            "spec" => Command::Spec(F::from_arg_matches(sub)?),
            "features" => Command::Features,
            "exec" => Command::Exec(Box::new(F::from_arg_matches(sub)?)),
            "update" => Command::Update(Box::new(F::from_arg_matches(sub)?)),
            "pause" => Command::Pause(F::from_arg_matches(sub)?),
            "resume" => Command::Resume(F::from_arg_matches(sub)?),
            "ps" => Command::Ps(F::from_arg_matches(sub)?),
            "events" => Command::Events(F::from_arg_matches(sub)?),
            other => Command::Other(
                std::iter::once(other.to_string())
                    .chain(sub.get_many::<String>("").into_iter().flatten().cloned())
                    .collect(),
            ),
        })
    }

    fn update_from_arg_matches(&mut self, m: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

#[derive(clap::Args)]
struct IdArg {
    /// Container id
    id: String,
}

#[derive(clap::Args)]
struct RunArgs {
    #[command(flatten)]
    create: CreateArgs,
    /// Return once the container is started
    #[arg(short, long)]
    detach: bool,
    /// Keep the container's state after it exits
    #[arg(long)]
    keep: bool,
    /// Do not make capsa a child subreaper (it never is one: accepted as
    /// runc's flag, nothing to turn off)
    #[arg(long)]
    no_subreaper: bool,
}

#[derive(clap::Args)]
struct KillArgs {
    /// Signal every process of the container
    #[arg(short, long)]
    all: bool,
    /// Container id
    id: String,
    /// Signal name or number (default SIGTERM)
    signal: Option<String>,
}

#[derive(clap::Args)]
struct DeleteArgs {
    /// Kill a running container first
    #[arg(short, long)]
    force: bool,
    /// Container id
    id: String,
}

#[derive(clap::Args)]
struct ListArgs {
    #[arg(short, long, value_enum, default_value = "table")]
    format: ListFormat,
    /// Print only the ids
    #[arg(short, long)]
    quiet: bool,
}

#[derive(clap::Args)]
struct SpecArgs {
    #[arg(short, long, value_name = "DIR")]
    bundle: Option<PathBuf>,
    /// A config for running without root
    #[arg(long)]
    rootless: bool,
}

#[derive(clap::Args)]
struct PsArgs {
    #[arg(short, long, value_enum, default_value = "table")]
    format: ListFormat,
    /// Container id
    id: String,
    /// Options for ps(1) (default -ef), table format only
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    ps_args: Vec<String>,
}

#[derive(clap::Args)]
struct EventsArgs {
    /// Print the usage once and exit
    #[arg(long)]
    stats: bool,
    /// Time between usage reports
    #[arg(long, default_value = "5s", value_name = "DURATION")]
    interval: String,
    /// Container id
    id: String,
}

#[derive(clap::Args)]
struct ExecArgs {
    /// process.json describing the process (instead of COMMAND)
    #[arg(short, long, value_name = "FILE")]
    process: Option<PathBuf>,
    /// Allocate a terminal
    #[arg(short, long)]
    tty: bool,
    /// Unix socket that receives the pty master
    #[arg(long, value_name = "PATH")]
    console_socket: Option<PathBuf>,
    /// Return once the process is started
    #[arg(short, long)]
    detach: bool,
    /// Write the process's pid to FILE
    #[arg(long, value_name = "FILE")]
    pid_file: Option<PathBuf>,
    /// Working directory in the container
    #[arg(long, value_name = "DIR")]
    cwd: Option<PathBuf>,
    /// Extra environment variable (repeatable)
    #[arg(short, long, value_name = "K=V")]
    env: Vec<String>,
    /// UID[:GID] to run as
    #[arg(short, long, value_name = "UID[:GID]")]
    user: Option<String>,
    /// Additional group ids (repeatable or comma separated)
    #[arg(short = 'g', long, value_name = "GID", value_delimiter = ',')]
    additional_gids: Vec<u32>,
    /// Add a capability (repeatable)
    #[arg(short, long, value_name = "CAP")]
    cap: Vec<String>,
    /// Set no_new_privs for the process
    #[arg(long)]
    no_new_privs: bool,
    /// AppArmor profile (refused: this host has no AppArmor)
    #[arg(long, value_name = "PROFILE")]
    apparmor: Option<String>,
    /// SELinux label (refused: this host has no SELinux)
    #[arg(long, value_name = "LABEL")]
    process_label: Option<String>,
    /// Pass N extra fds (3..3+N) to the process
    #[arg(long, value_name = "N", default_value_t = 0)]
    preserve_fds: u32,
    /// Unix socket that receives a pidfd of the new process (SCM_RIGHTS)
    #[arg(long, value_name = "PATH")]
    pidfd_socket: Option<PathBuf>,
    /// Run the process in an existing sub-cgroup of the container's:
    /// PATH for every hierarchy, or CONTROLLER[,CONTROLLER]:PATH (v1)
    /// (repeatable)
    #[arg(long, value_name = "[CONTROLLER:]PATH")]
    cgroup: Vec<String>,
    /// Exec in a paused container too (the process runs once it is resumed)
    #[arg(long)]
    ignore_paused: bool,
    /// Container id
    id: String,
    /// Command and arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

#[derive(clap::Args)]
struct UpdateArgs {
    /// A runtime-spec LinuxResources JSON file ("-" for stdin) holding the
    /// values to change; the other flags are then ignored
    #[arg(short, long, value_name = "FILE")]
    resources: Option<PathBuf>,
    /// Block I/O weight (10-1000)
    #[arg(long)]
    blkio_weight: Option<u16>,
    /// CPU CFS period in microseconds
    #[arg(long)]
    cpu_period: Option<u64>,
    /// CPU CFS quota in microseconds per period (-1: none)
    #[arg(long, allow_negative_numbers = true)]
    cpu_quota: Option<i64>,
    /// CPU CFS burst in microseconds
    #[arg(long)]
    cpu_burst: Option<u64>,
    /// CPU shares (relative weight)
    #[arg(long, alias = "cpu-share")]
    cpu_shares: Option<u64>,
    /// CPU realtime period in microseconds
    #[arg(long)]
    cpu_rt_period: Option<u64>,
    /// CPU realtime runtime in microseconds per period
    #[arg(long, allow_negative_numbers = true)]
    cpu_rt_runtime: Option<i64>,
    /// CPUs the processes may run on (0-3,8)
    #[arg(long)]
    cpuset_cpus: Option<String>,
    /// Memory nodes the processes may use
    #[arg(long)]
    cpuset_mems: Option<String>,
    /// SCHED_IDLE for the cgroup (1) or not (0)
    #[arg(long)]
    cpu_idle: Option<i64>,
    /// Memory limit (bytes, or 512m, 1g...; -1: none)
    #[arg(long, allow_hyphen_values = true)]
    memory: Option<String>,
    /// Memory soft limit
    #[arg(long, allow_hyphen_values = true)]
    memory_reservation: Option<String>,
    /// Memory plus swap limit (-1: unlimited swap)
    #[arg(long, allow_hyphen_values = true)]
    memory_swap: Option<String>,
    /// Kernel memory limit (obsolete; where the kernel still has it)
    #[arg(long, allow_hyphen_values = true)]
    kernel_memory: Option<String>,
    /// Kernel TCP buffer memory limit (where the kernel still has it)
    #[arg(long, allow_hyphen_values = true)]
    kernel_memory_tcp: Option<String>,
    /// Maximum number of processes (-1: none)
    #[arg(long, allow_negative_numbers = true)]
    pids_limit: Option<i64>,
    /// Intel RDT L3 cache schema (not supported)
    #[arg(long)]
    l3_cache_schema: Option<String>,
    /// Intel RDT memory bandwidth schema (not supported)
    #[arg(long)]
    mem_bw_schema: Option<String>,
    id: String,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum ListFormat {
    Table,
    Json,
}

/// Go's flag parser accepts `-flag` for long flags and clients use it
/// (containerd: `restore -no-subreaper`); turn those into `--flag`. Only
/// capsa's own flags are rewritten, and nothing after the container id of
/// `exec` (that is the command's own argument list).
fn normalize_args(args: impl Iterator<Item = String>) -> Vec<String> {
    const LONG: &[&str] = &[
        "root",
        "log",
        "log-format",
        "debug",
        "systemd-cgroup",
        "cgroup-manager",
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
        "resources",
        "blkio-weight",
        "cpu-period",
        "cpu-quota",
        "cpu-burst",
        "cpu-share",
        "cpu-shares",
        "cpu-rt-period",
        "cpu-rt-runtime",
        "cpuset-cpus",
        "cpuset-mems",
        "cpu-idle",
        "memory",
        "memory-reservation",
        "memory-swap",
        "kernel-memory",
        "kernel-memory-tcp",
        "pids-limit",
        "l3-cache-schema",
        "mem-bw-schema",
        "stats",
        "interval",
        "format",
        "quiet",
        "version",
        "help",
        "process",
        "tty",
        "cwd",
        "env",
        "user",
        "additional-gids",
        "cap",
        "no-new-privs",
        "apparmor",
        "process-label",
        "pidfd-socket",
        "no-subreaper",
        "cgroup",
        "ignore-paused",
    ];
    const TAKES_VALUE: &[&str] = &[
        "root",
        "log",
        "log-format",
        "cgroup-manager",
        "rootless",
        "criu",
        "bundle",
        "b",
        "pid-file",
        "console-socket",
        "preserve-fds",
        "format",
        "f",
        "process",
        "p",
        "cwd",
        "env",
        "e",
        "user",
        "u",
        "additional-gids",
        "g",
        "cap",
        "c",
        "apparmor",
        "process-label",
        "pidfd-socket",
        "cgroup",
    ];
    let mut out = Vec::new();
    let mut positionals = 0;
    let mut command = String::new();
    let mut value_next = false;
    for (i, a) in args.enumerate() {
        if i == 0 || (command == "exec" && positionals >= 2) {
            out.push(a);
            continue;
        }
        if value_next {
            value_next = false;
            out.push(a);
            continue;
        }
        if let Some(flag) = a.strip_prefix('-') {
            let long = flag.strip_prefix('-');
            let name = long.unwrap_or(flag);
            let (name, value) = match name.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (name, None),
            };
            value_next = value.is_none() && TAKES_VALUE.contains(&name);
            let dashes = if name.len() > 1 { "--" } else { "-" };
            // `--flag=true` / `--flag=false` (Go's boolean flags): the
            // flag, or nothing. Any other value is left for clap to refuse.
            if let Some(on) = value.and_then(go_bool)
                && is_bool_flag(name, &command)
            {
                if on {
                    out.push(format!("{dashes}{name}"));
                }
                continue;
            }
            if long.is_none() && name.len() > 1 && LONG.contains(&name) {
                out.push(format!("-{a}"));
                continue;
            }
        } else {
            positionals += 1;
            if positionals == 1 {
                command = a.clone();
            }
        }
        out.push(a);
    }
    out
}

/// The `--log` file and `--log-format` among the global flags (those before
/// the command, where clients put them), for a command line clap refused.
fn usage_log(args: &[String]) -> (Option<PathBuf>, Format) {
    let (mut log, mut format) = (None, Format::Text);
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        let Some(flag) = a.strip_prefix("--") else {
            break;
        };
        let (name, value) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None if matches!(flag, "root" | "log" | "log-format" | "rootless" | "criu") => {
                (flag, it.next().cloned())
            }
            None => (flag, None),
        };
        match (name, value) {
            ("log", Some(v)) => log = Some(PathBuf::from(v)),
            ("log-format", Some(v)) if v == "json" => format = Format::Json,
            ("log-format", Some(_)) => format = Format::Text,
            _ => {}
        }
    }
    (log, format)
}

/// A boolean as Go's strconv.ParseBool reads it (what runc's flags take).
fn go_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// Whether `name` (without dashes) is a boolean flag of capsa, globally or
/// of `command`.
fn is_bool_flag(name: &str, command: &str) -> bool {
    const BOOL: &[&str] = &[
        "debug",
        "systemd-cgroup",
        "no-pivot",
        "no-new-keyring",
        "detach",
        "keep",
        "force",
        "all",
        "stats",
        "quiet",
        "version",
        "help",
        "tty",
        "no-new-privs",
        "no-subreaper",
        "ignore-paused",
        "d",
        "t",
        "a",
        "q",
        "v",
        "h",
    ];
    BOOL.contains(&name)
        || (name == "f" && command == "delete")
        || (name == "rootless" && command == "spec")
}

fn main() {
    capsa::logging::start_clock();
    let args = normalize_args(std::env::args());
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                std::process::exit(0);
            }
            // A usage error exits 1, as runc's, and goes to the --log file
            // too: clients (containerd's shim, conmon) read errors there.
            let (log, format) = usage_log(&args);
            if let Some(log) = log {
                logging::init(Some(&log), format, false);
                let text = e.to_string();
                let (first, rest) = text.split_once('\n').unwrap_or((&text, ""));
                logging::error(first.strip_prefix("error: ").unwrap_or(first));
                // The usage lines clap adds, on stderr only.
                eprint!("{rest}");
            } else {
                let _ = e.print();
            }
            std::process::exit(1);
        }
    };
    // clap's description of every command and flag is gone now: hand its
    // memory back to the system rather than keep it resident all along.
    capsa::sys::trim_heap();
    let format = match cli.log_format {
        LogFormat::Text => Format::Text,
        LogFormat::Json => Format::Json,
    };
    logging::init(cli.log.as_deref(), format, cli.debug);
    // CVE-2019-5736: container processes exec through the sealed stub
    // (src/exec_stub.rs); where there can be none, capsa re-executes from a
    // sealed copy of its binary. Only the commands that start container
    // processes do either.
    if let Some(Command::Create(_) | Command::Run(_) | Command::Exec(_)) = &cli.command
        && !(capsa::exec_stub::wanted() && capsa::exec_stub::install().is_ok())
        && let Err(e) = capsa::sealed_exe::ensure()
    {
        if let Some(Command::Exec(_)) = &cli.command {
            logging::error(&format!("exec failed: {e}"));
            std::process::exit(255);
        }
        logging::error(&e.to_string());
        std::process::exit(1);
    }
    let _ = &cli.criu;
    if let Err(e) = capsa::rootless::set_mode(cli.rootless.as_deref()) {
        logging::error(&e.to_string());
        std::process::exit(1);
    }
    if cli.version {
        print!("{}", capsa::version_text());
        return;
    }
    let Some(command) = cli.command else {
        eprintln!("capsa: no command given; see capsa --help");
        std::process::exit(1);
    };
    let rt = Runtime::new(cli.root.unwrap_or_else(capsa::state::default_root));
    let cgroups = Cgroups {
        systemd: cli.systemd_cgroup || cli.cgroup_manager == Some(CgroupManager::Systemd),
        disabled: cli.cgroup_manager == Some(CgroupManager::Disabled),
    };
    match dispatch(&rt, command, cgroups) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            logging::error(&e.to_string());
            std::process::exit(1);
        }
    }
}

/// What `--systemd-cgroup` and `--cgroup-manager` ask of create and run.
#[derive(Clone, Copy)]
struct Cgroups {
    systemd: bool,
    disabled: bool,
}

fn run_options(c: &CreateArgs, cgroups: Cgroups) -> capsa::Result<RunOptions> {
    Ok(RunOptions {
        bundle: bundle_dir(c.bundle.as_deref()),
        pid_file: c.pid_file.clone(),
        console_socket: c.console_socket.clone(),
        no_pivot: c.no_pivot,
        no_new_keyring: c.no_new_keyring,
        preserve_fds: c.preserve_fds,
        systemd_cgroup: cgroups.systemd,
        no_cgroup: cgroups.disabled,
        pidfd_socket: c.pidfd_socket.clone(),
    })
}

fn dispatch(rt: &Runtime, command: Command, cgroups: Cgroups) -> capsa::Result<i32> {
    match command {
        Command::Create(c) => {
            let o = run_options(&c, cgroups)?;
            let mask = nix::sys::signal::SigSet::thread_get_mask()
                .unwrap_or_else(|_| nix::sys::signal::SigSet::empty());
            rt.create(&c.id, &o, mask, false)?;
        }
        Command::Start(IdArg { id }) => rt.start(&id)?,
        Command::Run(RunArgs {
            create,
            detach,
            keep,
            no_subreaper: _,
        }) => {
            let o = run_options(&create, cgroups)?;
            return rt.run(&create.id, &o, detach, keep);
        }
        Command::State(IdArg { id }) => {
            let v = rt.state(&id)?;
            println!(
                "{}",
                serde_json::to_string_pretty(&v).expect("json serializes")
            );
        }
        Command::Kill(KillArgs { all, id, signal }) => {
            let sig = capsa::signals::parse(signal.as_deref().unwrap_or("SIGTERM"))?;
            rt.kill(&id, sig, all)?;
        }
        Command::Delete(DeleteArgs { force, id }) => rt.delete(&id, force)?,
        Command::List(ListArgs { format, quiet }) => list(rt, format, quiet)?,
        Command::Spec(SpecArgs { bundle, rootless }) => {
            capsa::spec::write_default(&bundle.unwrap_or_else(|| PathBuf::from(".")), rootless)?
        }
        Command::Features => {
            println!(
                "{}",
                serde_json::to_string_pretty(&capsa::features::document())
                    .expect("json serializes")
            )
        }
        Command::Exec(e) => {
            let e = *e;
            let req = ExecRequest {
                process_file: e.process,
                args: e.command,
                tty: e.tty,
                cwd: e.cwd,
                env: e.env,
                user: e.user,
                additional_gids: e.additional_gids,
                caps: e.cap,
                no_new_privs: e.no_new_privs,
                apparmor: e.apparmor,
                process_label: e.process_label,
                console_socket: e.console_socket,
                detach: e.detach,
                pid_file: e.pid_file,
                preserve_fds: e.preserve_fds,
                pidfd_socket: e.pidfd_socket,
                cgroup: e.cgroup,
                ignore_paused: e.ignore_paused,
            };
            // runc's exit status for an exec that failed before the
            // process ran, so that it is told from the process's own.
            return rt.exec(&e.id, &req).or_else(|err| {
                logging::error(&format!("exec failed: {err}"));
                Ok(255)
            });
        }
        Command::Update(u) => rt.update(&u.id, &update_resources(&u)?)?,
        Command::Pause(IdArg { id }) => rt.pause(&id)?,
        Command::Resume(IdArg { id }) => rt.resume(&id)?,
        Command::Ps(PsArgs {
            format,
            id,
            ps_args,
        }) => match format {
            ListFormat::Json => {
                if !ps_args.is_empty() {
                    return Err(capsa::Error::msg(
                        "ps: options for ps(1) need --format table",
                    ));
                }
                let pids = rt.pids(&id)?;
                println!("{}", serde_json::to_string(&pids).expect("json serializes"));
            }
            ListFormat::Table => print!("{}", rt.ps_table(&id, &ps_args)?),
        },
        Command::Events(EventsArgs {
            stats,
            interval,
            id,
        }) => {
            let interval = humantime::parse_duration(&interval).map_err(|e| {
                capsa::Error::msg(format!("invalid value {interval:?} for --interval: {e}"))
            })?;
            rt.events(&id, stats, interval, &mut std::io::stdout())?;
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

/// The LinuxResources document `update` applies: the --resources file, or
/// one built from the flags (runc's units; -1 means unlimited).
fn update_resources(u: &UpdateArgs) -> capsa::Result<serde_json::Value> {
    use serde_json::{Map, Value, json};
    if u.l3_cache_schema.is_some() || u.mem_bw_schema.is_some() {
        return Err(capsa::Error::msg("update: Intel RDT is not supported"));
    }
    if let Some(f) = &u.resources {
        let data = if f.as_os_str() == "-" {
            let mut v = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut v).map(|_| v)
        } else {
            std::fs::read(f)
        }
        .map_err(|e| capsa::Error::msg(format!("update: --resources {}: {e}", f.display())))?;
        return serde_json::from_slice(&data)
            .map_err(|e| capsa::Error::msg(format!("update: --resources {}: {e}", f.display())));
    }
    let size = |v: &Option<String>, flag: &str| -> capsa::Result<Option<i64>> {
        match v.as_deref() {
            None => Ok(None),
            Some("-1") => Ok(Some(-1)),
            Some(s) => capsa::cgroups::parse_size(s)
                .map(Some)
                .map_err(|e| capsa::Error::msg(format!("invalid value for --{flag}: {e}"))),
        }
    };
    fn put<T: serde::Serialize>(m: &mut Map<String, Value>, k: &str, v: Option<T>) {
        if let Some(v) = v {
            m.insert(k.into(), json!(v));
        }
    }
    let mut memory = Map::new();
    put(&mut memory, "limit", size(&u.memory, "memory")?);
    put(
        &mut memory,
        "reservation",
        size(&u.memory_reservation, "memory-reservation")?,
    );
    put(&mut memory, "swap", size(&u.memory_swap, "memory-swap")?);
    put(
        &mut memory,
        "kernel",
        size(&u.kernel_memory, "kernel-memory")?,
    );
    put(
        &mut memory,
        "kernelTCP",
        size(&u.kernel_memory_tcp, "kernel-memory-tcp")?,
    );
    let mut cpu = Map::new();
    put(&mut cpu, "shares", u.cpu_shares);
    put(&mut cpu, "quota", u.cpu_quota);
    put(&mut cpu, "period", u.cpu_period);
    put(&mut cpu, "burst", u.cpu_burst);
    put(&mut cpu, "realtimePeriod", u.cpu_rt_period);
    put(&mut cpu, "realtimeRuntime", u.cpu_rt_runtime);
    put(&mut cpu, "cpus", u.cpuset_cpus.clone());
    put(&mut cpu, "mems", u.cpuset_mems.clone());
    put(&mut cpu, "idle", u.cpu_idle);
    let mut r = Map::new();
    for (k, m) in [("memory", memory), ("cpu", cpu)] {
        if !m.is_empty() {
            r.insert(k.into(), Value::Object(m));
        }
    }
    if let Some(w) = u.blkio_weight {
        r.insert("blockIO".into(), json!({ "weight": w }));
    }
    if let Some(l) = u.pids_limit {
        r.insert("pids".into(), json!({ "limit": l }));
    }
    Ok(Value::Object(r))
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
        let v: Vec<serde_json::Value> = all
            .iter()
            // Runtime::list gives each the owner of its state directory.
            .map(|(st, s)| rt.state_json(st, *s))
            .collect();
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
            [
                st.id.clone(),
                pid.to_string(),
                s.to_string(),
                st.bundle.display().to_string(),
                st.created.clone(),
                st.owner.clone(),
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

#[cfg(test)]
mod tests {
    use super::normalize_args;

    /// clap's own checks of the whole command line, deferred subcommands
    /// included (it builds them all).
    #[test]
    fn command_line_definition() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }

    fn norm(s: &str) -> String {
        normalize_args(s.split(' ').map(String::from)).join(" ")
    }

    #[test]
    fn single_dash_long_flags() {
        assert_eq!(
            norm("capsa -root /r create -bundle b -pid-file=p id"),
            "capsa --root /r create --bundle b --pid-file=p id"
        );
        assert_eq!(
            norm("capsa exec -t id ls -all -root"),
            "capsa exec -t id ls -all -root"
        );
        assert_eq!(
            norm("capsa exec -cwd /all id sh -c echo"),
            "capsa exec --cwd /all id sh -c echo"
        );
        assert_eq!(norm("capsa kill -all id 9"), "capsa kill --all id 9");
    }

    #[test]
    fn go_boolean_values() {
        assert_eq!(
            norm("capsa --systemd-cgroup=true -debug=false run --no-pivot=False -d=1 id"),
            "capsa --systemd-cgroup run -d id"
        );
        assert_eq!(norm("capsa delete -f=t id"), "capsa delete -f id");
        // Not booleans: left as they are (clap refuses a bad value).
        assert_eq!(norm("capsa list -f=json"), "capsa list -f=json");
        assert_eq!(
            norm("capsa delete --force=yes id"),
            "capsa delete --force=yes id"
        );
        assert_eq!(norm("capsa spec --rootless=true"), "capsa spec --rootless");
        assert_eq!(
            norm("capsa --rootless=true list"),
            "capsa --rootless=true list"
        );
        // The command of exec is its own.
        assert_eq!(
            norm("capsa exec --tty=false id ls --all=true"),
            "capsa exec id ls --all=true"
        );
    }
}
