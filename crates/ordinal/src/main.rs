//! The `ordinal` command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use std::io::Write;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "ordinal", version, about = "StatefulSets on one machine, driven by real kubectl")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API server, the controllers and the node (all in one process).
    Server(ordinal::ServerArgs),
    /// Run the StatefulSet controller against any Kubernetes API (the cluster of the current
    /// kubeconfig context, or the in-cluster service account), as an operator.
    Operator {
        /// Manage the StatefulSets of this namespace only (a Role there is enough); every
        /// namespace by default (a ClusterRole is needed).
        #[arg(long)]
        namespace: Option<String>,
    },
    /// Print how to make this host resolve cluster names through Ordinal's DNS.
    DnsConfig {
        /// Where `ordinal server --dns-listen` answers.
        #[arg(long, default_value = ordinal::DEFAULT_DNS_LISTEN)]
        dns_listen: SocketAddr,
        /// The cluster's DNS domain (`ordinal server --cluster-domain`).
        #[arg(long, default_value = ordinal::DEFAULT_CLUSTER_DOMAIN)]
        cluster_domain: String,
    },
    /// Manage the node's images (kept in the data dir).
    Image {
        /// The data dir whose image store this is (`ordinal server --data-dir`).
        #[arg(long, default_value = ordinal::DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
        #[command(subcommand)]
        action: ImageAction,
    },
    /// Measure Ordinal and print JSON lines.
    Bench {
        #[command(subcommand)]
        which: BenchKind,
    },
}

#[derive(Subcommand)]
enum ImageAction {
    /// Load an OCI image-layout tar or a `docker save` tar.
    Import { file: PathBuf },
    /// Build a one-layer image from a directory and import it (or write it with --output).
    Build {
        /// The root filesystem.
        dir: PathBuf,
        /// Image name, e.g. localhost/busybox:1.35.
        #[arg(long)]
        tag: String,
        /// Write the OCI image-layout tar here instead of importing it.
        #[arg(long)]
        output: Option<PathBuf>,
        /// The image's environment (KEY=VALUE), repeatable.
        #[arg(long)]
        env: Vec<String>,
        /// The image's command (Cmd).
        #[arg(last = true)]
        cmd: Vec<String>,
    },
    /// List images: name, size, manifest digest.
    Ls,
    /// Remove an image (and the blobs no other image uses).
    Rm { name: String },
}

#[derive(Subcommand)]
enum BenchKind {
    /// API server: start-to-ready, idle RSS, request latencies, sustained creates.
    Api {
        /// Sequential operations per latency figure.
        #[arg(long, default_value_t = 500)]
        samples: usize,
        /// Concurrent clients for the throughput figure.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Seconds of sustained creates.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
    },
    /// The store alone: this disk's raw fsync rate, durable write latency with one writer and
    /// durable creates per second with 1, 8 and 64 writer threads.
    Store {
        /// Sequential writes for the latency figure.
        #[arg(long, default_value_t = 2000)]
        samples: usize,
        /// Seconds per throughput figure.
        #[arg(long, default_value_t = 3)]
        seconds: u64,
    },
    /// Real pods: create → Running/Ready latency, containers per second, RSS (needs root).
    Pods {
        #[arg(long, default_value_t = 100)]
        pods: usize,
    },
    /// Cluster DNS: queries per second and latency for cluster names, and how fast a new
    /// Service's name answers (needs root: the DNS runs with the node agent).
    Dns {
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
    },
    /// Service proxy: latency, connections per second and throughput through the kernel's
    /// rules (nftables) and the userspace proxy, next to direct connections in the same run,
    /// to backends in a network namespace of its own; then the time to program endpoint
    /// changes (needs root).
    Proxy {
        #[arg(long, default_value_t = 2000)]
        samples: usize,
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        #[arg(long, default_value_t = 3)]
        seconds: u64,
        /// Size of the bulk transfer.
        #[arg(long, default_value_t = 1024)]
        megabytes: usize,
        /// Endpoint changes timed.
        #[arg(long, default_value_t = 50)]
        changes: usize,
        /// Other Services in the ruleset meanwhile.
        #[arg(long, default_value_t = 100)]
        services: usize,
    },
    /// Deployment controller: create → Available and a rolling update, with instantly ready pods.
    Deploy {
        #[arg(long, default_value_t = 100)]
        replicas: i32,
    },
    /// Volumes: claim create → Bound, and pod-with-claim create → Running (needs root).
    Volumes {
        #[arg(long, default_value_t = 100)]
        claims: usize,
    },
    /// StatefulSet controller: scale-up and rolling-update times with instantly ready pods.
    Sts {
        #[arg(long, default_value_t = 100)]
        ordered: i32,
        #[arg(long, default_value_t = 1000)]
        parallel: i32,
    },
}

fn main() {
    // The node agent re-executes this binary as a container's shim and as the exec helper. They
    // must stay single-threaded (they fork), so they are dispatched before anything else starts.
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("__shim") if args.len() == 3 => {
            std::process::exit(agent::runtime::shim::main(std::path::Path::new(&args[2])));
        }
        Some("__exec") if args.len() > 5 && args[4] == "--" => {
            let argv = args[5..].to_vec();
            std::process::exit(agent::runtime::shim::exec_main(std::path::Path::new(&args[2]), args[3] == "1", argv));
        }
        _ => {}
    }
    if let Err(e) = run() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("ORDINAL_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("start runtime")?;
    runtime.block_on(async move {
        match cli.command {
            Command::Server(args) => {
                let config = ordinal::ServerConfig::from_args(args)?;
                // Signals are caught from before the server starts: a stop request that arrives
                // as soon as it serves still stops it cleanly.
                let stop = wait_for_signal();
                let running = ordinal::start(config).await?;
                stop.await;
                tracing::info!("shutting down");
                running.stop().await;
                Ok(())
            }
            Command::Image { data_dir, action } => {
                let data_dir = ordinal::DataDir::create(&data_dir)
                    .with_context(|| format!("cannot create the data dir {}", data_dir.display()))?;
                let store = agent::image::ImageStore::open(&data_dir.images())?;
                let mut out = std::io::stdout().lock();
                match action {
                    ImageAction::Import { file } => {
                        for image in store.import(&file)? {
                            writeln!(out, "imported {} ({})", image.name, image.manifest)?;
                        }
                    }
                    ImageAction::Build { dir, tag, output, env, cmd } => {
                        let config = agent::image::ImageConfig { cmd, env, ..Default::default() };
                        let (path, _keep) = match output {
                            Some(p) => (p, None),
                            None => {
                                let tmp = tempfile::NamedTempFile::new()?;
                                (tmp.path().to_path_buf(), Some(tmp))
                            }
                        };
                        let digest = agent::image::build_from_dir(&dir, &tag, &config, &path)?;
                        if _keep.is_some() {
                            store.import(&path)?;
                            writeln!(out, "built and imported {} ({digest})", agent::image::normalize(&tag))?;
                        } else {
                            writeln!(out, "wrote {} ({digest}) to {}", tag, path.display())?;
                        }
                    }
                    ImageAction::Ls => {
                        writeln!(out, "{:<50} {:>12}  MANIFEST", "IMAGE", "SIZE")?;
                        for image in store.list()? {
                            writeln!(out, "{:<50} {:>12}  {}", image.name, image.size, image.manifest)?;
                        }
                    }
                    ImageAction::Rm { name } => {
                        if !store.remove(&name)? {
                            anyhow::bail!("image {name} not found");
                        }
                        writeln!(out, "removed {}", agent::image::normalize(&name))?;
                    }
                }
                Ok(())
            }
            Command::DnsConfig { dns_listen, cluster_domain } => {
                let (ip, port) = (dns_listen.ip(), dns_listen.port());
                println!("# Resolve *.{cluster_domain} from this host through Ordinal's cluster DNS.");
                println!("# systemd-resolved: /etc/systemd/resolved.conf.d/ordinal.conf, then restart it");
                println!("[Resolve]\nDNS={ip}:{port}\nDomains=~{cluster_domain}\n");
                println!("# dnsmasq: a line in /etc/dnsmasq.d/ordinal.conf");
                println!("server=/{cluster_domain}/{ip}#{port}\n");
                println!("# or ask it directly:");
                println!("#   dig @{ip} -p {port} kubernetes.default.svc.{cluster_domain}");
                Ok(())
            }
            Command::Operator { namespace } => {
                let client = kube::Client::try_default().await.context("connect to the cluster")?;
                let shutdown = tokio_util::sync::CancellationToken::new();
                let stop = shutdown.clone();
                tokio::spawn(async move {
                    wait_for_signal().await;
                    stop.cancel();
                });
                tracing::info!("statefulset operator running");
                ordinal::operator::run_statefulset_controller(client, shutdown, namespace).await;
                Ok(())
            }
            Command::Bench { which: BenchKind::Api { samples, concurrency, seconds } } => {
                ordinal::bench::ApiBench {
                    samples,
                    concurrency,
                    throughput_window: std::time::Duration::from_secs(seconds),
                }
                .run()
                .await
            }
            Command::Bench { which: BenchKind::Store { samples, seconds } } => {
                ordinal::bench::StoreBench { samples, window: std::time::Duration::from_secs(seconds) }.run()
            }
            Command::Bench { which: BenchKind::Pods { pods } } => {
                ordinal::bench::PodsBench { pods, volumes: false }.run().await
            }
            Command::Bench { which: BenchKind::Dns { seconds, concurrency } } => {
                ordinal::bench::DnsBench { seconds, concurrency }.run().await
            }
            Command::Bench {
                which: BenchKind::Proxy { samples, concurrency, seconds, megabytes, changes, services },
            } => ordinal::bench::ProxyBench { samples, concurrency, seconds, megabytes, changes, services }.run().await,
            Command::Bench { which: BenchKind::Deploy { replicas } } => {
                ordinal::bench::DeployBench { replicas }.run().await
            }
            Command::Bench { which: BenchKind::Volumes { claims } } => {
                ordinal::bench::PodsBench { pods: claims, volumes: true }.run().await
            }
            Command::Bench { which: BenchKind::Sts { ordered, parallel } } => {
                ordinal::bench::StsBench { ordered_replicas: ordered, parallel_replicas: parallel }.run().await
            }
        }
    })
}

/// Resolves on SIGTERM or SIGINT. The handlers are installed when this is called (not when
/// it is first awaited), so call it before doing anything a signal should be able to stop.
fn wait_for_signal() -> impl Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    async move {
        match (term, int) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
}
