//! The long-running service: `vigil run` without `--events` when the
//! configuration has a `[server]` table.
//!
//! Threads and ownership:
//! - one **pipeline thread** owns the [`Pipeline`] (wasmtime calls are
//!   synchronous): it takes [`queue::Batch`]es from the bounded queue, runs
//!   their events through the rules, syncs the audit log, then calls each
//!   batch's `on_done`; between batches it runs admin commands and due
//!   undos;
//! - a small **tokio runtime** (2 workers) serves HTTP (`http`, `admin`,
//!   the web `console`),
//!   normalizing bodies before they are queued; `listener` accepts within
//!   a connection cap and cuts clients that send nothing, too slowly, or
//!   idle too long;
//! - approvals decided from chat (Slack's buttons, signed links) arrive on
//!   the ingest listener (`chat`) and go to the pipeline thread as admin
//!   commands;
//! - each `[[sources]]` entry runs on its own thread and delivers through
//!   the same queue (file/stdin here; `okta-poll` and `tail` in
//!   `crate::sources`).
//!
//! A delivery taken over HTTP is written to the durable spool (`spool`)
//! before it is answered 2xx; at start the deliveries a crash left there
//! are replayed before the listener accepts anything.
//!
//! The pipeline thread stamps its progress on the `watchdog` (each turn of
//! its loop, each rule call); `/readyz` turns 503 naming the rule when work
//! waits and nothing moved for `watchdog_secs`.
//!
//! A reload (SIGHUP, `POST /v1/admin/reload`, or a change of the config,
//! rule files or installed packs) is prepared on the `reload` thread and
//! swapped in by the pipeline thread between two events.
//!
//! Shutdown (SIGTERM or SIGINT, or the pipeline stopping on an audit
//! failure): `/readyz` turns 503, the listeners stop accepting and finish
//! in-flight requests, sources are told to stop, then the pipeline drains
//! every queued batch, syncs the audit log and the process exits 0 — an
//! event answered 2xx is never lost. Past `drain_timeout_secs` it gives up
//! and exits 1.

pub mod admin;
pub mod body;
pub mod chat;
pub mod cluster;
pub mod console;
pub mod hooks;
pub mod http;
pub mod listener;
pub mod metrics;
pub mod reload;
pub mod spool;
pub mod tls;
pub mod watchdog;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::sync::watch;

use crate::config::{Config, ServerConfig};
use crate::normalize::Normalizer;
use crate::pipeline::{Pipeline, RunStats};
use crate::sources;
use crate::sources::queue::{self, Batch, QueueReceiver, QueueSender, Recv, Shutdown};
use admin::{AdminAuth, AdminCommand, AdminState};
use hooks::Dedup;
use http::{Access, AppState, Routes};
use listener::{ConnLimits, Listener};
use metrics::{Metrics, MetricsObserver};
use watchdog::Health;

/// How long the pipeline thread waits for a batch before looking at admin
/// commands, due undos and the drain flag.
const POLL: Duration = Duration::from_millis(100);

/// Events run between two audit syncs when batches keep arriving (one sync
/// covers every batch taken in one go).
const EVENTS_PER_SYNC: usize = 4096;

/// Serves until a signal; see the module documentation.
pub fn run(
    config_path: &std::path::Path,
    config: &Config,
    server: &ServerConfig,
    mut pipeline: Pipeline,
) -> Result<ExitCode> {
    let secrets = server.load_secrets()?;
    let tls = match (&server.tls_cert_file, &server.tls_key_file) {
        (Some(cert), Some(key)) => Some(tls::server_config(cert, key)?),
        _ => None,
    };
    let rule_ids: Vec<String> = pipeline
        .rules()
        .rules
        .iter()
        .map(|r| r.id().to_owned())
        .collect();
    let mut metrics = Metrics::new(&rule_ids);
    let cluster_metrics = config.cluster.as_ref().map(|_| metrics.register_cluster());
    let metrics = Arc::new(metrics);
    let health = Arc::new(Health::new(Duration::from_secs(server.watchdog_secs)));
    pipeline.set_observer(Box::new(MetricsObserver {
        metrics: metrics.clone(),
        watchdog: health.watchdog.clone(),
    }));
    health.rules.store(rule_ids.len(), Ordering::SeqCst);
    // The console reads the log the pipeline writes.
    let pipeline_audit_path = pipeline.audit().path().to_owned();
    health.audit_ok.store(true, Ordering::SeqCst);

    // Deliveries answered 2xx by a previous run and not processed: before
    // anything new is accepted.
    let normalizer = Normalizer::default();
    let spool = Arc::new(spool::Spool::open(&config.state_path)?);
    spool::replay(&mut pipeline, &spool, |kind, body| {
        http::spooled_events(&normalizer, kind, body, server.max_events_per_request)
    })?;

    let (queue, receiver) = queue::bounded(server.queue_capacity);
    let shutdown = Shutdown::new();
    // In a cluster the shards this replica owns feed the queue, and what
    // the sources read is published first (see `cluster`).
    let mut cluster = match cluster_metrics {
        Some(m) => cluster::ClusterSide::start(&pipeline, &queue, &health, m)?,
        None => None,
    };
    let (sources, forward) = match &cluster {
        None => (
            spawn_sources(config, &queue, &shutdown, &metrics).inspect_err(|_| shutdown.stop())?,
            None,
        ),
        Some(side) => {
            let (to_publish, from_sources) = queue::bounded(server.queue_capacity);
            let sources = spawn_sources(config, &to_publish, &shutdown, &metrics)
                .inspect_err(|_| shutdown.stop())?;
            let forward = side.forward(from_sources, shutdown.clone(), metrics.clone())?;
            (sources, Some(forward))
        }
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("vigil-http")
        .enable_all()
        .build()
        .context("cannot start the HTTP runtime")?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let stop_tx = Arc::new(stop_tx);
    let draining = Arc::new(AtomicBool::new(false));
    let (admin_tx, admin_rx) = mpsc::channel();
    let reload_stop = Arc::new(AtomicBool::new(false));
    let (reload_tx, reloader) = reload::Reloader {
        config_path: config_path.to_owned(),
        started: config.clone(),
        running: config.clone(),
        running_text: std::fs::read_to_string(config_path).unwrap_or_default(),
        shards: pipeline.rules().shards(),
        watch: (server.reload_watch_secs > 0)
            .then(|| Duration::from_secs(server.reload_watch_secs)),
        to_pipeline: {
            let admin_tx = admin_tx.clone();
            Box::new(move |job| admin_tx.send(AdminCommand::Reload(job)).is_ok())
        },
        metrics: metrics.clone(),
        health: health.clone(),
        stop: reload_stop.clone(),
    }
    .spawn()?;
    // Alive from before the thread is spawned, not from when it is first
    // scheduled: the listeners open next, and `/readyz` must not answer 503
    // at start on a busy machine. The thread clears it when it ends; a
    // failed spawn stops the service.
    health.pipeline_alive.store(true, Ordering::SeqCst);
    let pipeline_thread = {
        let (health, draining, stop_tx) = (health.clone(), draining.clone(), stop_tx.clone());
        let (metrics, spool) = (metrics.clone(), spool.clone());
        std::thread::Builder::new()
            .name("vigil-pipeline".into())
            .spawn(move || {
                let inputs = Inputs {
                    queue: receiver,
                    admin: admin_rx,
                    spool,
                };
                pipeline_loop(pipeline, inputs, health, metrics, draining, stop_tx)
            })
            .context("cannot start the pipeline thread")?
    };

    let loopback = server.listen.ip().is_loopback();
    let access = |secret: Option<crate::secret::Secret>, key| match secret {
        Some(s) => Access::Secret(s),
        None if loopback => Access::Open { key },
        None => Access::Disabled { key },
    };
    let admin_auth = Arc::new(AdminAuth {
        token: secrets.admin,
        name: server.admin_name.clone(),
    });
    let console = Arc::new(console::Console::new(
        admin_auth.clone(),
        admin_tx.clone(),
        metrics.clone(),
        pipeline_audit_path,
    ));
    let admin = AdminState {
        auth: admin_auth,
        tx: admin_tx,
        reload: reload_tx.clone(),
    };
    let chat = chat::ChatState::from_config(&config.approvals, admin.clone())?;
    let state = Arc::new(AppState {
        queue: queue.clone(),
        normalizer,
        spool,
        cluster: cluster.as_ref().map(|c| c.publisher.clone()),
        metrics: metrics.clone(),
        health: health.clone(),
        ingest: access(secrets.ingest, "ingest_token"),
        okta_hook: access(secrets.okta_hook, "okta_hook_secret"),
        admin,
        console,
        dedup: tokio::sync::Mutex::new(Dedup::new(
            Duration::from_secs(server.dedup_window_secs),
            server.dedup_capacity,
        )),
        max_body_bytes: server.max_body_bytes,
        max_events: server.max_events_per_request,
        chat,
    });
    drop(queue);
    let drain_timeout = Duration::from_secs(server.drain_timeout_secs);

    let served = runtime.block_on(serve(
        server,
        tls,
        state,
        Signals {
            health: health.clone(),
            stop_tx: stop_tx.clone(),
            stop_rx,
            reload: reload_tx,
        },
        drain_timeout,
    ));
    // Whatever happened, stop the sources and let the pipeline drain; a
    // reload under way finishes first (the pipeline answers it).
    health.stopping.store(true, Ordering::SeqCst);
    reload_stop.store(true, Ordering::SeqCst);
    shutdown.stop();
    let deadline = Instant::now() + drain_timeout;
    for (name, handle) in sources {
        if !wait_until(&handle, deadline) {
            tracing::warn!(
                source = name,
                "source did not stop in time; its unqueued events are not acknowledged"
            );
        } else if handle.join().is_err() {
            tracing::error!(source = name, "source thread panicked");
        }
    }
    if let Some(forward) = forward
        && (!wait_until(&forward, deadline) || forward.join().is_err())
    {
        tracing::warn!("the forward thread did not stop cleanly");
    }
    if !wait_until(&reloader, deadline) {
        tracing::warn!("the reload thread did not stop in time");
    }
    // The shard readers finish their batches in hand (the pipeline still
    // runs) and hand their leases back before the drain.
    if let Some(side) = &mut cluster {
        side.stop_reading(deadline.saturating_duration_since(Instant::now()));
    }
    draining.store(true, Ordering::SeqCst);
    if !wait_until(&pipeline_thread, deadline) {
        bail!(
            "the queue did not drain within server.drain_timeout_secs = {}; stopping with events unprocessed",
            server.drain_timeout_secs
        );
    }
    runtime.shutdown_timeout(Duration::from_secs(1));
    let stats = match pipeline_thread.join() {
        Ok(r) => r?,
        Err(_) => bail!("the pipeline thread panicked"),
    };
    served?;
    // The connection's runtime goes last, on this thread.
    drop(cluster);
    tracing::info!(
        events = stats.events,
        findings = stats.findings,
        faults = stats.faults,
        "stopped: queue drained, audit log synced"
    );
    eprintln!(
        "vigil: stopped ({} events, {} findings); audit log synced",
        stats.events, stats.findings
    );
    Ok(ExitCode::SUCCESS)
}

/// What `serve` watches besides its listeners.
struct Signals {
    health: Arc<Health>,
    stop_tx: Arc<watch::Sender<bool>>,
    stop_rx: watch::Receiver<bool>,
    /// SIGHUP asks the reload thread.
    reload: mpsc::Sender<reload::ReloadRequest>,
}

/// Binds the listeners, serves until a signal (or the pipeline stopping),
/// then shuts the listeners down gracefully. SIGHUP reloads.
async fn serve(
    server: &ServerConfig,
    tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    state: Arc<AppState>,
    signals: Signals,
    drain_timeout: Duration,
) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let Signals {
        health,
        stop_tx,
        mut stop_rx,
        reload,
    } = signals;
    // Installed before the address is printed, so a signal sent as soon as
    // the service is up is never missed.
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let mut hup = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;

    // Before any client connects: descriptors, not the caps, must not be
    // what runs out.
    let open_files = listener::raise_open_files_limit();
    if let Some(n) = open_files {
        tracing::info!(open_files = n, "open-files limit");
    }
    let scheme = if tls.is_some() { "https" } else { "http" };
    let ingest = Listener::bind(server.listen, tls.clone(), "ingest").await?;
    let admin = match server.admin_listen {
        Some(addr) => Some(Listener::bind(addr, tls, "admin").await?),
        None => None,
    };
    let listeners = 1 + usize::from(admin.is_some());
    let limits = ConnLimits {
        max_connections: listener::fit_connection_cap(
            server.max_connections,
            listeners,
            open_files,
        ),
        header_read_timeout: Duration::from_secs(server.header_read_timeout_secs),
        keep_alive_timeout: Duration::from_secs(server.keep_alive_timeout_secs),
    };
    let mut servers = Vec::new();
    let shared = admin.is_none();
    // (listener, serves ingestion, serves the admin API, log line)
    for (listener, ingest, admin, what) in [
        (Some(ingest), true, shared, "listening on"),
        (admin, false, true, "admin listening on"),
    ] {
        let Some(listener) = listener else { continue };
        let addr = listener.local_addr()?;
        let routes = Routes {
            ingest,
            admin,
            loopback: addr.ip().is_loopback(),
        };
        tracing::info!(%addr, ingest = routes.ingest, admin = routes.admin, "{what} {scheme}://{addr}");
        // Tests and scripts read this line to learn the bound port.
        eprintln!("vigil: {what} {scheme}://{addr}");
        let app = http::router(state.clone(), routes);
        servers.push(tokio::spawn(listener::serve(
            listener,
            app,
            limits,
            state.metrics.clone(),
            stop_rx.clone(),
        )));
    }
    drop(state);

    let why = loop {
        tokio::select! {
            _ = term.recv() => break "SIGTERM",
            _ = int.recv() => break "SIGINT",
            _ = stop_rx.wait_for(|s| *s) => break "the pipeline stopped",
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading the configuration and the rules");
                let _ = reload.send(reload::ReloadRequest {
                    reason: "SIGHUP",
                    by: "signal".to_owned(),
                    reply: None,
                });
            }
        }
    };
    tracing::info!("{why}: refusing new requests, finishing in-flight ones, draining the queue");
    eprintln!("vigil: {why}: shutting down");
    health.stopping.store(true, Ordering::SeqCst);
    stop_tx.send_replace(true);
    let deadline = tokio::time::Instant::now() + drain_timeout;
    for mut s in servers {
        match tokio::time::timeout_at(deadline, &mut s).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!("HTTP server task failed: {e}"),
            Err(_) => {
                tracing::warn!("in-flight requests did not finish in time; closing them");
                s.abort();
            }
        }
    }
    Ok(())
}

/// Where the pipeline thread takes its work from.
struct Inputs {
    queue: QueueReceiver,
    admin: mpsc::Receiver<AdminCommand>,
    /// Deliveries to forget once their events are committed.
    spool: Arc<spool::Spool>,
}

/// The pipeline thread. Returns the run's counts once the queue is closed
/// or drained; an error is an audit failure (the service then stops).
fn pipeline_loop(
    mut pipeline: Pipeline,
    inputs: Inputs,
    health: Arc<Health>,
    metrics: Arc<Metrics>,
    draining: Arc<AtomicBool>,
    stop: Arc<watch::Sender<bool>>,
) -> Result<RunStats> {
    let Inputs {
        queue,
        admin,
        spool,
    } = inputs;
    let result = (|| -> Result<()> {
        loop {
            // The loop came around: an idle pipeline is never "stuck".
            health.watchdog.progress();
            match queue.recv_timeout(POLL) {
                Recv::Batch(first) => {
                    let mut done = Vec::new();
                    let mut spooled = Vec::new();
                    let mut events = 0;
                    let mut next = Some(first);
                    while let Some(batch) = next {
                        events += batch.events.len();
                        spooled.extend(batch.spool_id);
                        run_batch(&mut pipeline, &metrics, batch, &mut done)?;
                        next = if events < EVENTS_PER_SYNC {
                            queue.try_recv()
                        } else {
                            None
                        };
                    }
                    // One sync makes every batch taken above durable before
                    // any of them is acknowledged.
                    pipeline.sync()?;
                    for on_done in done {
                        on_done();
                    }
                    // Committed: the spool need not replay them. Should
                    // this fail, they are replayed at the next start and
                    // skipped as judged.
                    if let Err(e) = spool.remove(&spooled) {
                        tracing::warn!("{e:#}");
                    }
                }
                Recv::Timeout if draining.load(Ordering::SeqCst) => break,
                Recv::Timeout => {}
                Recv::Closed => break,
            }
            while let Ok(command) = admin.try_recv() {
                admin::handle(&mut pipeline, command)?;
            }
            // Due undos, protected-group refresh, approval expiry, state
            // persistence.
            pipeline.tick()?;
        }
        Ok(())
    })();
    health.pipeline_alive.store(false, Ordering::SeqCst);
    if let Err(e) = &result {
        health.audit_ok.store(false, Ordering::SeqCst);
        tracing::error!("the pipeline stopped: {e:#}");
        stop.send_replace(true);
    }
    result?;
    pipeline.finish()
}

type OnDone = Box<dyn FnOnce() + Send>;

fn run_batch(
    pipeline: &mut Pipeline,
    metrics: &Metrics,
    batch: Batch,
    done: &mut Vec<OnDone>,
) -> Result<()> {
    // HTTP counts its events when it queues them (it also counts what it
    // refuses); every other source is counted here (in a cluster, events
    // read from the stream count as `jetstream`).
    if !http::SOURCES.contains(&batch.source.as_str()) {
        metrics.received(&batch.source, batch.events.len());
    }
    pipeline.set_cluster_batch(batch.partition, batch.replay)?;
    for event in batch.events {
        pipeline.process_event(event)?;
    }
    if batch.replay {
        // Judged (the shards' pending events too) before anything else
        // reaches the gate: an operator's approval must not be answered
        // dry-run.
        pipeline.set_cluster_batch(batch.partition, false)?;
    }
    if let Some(f) = batch.on_done {
        done.push(f);
    }
    Ok(())
}

/// Starts every `[[sources]]` entry on its own thread.
fn spawn_sources(
    config: &Config,
    queue: &QueueSender,
    shutdown: &Shutdown,
    metrics: &Arc<Metrics>,
) -> Result<Vec<(String, JoinHandle<()>)>> {
    let rejected: sources::RejectCounter = {
        let metrics = metrics.clone();
        Arc::new(move |source, reason, n| metrics.rejected(source, reason, n))
    };
    let ctx = sources::SourceContext {
        connectors: &config.connectors,
        state_path: &config.state_path,
        max_line_bytes: config.max_line_bytes,
        queue,
        shutdown,
        rejected,
    };
    let mut threads = Vec::new();
    for (i, entry) in config.sources.iter().enumerate() {
        let source = sources::from_config(entry);
        let name = source.name();
        let handle = source
            .spawn(&ctx)
            .with_context(|| format!("sources[{i}] ({name})"))?;
        tracing::info!(source = name, "source started");
        threads.push((name, handle));
    }
    Ok(threads)
}

/// Waits for a thread to finish until `deadline`; false if it did not.
fn wait_until<T>(handle: &JoinHandle<T>, deadline: Instant) -> bool {
    while !handle.is_finished() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}
