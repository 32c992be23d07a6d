//! rehearsal-runner: plays kubelet for one node of the local control plane, running the node's
//! pods as local processes with their own service-account credentials.

mod context;
mod credentials;
mod env;
mod guard;
mod images;
mod ips;
mod node;
mod poddir;
mod pods;
mod process;
mod retry;
mod services;
mod status;
mod volumes;
mod worker;

use std::{path::PathBuf, process::ExitCode, sync::Arc, time::Duration};

use clap::Parser;
use kube::{
    Client,
    config::{KubeConfigOptions, Kubeconfig, KubeconfigError},
};
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

use crate::{context::Context, credentials::ApiTarget, node::NodeAgent};

/// Command-line flags.
#[derive(Debug, Parser)]
#[command(version, about = "Plays kubelet for one node: runs its pods as local processes.")]
struct Args {
    /// Admin kubeconfig of the cluster.
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: PathBuf,
    /// Name of the Node to register.
    #[arg(long, default_value = "rehearsal-runner")]
    node_name: String,
    /// Directory for pod state: credentials, volumes, logs (`<dir>/pods/<ns>_<name>_<uid>/`).
    #[arg(long)]
    state_dir: PathBuf,
    /// Directory holding rehearsal-driver, rehearsal-operator and rehearsal-runner.
    #[arg(long)]
    bin_dir: PathBuf,
    /// CPU capacity the node advertises.
    #[arg(long, default_value = "8")]
    cpu: String,
    /// Memory capacity the node advertises.
    #[arg(long, default_value = "16Gi")]
    memory: String,
    /// Pod capacity the node advertises.
    #[arg(long, default_value = "50")]
    max_pods: String,
    /// Longest grace period given to a pod's processes when the runner itself stops.
    #[arg(long, default_value_t = 30)]
    shutdown_grace_seconds: u64,
    /// A taint of the Node, `key=value:Effect`; repeat for several, `none` for no taints.
    #[arg(long = "taint", value_name = "TAINT", default_value = node::DEFAULT_TAINT)]
    taints: Vec<String>,
}

/// Why the runner could not start.
#[derive(Debug, thiserror::Error)]
enum StartupError {
    #[error("preparing directory {path}: {source}")]
    Dir { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Credentials(#[from] credentials::CredentialsError),
    #[error("loading kubeconfig: {0}")]
    Kubeconfig(#[from] KubeconfigError),
    #[error("building the API client: {0}")]
    Client(#[from] kube::Error),
    #[error("installing signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("--taint: {0}")]
    Taint(String),
}

fn main() -> ExitCode {
    // One process-wide rustls provider before any TLS use (see docs/reference/kube-rs.md §6).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let args = Args::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Plain text when logging to a file (the sandbox's log), colours only on a terminal.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).init();
    // Forked while the process still has one thread, i.e. before the runtime exists.
    let guard = match guard::Guard::start() {
        Ok(guard) => Some(Arc::new(guard)),
        Err(error) => {
            tracing::warn!(%error, "orphan guard not started; a killed runner may leave processes behind");
            None
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "starting the async runtime failed");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args, guard)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "rehearsal-runner failed");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args, guard: Option<Arc<guard::Guard>>) -> Result<(), StartupError> {
    // Signals first, so a stop during start-up is not lost.
    let mut terminate = signal(SignalKind::terminate()).map_err(StartupError::Signals)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(StartupError::Signals)?;

    let taints = node::parse_taints(&args.taints).map_err(StartupError::Taint)?;
    let dir_error = |path: &PathBuf| {
        let path = path.clone();
        move |source| StartupError::Dir { path, source }
    };
    // Pods' credentials and Secret volumes live below: only this user may look inside.
    poddir::create_private(&args.state_dir.join("pods")).map_err(dir_error(&args.state_dir))?;
    poddir::make_private(&args.state_dir).map_err(dir_error(&args.state_dir))?;
    let state_dir = std::fs::canonicalize(&args.state_dir).map_err(dir_error(&args.state_dir))?;
    let bin_dir = std::path::absolute(&args.bin_dir).map_err(dir_error(&args.bin_dir))?;

    let target = ApiTarget::from_kubeconfig(&args.kubeconfig)?;
    let kubeconfig = Kubeconfig::read_from(&args.kubeconfig)?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    let client = Client::try_from(config)?;

    // The bin dir first on PATH, so `sh -c 'rehearsal-driver …'` finds the project's binaries.
    let host_path = std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into());
    let ctx = Arc::new(Context {
        client: client.clone(),
        node_name: args.node_name.clone(),
        state_dir,
        bin_dir: bin_dir.clone(),
        target,
        shutdown_grace: Duration::from_secs(args.shutdown_grace_seconds),
        path_env: format!("{}:{host_path}", bin_dir.display()),
        guard,
    });
    tracing::info!(node = %ctx.node_name, server = %ctx.target.server(), state_dir = %ctx.state_dir.display(), taints = %args.taints.join(","), "rehearsal-runner starting");

    let capacity = node::Capacity { cpu: args.cpu, memory: args.memory, pods: args.max_pods };
    let shutdown = CancellationToken::new();
    let agent = Arc::new(NodeAgent::new(client, args.node_name, capacity, taints).await);
    let heartbeat = tokio::spawn({
        let agent = agent.clone();
        let shutdown = shutdown.clone();
        async move { agent.run(None, shutdown).await }
    });
    let proxy = tokio::spawn(services::run(ctx.clone(), shutdown.clone()));
    let watch = tokio::spawn(pods::run(ctx, shutdown.clone()));

    tokio::select! {
        _ = terminate.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = interrupt.recv() => tracing::info!("SIGINT: shutting down"),
    }
    shutdown.cancel();
    if let Err(error) = watch.await {
        tracing::error!(%error, "pod watch task failed");
    }
    if let Err(error) = proxy.await {
        tracing::error!(%error, "service proxy task failed");
    }
    if let Err(error) = heartbeat.await {
        tracing::error!(%error, "heartbeat task failed");
    }
    agent.deregister().await;
    tracing::info!("rehearsal-runner stopped");
    Ok(())
}
