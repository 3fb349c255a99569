//! Logging through env_logger, to stderr or to a file that SIGHUP reopens (after rotation), as
//! text for people or as JSON lines for machines (`--log-format json`).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};

/// How each log record is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// env_logger's line: `[2026-01-01T00:00:00.000Z INFO  target] message`.
    #[default]
    Text,
    /// One JSON object per line: `ts`, `level`, `target`, `message`, and `fields` when the
    /// record carries key-value pairs.
    Json,
}

impl FromStr for LogFormat {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err("expected text or json"),
        }
    }
}

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

/// Start logging with `filter` (env_logger syntax) in `format` to `file`, or to stderr.
pub fn init(
    filter: &str,
    format: LogFormat,
    file: Option<&Path>,
) -> Result<Option<Arc<LogFile>>, String> {
    let mut builder = env_logger::Builder::new();
    builder.parse_filters(filter).format_timestamp_millis();
    if format == LogFormat::Json {
        builder.format(|buf, record| {
            let ts = buf.timestamp_millis().to_string();
            writeln!(buf, "{}", json_line(&ts, record))
        });
    }
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

/// A record as one line of JSON, its keys in a fixed order (`ts`, `level`, `target`,
/// `message`, `fields`) so people can read it too. serde_json escapes every string, newlines
/// included, so an object never spans lines.
fn json_line(ts: &str, record: &log::Record<'_>) -> String {
    let text = |s: &str| Value::from(s).to_string();
    let mut line = format!(
        "{{\"ts\":{},\"level\":{},\"target\":{},\"message\":{}",
        text(ts),
        text(record.level().as_str()),
        text(record.target()),
        text(&record.args().to_string())
    );
    let mut fields = Fields(Map::new());
    let _ = record.key_values().visit(&mut fields);
    if !fields.0.is_empty() {
        line.push_str(",\"fields\":");
        line.push_str(&Value::Object(fields.0).to_string());
    }
    line.push('}');
    line
}

/// Collects a record's key-value pairs: numbers and booleans stay JSON numbers and booleans,
/// the rest becomes text.
struct Fields(Map<String, Value>);

impl<'kvs> log::kv::VisitSource<'kvs> for Fields {
    fn visit_pair(
        &mut self,
        key: log::kv::Key<'kvs>,
        value: log::kv::Value<'kvs>,
    ) -> Result<(), log::kv::Error> {
        let v = if let Some(n) = value.to_u64() {
            n.into()
        } else if let Some(n) = value.to_i64() {
            n.into()
        } else if let Some(b) = value.to_bool() {
            b.into()
        } else {
            value.to_string().into()
        };
        self.0.insert(key.as_str().to_string(), v);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse() {
        assert_eq!("text".parse(), Ok(LogFormat::Text));
        assert_eq!(" json".parse(), Ok(LogFormat::Json));
        assert!("xml".parse::<LogFormat>().is_err());
    }

    #[test]
    fn a_record_is_one_line_of_json_with_its_fields() {
        let args = format_args!("two\nlines \"quoted\"");
        let kvs: &[(&str, log::kv::Value<'_>)] = &[
            ("conn", log::kv::Value::from(7u64)),
            ("peer", log::kv::Value::from("10.0.0.1:4000")),
        ];
        let record = log::Record::builder()
            .args(args)
            .level(log::Level::Warn)
            .target("lingerstackd::x")
            .key_values(&kvs)
            .build();
        let text = json_line("2026-01-01T00:00:00.000Z", &record);
        assert!(!text.contains('\n'), "{text}");
        assert!(
            text.starts_with("{\"ts\":\"2026-01-01T00:00:00.000Z\",\"level\""),
            "{text}"
        );
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["level"], "WARN");
        assert_eq!(v["target"], "lingerstackd::x");
        assert_eq!(v["message"], "two\nlines \"quoted\"");
        assert_eq!(v["fields"]["conn"], 7);
        assert_eq!(v["fields"]["peer"], "10.0.0.1:4000");
        let bare = log::Record::builder().args(format_args!("x")).build();
        let bare: Value = serde_json::from_str(&json_line("t", &bare)).unwrap();
        assert!(bare.get("fields").is_none(), "{bare}");
    }
}
