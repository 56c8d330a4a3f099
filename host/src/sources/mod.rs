//! Event sources. Finite JSON Lines streams — a file or standard input,
//! read line by line with a size limit ([`LineReader`], here) — and the
//! service's sources, each a [`Source`] started on its own thread
//! ([`from_config`] lists them): the file and stdin readers (`lines`), the
//! Okta System Log poller (`okta_poll`) and the file tail (`tail`), which
//! save their position through `cursor` once a batch is processed. They
//! hand batches to the pipeline through the bounded `queue`.
//!
//! An oversized line is skipped without ever being held in memory whole,
//! and reported with its line number; a line that is not UTF-8 likewise.
//! Nothing stops the stream but its end (or a read error on the file).

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::{Context, Result};

use crate::config::{ConnectorsConfig, SourceConfig};
use queue::{QueueSender, Shutdown};

pub mod cursor;
pub mod lines;
pub mod okta_poll;
pub mod queue;
pub mod tail;

/// Counts rejected lines or elements: source name, reason, count (the
/// service's `vigil_events_rejected_total`).
pub type RejectCounter = Arc<dyn Fn(&str, &str, usize) + Send + Sync>;

/// What a long-running source may use when it starts.
pub struct SourceContext<'a> {
    pub connectors: &'a ConnectorsConfig,
    /// The state store, where sources keep their cursors.
    pub state_path: &'a Path,
    pub max_line_bytes: usize,
    /// Where batches go; `send` waits while the queue is full.
    pub queue: &'a QueueSender,
    pub shutdown: &'a Shutdown,
    pub rejected: RejectCounter,
}

/// One kind of `[[sources]]` entry, started by the service on its own
/// thread.
pub trait Source {
    /// The name in logs and metrics (`okta-poll`, `tail:PATH`, `stdin`).
    fn name(&self) -> String;

    /// Checks what can be checked now and starts reading on a thread of its
    /// own, until the input ends or `ctx.shutdown` says stop.
    fn spawn(&self, ctx: &SourceContext<'_>) -> Result<JoinHandle<()>>;
}

/// The source behind a `[[sources]]` entry: the one place that lists them
/// (a new source is a module implementing [`Source`], a `SourceConfig`
/// variant and one line here).
pub fn from_config(entry: &SourceConfig) -> Box<dyn Source + '_> {
    match entry {
        SourceConfig::File { path } => Box::new(lines::FileSource { path: path.clone() }),
        SourceConfig::Stdin => Box::new(lines::StdinSource),
        SourceConfig::OktaPoll(c) => Box::new(okta_poll::OktaPollSource(c)),
        SourceConfig::Tail(c) => Box::new(tail::TailSource(c)),
    }
}

/// One line of input, or why it cannot be used.
#[derive(Debug)]
pub enum Line {
    Text(String),
    TooLong { len: usize, limit: usize },
    NotUtf8,
}

/// Reads lines of at most `limit` bytes.
pub struct LineReader {
    reader: BufReader<Box<dyn Read + Send>>,
    limit: usize,
    line_no: u64,
    /// Human name for messages: the path, or `stdin`.
    pub name: String,
}

impl LineReader {
    pub fn open(path: &Path, limit: usize) -> Result<LineReader> {
        let file = File::open(path)
            .with_context(|| format!("cannot open events file {}", path.display()))?;
        Ok(LineReader::new(
            BufReader::with_capacity(256 * 1024, Box::new(file)),
            limit,
            path.display().to_string(),
        ))
    }

    pub fn stdin(limit: usize) -> LineReader {
        LineReader::new(
            BufReader::with_capacity(256 * 1024, Box::new(io::stdin())),
            limit,
            "stdin".into(),
        )
    }

    pub fn new(reader: BufReader<Box<dyn Read + Send>>, limit: usize, name: String) -> LineReader {
        LineReader {
            reader,
            limit,
            line_no: 0,
            name,
        }
    }

    /// Whether input is already buffered: when not, the next line needs a
    /// read from the source, which on a pipe or a terminal may wait for
    /// more input (the pipeline runs what it holds before that).
    pub fn has_buffered_input(&self) -> bool {
        !self.reader.buffer().is_empty()
    }

    /// The next line and its number, or `None` at the end.
    pub fn next_line(&mut self) -> Result<Option<(u64, Line)>> {
        let mut buf = Vec::new();
        // Read at most limit + 1 bytes up to a newline: one byte more than
        // the limit tells an oversized line from one exactly at it.
        let n = (&mut self.reader)
            .take(self.limit as u64 + 1)
            .read_until(b'\n', &mut buf)
            .with_context(|| format!("cannot read {}", self.name))?;
        if n == 0 {
            return Ok(None);
        }
        self.line_no += 1;
        let ended = buf.last() == Some(&b'\n');
        if ended {
            buf.pop();
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
        }
        if buf.len() > self.limit || (!ended && n > self.limit) {
            let skipped = self.skip_rest_of_line()?;
            return Ok(Some((
                self.line_no,
                Line::TooLong {
                    len: n + skipped,
                    limit: self.limit,
                },
            )));
        }
        Ok(Some((
            self.line_no,
            match String::from_utf8(buf) {
                Ok(s) => Line::Text(s),
                Err(_) => Line::NotUtf8,
            },
        )))
    }

    /// Discards input up to and including the next newline; returns how
    /// many bytes were discarded.
    fn skip_rest_of_line(&mut self) -> Result<usize> {
        let mut skipped = 0;
        loop {
            let chunk = self
                .reader
                .fill_buf()
                .with_context(|| format!("cannot read {}", self.name))?;
            if chunk.is_empty() {
                return Ok(skipped);
            }
            match chunk.iter().position(|b| *b == b'\n') {
                Some(at) => {
                    self.reader.consume(at + 1);
                    return Ok(skipped + at + 1);
                }
                None => {
                    let len = chunk.len();
                    self.reader.consume(len);
                    skipped += len;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(text: &'static [u8], limit: usize) -> LineReader {
        LineReader::new(
            BufReader::new(Box::new(io::Cursor::new(text))),
            limit,
            "test".into(),
        )
    }

    fn collect(mut r: LineReader) -> Vec<(u64, String)> {
        let mut out = Vec::new();
        while let Some((n, line)) = r.next_line().unwrap() {
            out.push((
                n,
                match line {
                    Line::Text(t) => t,
                    Line::TooLong { len, .. } => format!("too long: {len}"),
                    Line::NotUtf8 => "not utf-8".into(),
                },
            ));
        }
        out
    }

    #[test]
    fn lines_are_numbered_and_crlf_stripped() {
        let lines = collect(reader(b"a\r\nb\n\nc", 10));
        assert_eq!(
            lines,
            vec![
                (1, "a".into()),
                (2, "b".into()),
                (3, "".into()),
                (4, "c".into())
            ]
        );
    }

    #[test]
    fn an_oversized_line_is_skipped_and_the_next_one_read() {
        // Line 2 is 12 bytes plus newline, over the limit of 5.
        let lines = collect(reader(b"ok\n0123456789ab\nnext\n", 5));
        assert_eq!(
            lines,
            vec![
                (1, "ok".into()),
                (2, "too long: 13".into()),
                (3, "next".into())
            ]
        );
    }

    #[test]
    fn a_line_exactly_at_the_limit_is_accepted() {
        let lines = collect(reader(b"12345\n12345", 5));
        assert_eq!(lines, vec![(1, "12345".into()), (2, "12345".into())]);
    }

    #[test]
    fn invalid_utf8_is_reported() {
        let lines = collect(reader(b"\xff\xfe\nok\n", 10));
        assert_eq!(lines, vec![(1, "not utf-8".into()), (2, "ok".into())]);
    }
}
