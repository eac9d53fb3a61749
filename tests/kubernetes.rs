//! What Kubernetes (through containerd's CRI plugin) hands a runtime that
//! capsa's own configs never did: namespaces as nsfs files bind-mounted
//! elsewhere (`ip netns add`, CNI), and volumes whose mount propagation
//! is Bidirectional (`rshared`), HostToContainer (`rslave`) or None
//! (`private`), each observed from inside a real container and from the host.

mod common;
use common::*;
use serde_json::json;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn sh(cmd: &str) -> std::process::Output {
    Command::new("sh").arg("-c").arg(cmd).output().unwrap()
}

#[track_caller]
fn sh_ok(cmd: &str) {
    let out = sh(cmd);
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace from `ip netns add`, and IPC and UTS namespaces
/// bind-mounted onto files by `unshare`, removed again on drop.
struct NsFiles {
    netns: String,
    dir: PathBuf,
}

impl NsFiles {
    fn new(tag: &str) -> NsFiles {
        let netns = format!("capsa-k8s-{tag}-{}", std::process::id());
        let dir = std::env::temp_dir().join(format!("capsa-nsfiles-{netns}"));
        let files = NsFiles {
            netns: netns.clone(),
            dir: dir.clone(),
        };
        std::fs::create_dir_all(&dir).unwrap();
        // A private mount to hold the namespace binds (unshare refuses to
        // bind onto a file of a shared mount).
        sh_ok(&format!(
            "mount -t tmpfs capsa-nsfiles {d} && mount --make-private {d} && touch {d}/ipc {d}/uts",
            d = dir.display()
        ));
        sh_ok(&format!("ip netns add {netns}"));
        sh_ok(&format!(
            "unshare --ipc={d}/ipc --uts={d}/uts hostname pod-{tag}",
            d = dir.display()
        ));
        files
    }

    fn net(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.netns)
    }
}

impl Drop for NsFiles {
    fn drop(&mut self) {
        let d = self.dir.display();
        let _ = sh(&format!(
            "umount {d}/ipc; umount {d}/uts; umount {d}; rmdir {d}; ip netns del {}",
            self.netns
        ));
    }
}

fn ns_inode(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().ino()
}

#[test]
fn namespaces_given_as_nsfs_files_are_joined_by_create_and_exec() {
    let ns = NsFiles::new("join");
    let ctx = Ctx::new("k8sns");
    let mut c = ctx.sh_config("sleep 100");
    c["process"]["args"] = json!(["sleep", "100"]);
    // A pod's containers keep the sandbox's hostname: none of their own.
    c.as_object_mut().unwrap().remove("hostname");
    let mut nss: Vec<serde_json::Value> = c["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| !["network", "ipc", "uts"].contains(&n["type"].as_str().unwrap()))
        .cloned()
        .collect();
    nss.push(json!({"type": "network", "path": ns.net()}));
    nss.push(json!({"type": "ipc", "path": ns.dir.join("ipc")}));
    nss.push(json!({"type": "uts", "path": ns.dir.join("uts")}));
    c["linux"]["namespaces"] = json!(nss);
    ctx.write_config(&c);
    let id = ctx.id("c");
    assert_ok(&ctx.capsa(&["run", "-d", "--bundle", ctx.bundle_str(), &id]));

    let want = format!(
        "net:[{}]\nipc:[{}]\nuts:[{}]\npod-join\n",
        ns_inode(&ns.net()),
        ns_inode(&ns.dir.join("ipc")),
        ns_inode(&ns.dir.join("uts")),
    );
    let script = "for n in net ipc uts; do readlink /proc/self/ns/$n; done; hostname";
    // The init is in them...
    let init = ctx.state(&id)["pid"].as_i64().unwrap();
    let seen: String = ["net", "ipc", "uts"]
        .iter()
        .map(|n| {
            format!(
                "{}\n",
                std::fs::read_link(format!("/proc/{init}/ns/{n}"))
                    .unwrap()
                    .display()
            )
        })
        .collect();
    assert_eq!(format!("{seen}pod-join\n"), want);
    // ...and so is a process exec'd into the container.
    let out = ctx.capsa(&["exec", &id, "sh", "-c", script]);
    assert_ok(&out);
    assert_eq!(stdout(&out), want);
    assert_ok(&ctx.capsa(&["delete", "--force", &id]));
}

#[test]
fn a_file_that_is_not_the_named_namespace_is_refused() {
    let ns = NsFiles::new("wrong");
    let ctx = Ctx::new("k8snswrong");
    let mut c = ctx.default_config();
    let nss = c["linux"]["namespaces"].as_array_mut().unwrap();
    for n in nss.iter_mut() {
        if n["type"] == "ipc" {
            // A network namespace file named as the IPC namespace.
            n["path"] = json!(ns.net());
        }
    }
    let out = ctx.run(&c);
    assert_fails_with(&out, "not a ipc namespace (it is a network namespace)");
    // An ordinary file is no namespace at all.
    let plain = ctx.dir.join("plain");
    std::fs::write(&plain, "").unwrap();
    for n in c["linux"]["namespaces"].as_array_mut().unwrap() {
        if n["type"] == "ipc" {
            n["path"] = json!(plain);
        }
    }
    let out = ctx.run(&c);
    assert_fails_with(&out, "not a ipc namespace (not a namespace file)");
    assert!(ctx.state_entries().is_empty());
}

/// A host directory on a tmpfs of its own, made shared, as kubelet's
/// volume directories are; everything mounted below it is unmounted on drop.
struct SharedVolume {
    dir: PathBuf,
}

impl SharedVolume {
    fn new(tag: &str) -> SharedVolume {
        let dir = std::env::temp_dir().join(format!("capsa-k8svol-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let v = SharedVolume { dir };
        sh_ok(&format!(
            "mount -t tmpfs capsa-k8svol {d} && mount --make-shared {d} && mkdir {d}/in {d}/out",
            d = v.dir.display()
        ));
        v
    }

    fn host_mounted(&self, sub: &str) -> bool {
        let want = format!(" {} ", self.dir.join(sub).display());
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .any(|l| l.contains(&want))
    }
}

impl Drop for SharedVolume {
    fn drop(&mut self) {
        let d = self.dir.display();
        let _ = sh(&format!(
            "umount -l {d}/in; umount -l {d}/out; umount -l {d}; rmdir {d}"
        ));
    }
}

/// Runs a container with the volume bound at /vol with `propagation` (and
/// the same `rootfsPropagation`, as CRI does), which mounts a tmpfs on
/// /vol/in; then the host mounts one on out/. Returns whether the host saw
/// the container's mount, and whether the container saw the host's.
fn propagation_case(propagation: &str) -> (bool, bool) {
    let vol = SharedVolume::new(propagation);
    let ctx = Ctx::new(&format!("k8sprop-{propagation}"));
    let mut c = ctx.sh_config(
        "mount -t tmpfs from-container /vol/in && echo made > /vol/in/file && touch /vol/ready; \
         exec sleep 100",
    );
    c["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/vol",
        "type": "bind",
        "source": vol.dir,
        "options": ["rbind", propagation],
    }));
    c["linux"]["rootfsPropagation"] = json!(propagation);
    for set in ["bounding", "effective", "permitted"] {
        c["process"]["capabilities"][set]
            .as_array_mut()
            .unwrap()
            .push(json!("CAP_SYS_ADMIN"));
    }
    ctx.write_config(&c);
    let id = ctx.id("c");
    assert_ok(&ctx.capsa(&["run", "-d", "--bundle", ctx.bundle_str(), &id]));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !vol.dir.join("ready").exists() {
        assert!(Instant::now() < deadline, "the container never got ready");
        std::thread::sleep(Duration::from_millis(20));
    }
    let host_saw = vol.host_mounted("in") && vol.dir.join("in/file").exists();
    // The container's own setup (its rootfs bind, /proc, /dev) never
    // reaches the host, whatever the propagation.
    let leaked: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(ctx.bundle_str()))
        .map(String::from)
        .collect();
    assert!(leaked.is_empty(), "mounts leaked to the host: {leaked:?}");

    sh_ok(&format!(
        "mount -t tmpfs from-host {d}/out && echo host > {d}/out/file",
        d = vol.dir.display()
    ));
    let out = ctx.capsa(&[
        "exec",
        &id,
        "sh",
        "-c",
        "cat /vol/out/file 2>/dev/null; true",
    ]);
    assert_ok(&out);
    let container_saw = stdout(&out) == "host\n";
    assert_ok(&ctx.capsa(&["delete", "--force", &id]));
    (host_saw, container_saw)
}

#[test]
fn bidirectional_volume_mounts_propagate_both_ways() {
    assert_eq!(propagation_case("rshared"), (true, true));
}

#[test]
fn host_to_container_volume_mounts_propagate_inwards_only() {
    assert_eq!(propagation_case("rslave"), (false, true));
}

#[test]
fn private_volume_mounts_propagate_nowhere() {
    assert_eq!(propagation_case("private"), (false, false));
}
