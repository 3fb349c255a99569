//! Logging through env_logger, to stderr or to a file that SIGHUP reopens (after rotation).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// A log file that can be reopened while loggers write to it.
pub struct LogFile {
    path: PathBuf,
    file: Mutex<File>,
}

impl LogFile {
    fn open(path: &Path) -> io::Result<File> {
        OpenOptions::new().create(true).append(true).open(path)
    }

    /// Reopen the file at the same path.
    pub fn reopen(&self) -> io::Result<()> {
        let fresh = LogFile::open(&self.path)?;
        let mut file = self
            .file
            .lock()
            .map_err(|_| io::Error::other("log file lock poisoned"))?;
        *file = fresh;
        Ok(())
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

struct Pipe(Arc<LogFile>);

impl Write for Pipe {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.0.file.lock() {
            Ok(mut f) => f.write(buf),
            Err(_) => Ok(buf.len()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.0.file.lock() {
            Ok(mut f) => f.flush(),
            Err(_) => Ok(()),
        }
    }
}

/// Start logging with `filter` (env_logger syntax) to `file`, or to stderr.
pub fn init(filter: &str, file: Option<&Path>) -> Result<Option<Arc<LogFile>>, String> {
    let mut builder = env_logger::Builder::new();
    builder.parse_filters(filter).format_timestamp_millis();
    let handle = match file {
        Some(path) => {
            let f = LogFile::open(path).map_err(|e| format!("log file {}: {e}", path.display()))?;
            let log = Arc::new(LogFile {
                path: path.to_path_buf(),
                file: Mutex::new(f),
            });
            builder.target(env_logger::Target::Pipe(Box::new(Pipe(log.clone()))));
            Some(log)
        }
        None => None,
    };
    builder
        .try_init()
        .map_err(|e| format!("starting the logger: {e}"))?;
    Ok(handle)
}
