//! Writing to stderr without ever failing, for every binary of the
//! workspace: a closed stderr (`2>&1 | head -1`, a closed terminal, a
//! desktop launcher without one) must not panic a logger or a message and
//! skip a teardown.

use std::io::{self, Write};

/// A log writer for stderr that never fails. For
/// `tracing_subscriber::fmt().with_writer(|| QuietStderr)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct QuietStderr;

impl Write for QuietStderr {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        let _ = io::stderr().write_all(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let _ = io::stderr().flush();
        Ok(())
    }
}

/// One line on stderr, or nothing when stderr is gone.
pub fn line(args: std::fmt::Arguments<'_>) {
    let _ = writeln!(io::stderr(), "{args}");
}
