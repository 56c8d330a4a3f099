//! Reading a log backwards: where lines start, found one bounded chunk at
//! a time from the end (the audit log's tail at open, the console's pages
//! of newest records), never by reading the file whole.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Bytes read at a time.
pub const CHUNK: usize = 64 * 1024;

/// A window of a file read backwards, one [`CHUNK`] at a time.
pub struct Backwards<'f> {
    file: &'f File,
    start: u64,
    buf: Vec<u8>,
}

impl<'f> Backwards<'f> {
    pub fn new(file: &'f File) -> Self {
        Backwards {
            file,
            start: 0,
            buf: Vec::new(),
        }
    }

    /// Makes the window hold the chunk that ends at `end` (exclusive).
    fn load_ending_at(&mut self, end: u64) -> io::Result<()> {
        let start = end.saturating_sub(CHUNK as u64);
        self.buf.resize((end - start) as usize, 0);
        self.file.read_exact_at(&mut self.buf, start)?;
        self.start = start;
        Ok(())
    }

    fn holds(&self, pos: u64) -> bool {
        pos >= self.start && pos < self.start + self.buf.len() as u64
    }

    pub fn byte(&mut self, pos: u64) -> io::Result<u8> {
        if !self.holds(pos) {
            self.load_ending_at(pos + 1)?;
        }
        Ok(self.buf[(pos - self.start) as usize])
    }

    /// The position of the last `\n` before `pos` (exclusive), if any.
    pub fn last_newline_before(&mut self, pos: u64) -> io::Result<Option<u64>> {
        let mut end = pos;
        while end > 0 {
            if !self.holds(end - 1) {
                self.load_ending_at(end)?;
            }
            let upto = (end - self.start) as usize;
            if let Some(i) = memchr::memrchr(b'\n', &self.buf[..upto]) {
                return Ok(Some(self.start + i as u64));
            }
            end = self.start;
        }
        Ok(None)
    }
}
