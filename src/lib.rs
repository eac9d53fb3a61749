//! capsa: a runc-compatible OCI container runtime.
//!
//! The binary (`src/main.rs`) is only the command line; everything it does
//! is here, one module per concern.

pub mod capabilities;
pub mod cgroups;
pub mod container;
pub mod error;
pub mod exec_stub;
pub mod fault;
pub mod features;
pub mod foreground;
pub mod hooks;
pub mod logging;
pub mod namespaces;
pub mod netdev;
pub mod notify;
pub mod pidfd_socket;
pub mod process;
pub mod rootfs;
pub mod rootless;
pub mod sealed_exe;
pub mod seccomp;
pub mod signals;
pub mod spec;
pub mod state;
pub mod sys;
pub mod tty;

pub use error::{Error, Result};

/// `capsa --version` output, in the line format docker parses.
pub fn version_text() -> String {
    format!(
        "capsa version {}\ncommit: {}\nspec: {}\n",
        env!("CARGO_PKG_VERSION"),
        option_env!("CAPSA_COMMIT").unwrap_or("unknown"),
        spec::OCI_VERSION
    )
}
