//! Seccomp filters from `linux.seccomp` (being written).
