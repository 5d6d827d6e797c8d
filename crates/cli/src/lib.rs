//! The `tdfs` command line: daemons (`meta`, `local`), user commands (`dfs`),
//! admin commands (`dfsadmin`, `fsck`, `haadmin`) and benchmarks.

mod admin;
mod bench;
mod conf;
mod daemon;
mod dfs;
mod edit;
mod events;
mod facl;
mod fmt;
mod local;
mod opts;
mod progress;
mod quota;
mod snap;
mod transfer;
mod trash;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "tdfs",
    version,
    about = "An HDFS-class distributed file system",
    // A daemon's `--config` file becomes flags before the command line's
    // own; a repeated flag overrides, so the command line wins.
    args_override_self = true
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a metadata node.
    Meta(Box<daemon::MetaArgs>),
    /// Run a datanode.
    Datanode(daemon::DatanodeArgs),
    /// Run metadata nodes (and datanodes) in one process on loopback.
    Local(local::LocalArgs),
    /// File system commands, as `hdfs dfs` (-ls, -mkdir, -put, ...).
    #[command(disable_help_flag = true)]
    Dfs {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Cluster administration, as `hdfs dfsadmin` (-report, -decommission, ...).
    #[command(disable_help_flag = true)]
    Dfsadmin {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// File system health, as `hdfs fsck`.
    #[command(disable_help_flag = true)]
    Fsck {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Metadata node administration, as `hdfs haadmin`.
    #[command(disable_help_flag = true)]
    Haadmin {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Balance block placement, as `hdfs balancer` (-threshold PCT).
    #[command(disable_help_flag = true)]
    Balancer {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// The snapshottable directories, as `hdfs lsSnapshottableDir`.
    #[command(name = "lsSnapshottableDir", disable_help_flag = true)]
    LsSnapshottableDir {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// What changed between two snapshots, as `hdfs snapshotDiff DIR FROM TO`.
    #[command(name = "snapshotDiff", disable_help_flag = true)]
    SnapshotDiff {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// The cluster's events (metadata nodes and datanodes, merged by time).
    #[command(disable_help_flag = true)]
    Events {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Benchmarks against a live cluster.
    #[command(subcommand)]
    Bench(bench::BenchCmd),
}

/// Runs the `tdfs` command line; the binary's `main` calls this.
pub fn main() -> ExitCode {
    use clap::{CommandFactory, FromArgMatches};
    let argv = match conf::expand_config(&Cli::command(), std::env::args_os().collect()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("tdfs: {}", one_line(&format!("{e:#}")));
            return ExitCode::from(2);
        }
    };
    let parsed = Cli::command()
        .try_get_matches_from(argv)
        .and_then(|m| Cli::from_arg_matches(&m));
    let cli = match parsed {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                    let _ = e.print();
                    return ExitCode::SUCCESS;
                }
                ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    let _ = e.print();
                    return ExitCode::from(2);
                }
                _ => {}
            }
            // A bad flag: one line with the reason, as every other error.
            let text = e.render().to_string();
            let first = text
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("invalid arguments")
                .trim_start_matches("error: ");
            eprintln!("tdfs: {first} (see --help)");
            return ExitCode::from(2);
        }
    };
    let daemon = matches!(cli.cmd, Cmd::Meta(_) | Cmd::Datanode(_) | Cmd::Local(_));
    init_tracing(daemon);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tdfs: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result: anyhow::Result<u8> = rt.block_on(async move {
        match cli.cmd {
            Cmd::Meta(a) => daemon::run_meta(*a).await.map(|_| 0),
            Cmd::Datanode(a) => daemon::run_datanode(a).await.map(|_| 0),
            Cmd::Local(a) => local::run(a).await.map(|_| 0),
            Cmd::Dfs { args } => dfs::run(args).await,
            Cmd::Dfsadmin { args } => admin::dfsadmin(args).await,
            Cmd::Fsck { args } => admin::fsck(args).await,
            Cmd::Haadmin { args } => admin::haadmin(args).await,
            Cmd::Balancer { args } => admin::balancer(args).await,
            Cmd::LsSnapshottableDir { args } => snap::ls_snapshottable(args).await,
            Cmd::SnapshotDiff { args } => snap::snapshot_diff(args).await,
            Cmd::Events { args } => events::run(args).await,
            Cmd::Bench(b) => bench::run(b).await.map(|_| 0),
        }
    });
    // Daemons leave background tasks; do not wait for them.
    rt.shutdown_timeout(std::time::Duration::from_millis(200));
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("tdfs: {}", one_line(&format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}

fn one_line(s: &str) -> String {
    s.lines().collect::<Vec<_>>().join(" ")
}

fn init_tracing(daemon: bool) {
    use tracing_subscriber::EnvFilter;
    let default = if daemon {
        "info,openraft=warn"
    } else {
        "warn,openraft=error"
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
