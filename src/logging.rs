//! Where capsa's own messages go. With `--log FILE` errors and warnings are
//! appended to FILE, either as logrus-style text or, with `--log-format json`,
//! as one JSON object per line (`{"level":"error","msg":"...","time":"..."}`)
//! which is what containerd and conmon parse. Errors also go to stderr;
//! warnings and debug lines go to stderr only when there is no log file.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::OnceLock;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warning",
            Level::Error => "error",
        }
    }
}

struct Logger {
    file: Option<File>,
    format: Format,
    debug: bool,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

/// Sets up logging once, at start-up. A log file that cannot be opened is
/// reported and logging falls back to stderr only.
pub fn init(path: Option<&std::path::Path>, format: Format, debug: bool) {
    let file = path.and_then(
        |p| match OpenOptions::new().create(true).append(true).open(p) {
            Ok(f) => Some(f),
            Err(e) => {
                eprintln!("capsa: log file {}: {e}", p.display());
                None
            }
        },
    );
    let _ = LOGGER.set(Logger {
        file,
        format,
        debug,
    });
}

pub fn debug_enabled() -> bool {
    LOGGER.get().is_some_and(|l| l.debug)
}

static START: OnceLock<std::time::Instant> = OnceLock::new();

/// Marks the start of this capsa process, for [`phase`].
pub fn start_clock() {
    let _ = START.set(std::time::Instant::now());
}

/// With `--debug`, prints how long after start a setup phase ended
/// (`phase clone: 1.234 ms`), so a slow phase shows without a profiler.
/// The init's phases come from the init itself (pid 1 in its namespace).
pub fn phase(name: &str) {
    if !debug_enabled() {
        return;
    }
    if let Some(t) = START.get() {
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        log(
            Level::Debug,
            &format!("phase {name}: {ms:.3} ms (pid {})", std::process::id()),
        );
    }
}

/// Formats one log line (without the newline).
pub fn format_line(format: Format, level: Level, msg: &str, time: &str) -> String {
    match format {
        Format::Json => {
            serde_json::json!({"level": level.name(), "msg": msg, "time": time}).to_string()
        }
        Format::Text => format!("time={:?} level={} msg={:?}", time, level.name(), msg),
    }
}

pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// Writes a message at `level`. Errors always reach stderr as well,
/// prefixed with `capsa: `. Warnings (and debug lines, with `--debug`) go to
/// stderr only when there is no log file: conmon and the containerd shim
/// hand create and exec the container's own stdio, so whatever else capsa
/// printed there would show up as the container's output (`podman run`,
/// `podman exec`, `podman logs`), which runc never does.
pub fn log(level: Level, msg: &str) {
    let logger = LOGGER.get();
    let debug = logger.is_some_and(|l| l.debug);
    if level == Level::Debug && !debug {
        return;
    }
    let has_file = logger.is_some_and(|l| l.file.is_some());
    if let Some(Logger {
        file: Some(f),
        format,
        ..
    }) = logger
    {
        let line = format_line(*format, level, msg, &now_rfc3339());
        let mut f: &File = f;
        let _ = f.write_all(format!("{line}\n").as_bytes());
    }
    if level == Level::Error || (!has_file && (level == Level::Warn || debug)) {
        let prefix = if level == Level::Warn {
            "warning: "
        } else {
            ""
        };
        eprintln!("capsa: {prefix}{msg}");
    }
}

pub fn warn(msg: &str) {
    log(Level::Warn, msg);
}

pub fn error(msg: &str) {
    log(Level::Error, msg);
}

pub fn debug(msg: &str) {
    log(Level::Debug, msg);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_line_has_runc_shape() {
        let l = format_line(
            Format::Json,
            Level::Error,
            "boom \"x\"",
            "2026-11-22T10:00:00Z",
        );
        let v: serde_json::Value = serde_json::from_str(&l).unwrap();
        assert_eq!(v["level"], "error");
        assert_eq!(v["msg"], "boom \"x\"");
        assert_eq!(v["time"], "2026-11-22T10:00:00Z");
    }
}
