//! The shared wasmtime engine: configuration, the epoch ticker that enforces
//! per-call deadlines, and the compiled-component cache.
//!
//! One [`Engine`] serves every rule. Features the host does not use are off:
//! component-model concurrency (it costs on every call), threads, GC.

mod cache;

pub use cache::ComponentCache;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};
use wasmtime::component::Component;
use wasmtime::{Config, Engine, OptLevel};

/// How often the epoch advances: deadlines are whole ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// The engine, its ticker and its cache.
pub struct VigilEngine {
    engine: Engine,
    cache: Option<ComponentCache>,
    _ticker: EpochTicker,
}

impl VigilEngine {
    /// Builds the engine. `cache_dir` of `None` disables the compiled cache.
    pub fn new(cache_dir: Option<&Path>) -> Result<Arc<VigilEngine>> {
        let mut config = Config::new();
        config
            .epoch_interruption(true)
            .concurrency_support(false)
            .cranelift_opt_level(OptLevel::Speed)
            .parallel_compilation(true);
        let engine = Engine::new(&config)
            .map_err(anyhow::Error::from)
            .context("cannot configure the WebAssembly engine")?;
        let cache = cache_dir.and_then(|dir| match ComponentCache::open(dir, &engine) {
            Ok(cache) => Some(cache),
            Err(e) => {
                tracing::warn!("compiled-component cache disabled: {e:#}");
                None
            }
        });
        let ticker = EpochTicker::start(engine.clone());
        Ok(Arc::new(VigilEngine {
            engine,
            cache,
            _ticker: ticker,
        }))
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Compiles a component, or loads it from the cache when these exact
    /// bytes were compiled before by a compatible engine. `origin` names the
    /// rule file in errors.
    pub fn compile(&self, bytes: &[u8], origin: &str) -> Result<Component> {
        if let Some(component) = self
            .cache
            .as_ref()
            .and_then(|c| c.load(&self.engine, bytes))
        {
            return Ok(component);
        }
        let component = Component::new(&self.engine, bytes)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("{origin} is not a valid WebAssembly component"))?;
        if let Some(Err(e)) = self.cache.as_ref().map(|c| c.store(bytes, &component)) {
            tracing::warn!(origin, "could not cache the compiled component: {e:#}");
        }
        Ok(component)
    }

    /// Converts a deadline in milliseconds to epoch ticks.
    pub fn deadline_ticks(deadline_ms: u64) -> u64 {
        (deadline_ms / EPOCH_TICK.as_millis() as u64).max(1)
    }
}

/// Advances the engine's epoch every [`EPOCH_TICK`] on a background thread,
/// so a guest stuck in a loop traps at its deadline instead of blocking.
struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    fn start(engine: Engine) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("vigil-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .expect("spawn the epoch ticker thread");
        EpochTicker {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
