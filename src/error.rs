//! The library's error type. Every message names what failed (a file, a
//! config field, a container id) and the cause, the way runc words them, so
//! the CLI can print it as one line and clients can match its phrases.

use nix::errno::Errno;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A complete, human-readable message.
    #[error("{0}")]
    Msg(String),
    /// A system call failed; `context` says what was being done.
    #[error("{context}: {}", errno_text(*.errno))]
    Sys { context: String, errno: Errno },
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn msg(s: impl Into<String>) -> Self {
        Error::Msg(s.into())
    }

    /// The errno behind this error, when it came from a system call.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Error::Sys { errno, .. } => Some(*errno),
            Error::Msg(_) => None,
        }
    }

    /// Puts `prefix: ` in front of the message.
    pub fn prefixed(self, prefix: impl std::fmt::Display) -> Self {
        Error::Msg(format!("{prefix}: {self}"))
    }
}

/// The errno's description in the lower-case form Go programs print
/// ("no such file or directory"), which containerd and podman match on.
pub fn errno_text(errno: Errno) -> String {
    // nix takes the kernel header's comment ("Try again"); Go and glibc
    // say this.
    if errno == Errno::EAGAIN {
        return "resource temporarily unavailable".into();
    }
    let d = errno.desc();
    let mut c = d.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Attaches context to fallible system calls and I/O.
pub trait Context<T> {
    fn ctx<S: Into<String>>(self, context: impl FnOnce() -> S) -> Result<T>;
}

impl<T> Context<T> for std::result::Result<T, Errno> {
    fn ctx<S: Into<String>>(self, context: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|errno| Error::Sys {
            context: context().into(),
            errno,
        })
    }
}

impl<T> Context<T> for std::result::Result<T, std::io::Error> {
    fn ctx<S: Into<String>>(self, context: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| match e.raw_os_error() {
            Some(n) => Error::Sys {
                context: context().into(),
                errno: Errno::from_raw(n),
            },
            None => Error::Msg(format!("{}: {e}", context().into())),
        })
    }
}

impl<T> Context<T> for Result<T> {
    fn ctx<S: Into<String>>(self, context: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| e.prefixed(context().into()))
    }
}

/// Returns early with a formatted [`Error::Msg`].
#[macro_export]
macro_rules! bail {
    ($($t:tt)*) => {
        return Err($crate::error::Error::Msg(format!($($t)*)))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_text_is_lower_case_like_go() {
        assert_eq!(errno_text(Errno::ENOENT), "no such file or directory");
        assert_eq!(
            errno_text(Errno::EAGAIN),
            "resource temporarily unavailable"
        );
        let e: Result<()> = Err(Errno::EPERM).ctx(|| "open /x");
        assert_eq!(
            e.unwrap_err().to_string(),
            "open /x: operation not permitted"
        );
    }
}
