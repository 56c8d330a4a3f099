//! `vigil normalize FILE|-`: prints what rules see, for operators checking
//! an export and for rule authors. One JSON line per event on stdout — the
//! WIT `event` record with its WIT field names, attributes as an object in
//! their priority order — and on stderr one line per rejected line or
//! element (line number, element index, reason) and per dropped field, then
//! a count. Bad input never fails the command (exit 0); an unreadable file
//! does (exit 1).

use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use serde::ser::{Serialize, SerializeMap, Serializer};

use crate::config::Config;
use crate::model::{Event, Geo, Principal};
use crate::normalize::{LineReport, Normalizer};
use crate::sources::{Line, LineReader};

pub fn normalize(path: &Path) -> Result<ExitCode> {
    let limit = Config::builtin_default().max_line_bytes;
    let mut reader = if path == Path::new("-") {
        LineReader::stdin(limit)
    } else {
        LineReader::open(path, limit)?
    };
    let normalizer = Normalizer::default();
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let (mut lines, mut emitted, mut rejected, mut dropped) = (0u64, 0u64, 0u64, 0u64);
    let mut events = Vec::new();
    let mut report = LineReport::default();
    while let Some((line_no, line)) = reader.next_line()? {
        lines += 1;
        let text = match line {
            Line::Text(t) => t,
            Line::TooLong { len, limit } => {
                rejected += 1;
                eprintln!(
                    "line {line_no}: rejected (too-long): line of {len} bytes exceeds max_line_bytes = {limit}"
                );
                continue;
            }
            Line::NotUtf8 => {
                rejected += 1;
                eprintln!("line {line_no}: rejected (not-utf8): line is not valid UTF-8");
                continue;
            }
        };
        events.clear();
        report.clear();
        match normalizer.normalize_line_report(&text, &mut events, &mut report) {
            Ok(_) => {
                for e in &report.rejected {
                    rejected += 1;
                    eprintln!("line {line_no}: rejected ({}): {e}", e.reason());
                }
                for d in &report.dropped {
                    dropped += 1;
                    eprintln!("line {line_no}: dropped field {d}");
                }
                for e in &events {
                    emitted += 1;
                    serde_json::to_writer(&mut out, &EventJson(e))?;
                    out.write_all(b"\n")?;
                }
            }
            Err(e) => {
                rejected += 1;
                eprintln!("line {line_no}: rejected ({}): {e}", e.reason());
            }
        }
    }
    out.flush().context("cannot write to stdout")?;
    eprintln!(
        "vigil normalize: {}: {lines} lines, {emitted} events, {rejected} rejected, {dropped} fields dropped",
        reader.name
    );
    Ok(ExitCode::SUCCESS)
}

/// An event as JSON, fields in WIT order (serde_json's `Value` would sort
/// them, and attribute order is their priority).
pub struct EventJson<'a>(pub &'a Event);

struct PrincipalJson<'a>(&'a Principal);
struct GeoJson<'a>(&'a Geo);
struct Attributes<'a>(&'a [(String, String)]);

impl Serialize for EventJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let e = self.0;
        let mut m = s.serialize_map(Some(14))?;
        m.serialize_entry("id", &e.id)?;
        m.serialize_entry("source", &e.source)?;
        m.serialize_entry("kind", &e.kind)?;
        m.serialize_entry("class", e.class.name())?;
        m.serialize_entry("time", &e.time)?;
        m.serialize_entry("actor", &e.actor.as_ref().map(PrincipalJson))?;
        let targets: Vec<PrincipalJson> = e.targets.iter().map(PrincipalJson).collect();
        m.serialize_entry("targets", &targets)?;
        m.serialize_entry("outcome", e.outcome.name())?;
        m.serialize_entry("outcome-reason", &e.outcome_reason)?;
        m.serialize_entry("client-ip", &e.client_ip)?;
        m.serialize_entry("geo", &e.geo.as_ref().map(GeoJson))?;
        m.serialize_entry("user-agent", &e.user_agent)?;
        m.serialize_entry("factor", &e.factor)?;
        m.serialize_entry("attributes", &Attributes(&e.attributes))?;
        m.end()
    }
}

impl Serialize for PrincipalJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let p = self.0;
        let mut m = s.serialize_map(Some(4))?;
        m.serialize_entry("id", &p.id)?;
        m.serialize_entry("kind", &p.kind)?;
        m.serialize_entry("login", &p.login)?;
        m.serialize_entry("display-name", &p.display_name)?;
        m.end()
    }
}

impl Serialize for GeoJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let g = self.0;
        let mut m = s.serialize_map(Some(4))?;
        m.serialize_entry("country", &g.country)?;
        m.serialize_entry("city", &g.city)?;
        m.serialize_entry("lat", &g.lat)?;
        m.serialize_entry("lon", &g.lon)?;
        m.end()
    }
}

impl Serialize for Attributes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}
