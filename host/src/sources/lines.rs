//! The finite JSON Lines sources of the service, `[[sources]] type = "file"`
//! and `"stdin"`: each read on its own thread into the queue, waiting when
//! the queue is full. Bad lines are counted and logged with their number,
//! as in a finite run (`vigil run`).

use std::path::PathBuf;
use std::thread::JoinHandle;

use anyhow::{Context, Result};

use super::queue::Batch;
use super::{Line, LineReader, Source, SourceContext};
use crate::model::Event;
use crate::normalize::{LineReport, Normalizer};

/// Events per batch from a file or stdin source.
const FILE_BATCH: usize = 512;

/// `[[sources]] type = "file"`: a JSON Lines file, read once to its end.
pub struct FileSource {
    pub path: PathBuf,
}

impl Source for FileSource {
    fn name(&self) -> String {
        format!("file:{}", self.path.display())
    }

    fn spawn(&self, ctx: &SourceContext<'_>) -> Result<JoinHandle<()>> {
        std::fs::metadata(&self.path)
            .with_context(|| format!("cannot open events file {}", self.path.display()))?;
        let (path, limit) = (self.path.clone(), ctx.max_line_bytes);
        spawn_lines(self.name(), ctx, move || LineReader::open(&path, limit))
    }
}

/// `[[sources]] type = "stdin"`: JSON Lines on standard input, until it
/// closes.
pub struct StdinSource;

impl Source for StdinSource {
    fn name(&self) -> String {
        "stdin".into()
    }

    fn spawn(&self, ctx: &SourceContext<'_>) -> Result<JoinHandle<()>> {
        let limit = ctx.max_line_bytes;
        spawn_lines(self.name(), ctx, move || Ok(LineReader::stdin(limit)))
    }
}

/// A finite JSON Lines stream (file or stdin) read on its own thread into
/// the queue, waiting when the queue is full. Bad lines are counted and
/// logged with their number, as in a finite run.
fn spawn_lines(
    name: String,
    ctx: &SourceContext<'_>,
    open: impl FnOnce() -> Result<LineReader> + Send + 'static,
) -> Result<JoinHandle<()>> {
    let (queue, shutdown, rejected) = (
        ctx.queue.clone(),
        ctx.shutdown.clone(),
        ctx.rejected.clone(),
    );
    let thread_name = name.clone();
    std::thread::Builder::new()
        .name(format!(
            "source-{}",
            thread_name.chars().take(8).collect::<String>()
        ))
        .spawn(move || {
            let normalizer = Normalizer::default();
            let result = (|| -> Result<u64> {
                let mut reader = open()?;
                let mut events = Vec::new();
                let mut total = 0u64;
                let mut flush = |events: &mut Vec<Event>| -> Result<()> {
                    if events.is_empty() {
                        return Ok(());
                    }
                    let n = events.len();
                    queue
                        .send(Batch::new(name.clone(), std::mem::take(events)))
                        .map_err(|_| anyhow::anyhow!("the queue closed"))?;
                    total += n as u64;
                    Ok(())
                };
                while let Some((line_no, line)) = reader.next_line()? {
                    if shutdown.is_stopping() {
                        break;
                    }
                    let reject = |reason: &str, message: &str| {
                        rejected(&name, reason, 1);
                        tracing::warn!(
                            source = name,
                            line = line_no,
                            reason,
                            "rejected: {message}"
                        );
                    };
                    match line {
                        Line::Text(text) => {
                            // Per element, as in a finite run.
                            let mut report = LineReport::default();
                            match normalizer.normalize_line_report(&text, &mut events, &mut report)
                            {
                                Ok(_) => {
                                    for e in &report.rejected {
                                        reject(e.reason(), &e.to_string());
                                    }
                                    for d in &report.dropped {
                                        tracing::warn!(source = name, line = line_no, field = %d.path, "dropped a field: {}", d.message);
                                    }
                                }
                                Err(e) => reject(e.reason(), &e.to_string()),
                            }
                        }
                        Line::TooLong { len, limit } => reject(
                            "too-long",
                            &format!("line of {len} bytes exceeds max_line_bytes = {limit}"),
                        ),
                        Line::NotUtf8 => reject("not-utf8", "line is not valid UTF-8"),
                    }
                    if events.len() >= FILE_BATCH {
                        flush(&mut events)?;
                    }
                }
                flush(&mut events)?;
                Ok(total)
            })();
            match result {
                Ok(n) => tracing::info!(source = thread_name, events = n, "source finished"),
                Err(e) => tracing::error!(source = thread_name, "source stopped: {e:#}"),
            }
        })
        .context("cannot start a source thread")
}
