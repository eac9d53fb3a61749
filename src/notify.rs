//! sd_notify pass-through. When capsa is started with `NOTIFY_SOCKET` in
//! its environment (systemd's `Type=notify` services, podman's
//! `--sdnotify=container` through conmon), the container's process gets the
//! same variable and the socket itself, bind-mounted at the same path in
//! its root filesystem, so `READY=1` and friends reach the listener
//! directly. (runc instead proxies through a socket of its own during
//! `start`; the direct bind keeps `create`/`start` free of waiting, and the
//! listener sees the container's process as the sender, so a systemd unit
//! needs `NotifyAccess=all`.)

use crate::error::{Context, Error, Result};
use oci_spec::runtime::{MountBuilder, Spec};
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

const VAR: &str = "NOTIFY_SOCKET";

/// Adds the bind mount and the environment variable to `spec` when
/// `NOTIFY_SOCKET` is set for capsa. Returns the socket path it passed.
pub fn pass_through(spec: &mut Spec) -> Result<Option<String>> {
    let Some(value) = std::env::var_os(VAR) else {
        return Ok(None);
    };
    let value = value
        .into_string()
        .map_err(|_| Error::msg(format!("{VAR}: not valid UTF-8")))?;
    if value.starts_with('@') {
        // An abstract socket belongs to a network namespace; it cannot be
        // bind-mounted, and a container with its own network would not
        // see it. The container runs, without notification.
        crate::logging::warn(&format!(
            "{VAR}={value}: abstract sockets cannot be passed into a container; not passed"
        ));
        return Ok(None);
    }
    apply(spec, &value).map(Some)
}

fn apply(spec: &mut Spec, socket: &str) -> Result<String> {
    let path = Path::new(socket);
    if !path.is_absolute() {
        return Err(Error::msg(format!(
            "{VAR}={socket}: the path must be absolute"
        )));
    }
    let meta = std::fs::metadata(path).ctx(|| format!("{VAR}={socket}"))?;
    if !meta.file_type().is_socket() {
        return Err(Error::msg(format!("{VAR}={socket}: not a socket")));
    }
    let mount = MountBuilder::default()
        .destination(path)
        .typ("bind")
        .source(path)
        .options(vec![
            "bind".to_string(),
            "nosuid".into(),
            "nodev".into(),
            "noexec".into(),
        ])
        .build()
        .map_err(|e| Error::msg(format!("{VAR}: {e}")))?;
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    mounts.retain(|m| m.destination() != path);
    mounts.push(mount);
    spec.set_mounts(Some(mounts));
    if let Some(process) = spec.process_mut() {
        let mut env = process.env().clone().unwrap_or_default();
        env.retain(|e| !e.starts_with("NOTIFY_SOCKET="));
        env.push(format!("{VAR}={socket}"));
        process.set_env(Some(env));
    }
    Ok(socket.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> Spec {
        crate::spec::parse(&crate::spec::default_spec(false)).unwrap()
    }

    #[test]
    fn adds_the_bind_and_the_variable_once() {
        let dir = std::env::temp_dir().join(format!("capsa-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("notify.sock");
        let _l = std::os::unix::net::UnixDatagram::bind(&sock).unwrap();
        let mut s = spec();
        let env = s
            .process()
            .as_ref()
            .unwrap()
            .env()
            .clone()
            .unwrap_or_default();
        let mut with_old = env.clone();
        with_old.push("NOTIFY_SOCKET=/old".into());
        s.process_mut().as_mut().unwrap().set_env(Some(with_old));
        let p = sock.to_str().unwrap();
        apply(&mut s, p).unwrap();
        let env = s.process().as_ref().unwrap().env().clone().unwrap();
        let vars: Vec<_> = env
            .iter()
            .filter(|e| e.starts_with("NOTIFY_SOCKET="))
            .collect();
        assert_eq!(vars, [&format!("NOTIFY_SOCKET={p}")]);
        let m = s.mounts().as_ref().unwrap().last().unwrap();
        assert_eq!(m.destination(), &sock);
        assert_eq!(m.source().as_deref(), Some(sock.as_path()));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn refuses_what_cannot_be_passed() {
        let mut s = spec();
        let e = apply(&mut s, "relative/sock").unwrap_err().to_string();
        assert!(e.contains("must be absolute"), "{e}");
        let e = apply(&mut s, "/etc/hostname").unwrap_err().to_string();
        assert!(e.contains("not a socket"), "{e}");
        let e = apply(&mut s, "/no/such/socket").unwrap_err().to_string();
        assert!(e.contains("no such file or directory"), "{e}");
    }
}
