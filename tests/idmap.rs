//! Idmapped bind mounts (`mounts[].uidMappings`/`gidMappings`, the
//! `idmap`/`ridmap` options), observed from both sides: the owners a
//! container sees through the mount, and the owners on the host of files
//! it makes there. Also the kernel's refusals and bad configurations, which
//! must name the mount and leave nothing behind.
//!
//! The direction is runc's (and the kernel's): an id stored in the source
//! filesystem as `containerID` shows through the mount as `hostID`, in the
//! host's terms; a container with a user namespace then sees that id
//! through its own mappings.
//!
//! Tests that need mounts on the host side (a submount in the source, a
//! read-only host mount) run capsa inside a private mount namespace of
//! their own (`unshare -m`), so those mounts vanish with it whatever happens.

mod common;
mod residue;

use common::*;
use residue::*;
use serde_json::{Value, json};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The container's user namespace, when a test gives it one: 0-65535
/// inside are HOST_BASE.. on the host.
const HOST_BASE: u32 = 200_000;

fn map(container: u32, host: u32, size: u32) -> Value {
    json!([{"containerID": container, "hostID": host, "size": size}])
}

/// A bind mount entry; `maps` sets both uidMappings and gidMappings.
fn bind(src: &Path, dest: &str, options: &[&str], maps: Option<Value>) -> Value {
    let mut m = json!({"destination": dest, "type": "bind", "source": src, "options": options});
    if let Some(maps) = maps {
        m["uidMappings"] = maps.clone();
        m["gidMappings"] = maps;
    }
    m
}

/// A directory (or, with `file`, a file) at `path` owned by uid:gid.
fn make_owned(path: &Path, uid: u32, gid: u32, file: bool) {
    if file {
        std::fs::write(path, b"").unwrap();
    } else {
        std::fs::create_dir_all(path).unwrap();
    }
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
}

fn owner(path: &Path) -> (u32, u32) {
    let m = std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (m.uid(), m.gid())
}

fn with_userns(c: &mut Value) {
    c["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    c["linux"]["uidMappings"] = map(0, HOST_BASE, 65536);
    c["linux"]["gidMappings"] = map(0, HOST_BASE, 65536);
}

fn push_mount(c: &mut Value, m: Value) -> usize {
    let mounts = c["mounts"].as_array_mut().unwrap();
    mounts.push(m);
    mounts.len() - 1
}

/// Mount points inside a rootfs the container's root does not own (a user
/// namespace) must exist beforehand, as with any bind mount.
fn mount_points(ctx: &Ctx, dests: &[&str]) {
    for d in dests {
        std::fs::create_dir_all(ctx.bundle.join("rootfs").join(d.trim_start_matches('/'))).unwrap();
    }
}

/// `capsa --root R ARGS` with the residue mark in its environment (the
/// init, and any helper capsa clones, inherit it).
fn capsa_marked(ctx: &Ctx, args: &[&str]) -> Output {
    ctx.cmd(args)
        .env(MARK, &ctx.name)
        .output()
        .expect("run capsa")
}

/// Runs `script` under sh in a private mount namespace of its own; `CAPSA`
/// in it is this test's capsa with its --root. What the script mounts is
/// gone when it exits.
fn in_private_mntns(ctx: &Ctx, script: &str) -> Output {
    let capsa = format!("{CAPSA} --root {}", ctx.root.display());
    Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-ec", script])
        .env("CAPSA", capsa)
        .env(MARK, &ctx.name)
        .output()
        .expect("run unshare")
}

#[track_caller]
fn assert_lines(out: &Output, want: &[&str]) {
    assert_ok(out);
    let text = stdout(out);
    let got: Vec<&str> = text.lines().collect();
    assert_eq!(got, want, "stderr: {}", stderr(out));
}

/// A host directory of uid 1000 (with `f`, of 1000:`f_gid`) and one of
/// root's (with `g`).
fn host_dirs(ctx: &Ctx, f_gid: u32) -> (PathBuf, PathBuf) {
    let user_dir = ctx.dir.join("user");
    make_owned(&user_dir, 1000, 1000, false);
    make_owned(&user_dir.join("f"), 1000, f_gid, true);
    let root_dir = ctx.dir.join("rootowned");
    make_owned(&root_dir, 0, 0, false);
    make_owned(&root_dir.join("g"), 0, 0, true);
    (user_dir, root_dir)
}

#[test]
fn owners_through_the_mount_without_a_user_namespace() {
    let ctx = Ctx::new("idmap-nouserns");
    let (user_dir, root_dir) = host_dirs(&ctx, 1001);

    let mut c = ctx.sh_config(
        "stat -c '%n %u:%g' /u /u/f /file /r/g /plain/f; \
         touch /u/by-root; stat -c '%n %u:%g' /u/by-root; \
         touch /r/by-root 2>/dev/null || echo 'root is unmapped in /r'",
    );
    // 1000 on disk is 0 through /u (containerID 1000 -> hostID 0), and 1001
    // is 1 (the gid range has 2 ids).
    let mut u = bind(&user_dir, "/u", &["bind", "idmap"], None);
    u["uidMappings"] = map(1000, 0, 1);
    u["gidMappings"] = map(1000, 0, 2);
    push_mount(&mut c, u);
    // The other way round: 0 on disk shows as 1000.
    push_mount(
        &mut c,
        bind(&root_dir, "/r", &["bind", "idmap"], Some(map(0, 1000, 1))),
    );
    push_mount(&mut c, bind(&user_dir, "/plain", &["bind"], None));
    // A single file, with the same mappings as /u.
    let mut file = bind(&user_dir.join("f"), "/file", &["bind", "idmap"], None);
    file["uidMappings"] = map(1000, 0, 1);
    file["gidMappings"] = map(1000, 0, 2);
    push_mount(&mut c, file);
    ctx.write_config(&c);
    let id = ctx.id("c");
    let out = capsa_marked(&ctx, &["run", "--bundle", ctx.bundle_str(), &id]);
    assert_lines(
        &out,
        &[
            "/u 0:0",
            "/u/f 0:1",
            "/file 0:1",
            "/r/g 1000:1000",
            "/plain/f 1000:1001",
            "/u/by-root 0:0",
            "root is unmapped in /r",
        ],
    );
    // What root made through /u belongs to 1000 on the host.
    assert_eq!(owner(&user_dir.join("by-root")), (1000, 1000));
    assert!(!root_dir.join("by-root").exists());
    assert_none_left(&ctx.root, &ctx.dir, &[&id], &ctx.name);
}

#[test]
fn owners_through_the_mount_with_a_user_namespace() {
    let ctx = Ctx::new("idmap-userns");
    let (user_dir, root_dir) = host_dirs(&ctx, 1000);

    let mut c = ctx.sh_config(
        "id -u; stat -c '%n %u:%g' /u /u/f /r/g /same/g /plain/g; \
         touch /u/new /r/new /same/new2",
    );
    with_userns(&mut c);
    // 1000 on disk is HOST_BASE through /u: the container's root. A
    // mapping of its own, so capsa makes a user namespace for it.
    push_mount(
        &mut c,
        bind(
            &user_dir,
            "/u",
            &["rbind", "idmap"],
            Some(map(1000, HOST_BASE, 1)),
        ),
    );
    // No mappings: the container's own (0 on disk is its root).
    push_mount(&mut c, bind(&root_dir, "/r", &["rbind", "idmap"], None));
    // The container's mappings given explicitly: the same.
    push_mount(
        &mut c,
        bind(
            &root_dir,
            "/same",
            &["rbind", "ridmap"],
            Some(map(0, HOST_BASE, 65536)),
        ),
    );
    // Not idmapped: root's files are nobody's inside.
    push_mount(&mut c, bind(&root_dir, "/plain", &["rbind"], None));
    mount_points(&ctx, &["/u", "/r", "/same", "/plain"]);
    ctx.write_config(&c);
    let id = ctx.id("c");
    let out = capsa_marked(&ctx, &["run", "--bundle", ctx.bundle_str(), &id]);
    assert_lines(
        &out,
        &[
            "0",
            "/u 0:0",
            "/u/f 0:0",
            "/r/g 0:0",
            "/same/g 0:0",
            "/plain/g 65534:65534",
        ],
    );
    assert_eq!(owner(&user_dir.join("new")), (1000, 1000));
    assert_eq!(owner(&root_dir.join("new")), (0, 0));
    assert_eq!(owner(&root_dir.join("new2")), (0, 0));
    // The helper process whose user namespace carried /u's maps is gone.
    assert_none_left(&ctx.root, &ctx.dir, &[&id], &ctx.name);
}

#[test]
fn options_apply_to_an_idmapped_mount() {
    let ctx = Ctx::new("idmap-ro");
    let dir = ctx.dir.join("src");
    make_owned(&dir, 1000, 1000, false);
    let mut c = ctx.sh_config(
        "stat -c '%u' /ro; touch /ro/x 2>/dev/null || echo read-only; \
         grep -c ' /ro .*ro,.*idmapped' /proc/self/mountinfo",
    );
    push_mount(
        &mut c,
        bind(
            &dir,
            "/ro",
            &["bind", "idmap", "ro", "nosuid"],
            Some(map(1000, 0, 1)),
        ),
    );
    let out = ctx.run(&c);
    assert_lines(&out, &["0", "read-only", "1"]);
    assert!(!dir.join("x").exists());
}

#[test]
fn ridmap_maps_every_mount_of_the_tree_and_idmap_only_the_top() {
    let ctx = Ctx::new("idmap-ridmap");
    // src/sub hides a file; `lower` is bound over it (on the host side,
    // in the private mount namespace the test runs capsa in).
    let src = ctx.dir.join("src");
    make_owned(&src, 1000, 1000, false);
    make_owned(&src.join("sub"), 1000, 1000, false);
    make_owned(&src.join("sub/hidden"), 1000, 1000, true);
    let lower = ctx.dir.join("lower");
    make_owned(&lower, 1000, 1000, false);
    make_owned(&lower.join("f"), 1000, 1000, true);

    let mut c = ctx.sh_config(
        "stat -c '%n %u' /r /r/sub/f /i /i/sub/f; touch /r/sub/by-root; \
         umount /r/sub 2>/dev/null && echo unmounted || echo locked; ls /r/sub",
    );
    with_userns(&mut c);
    // umount is the container root's to try: a user namespace's copy of
    // the host's mounts keeps submounts locked to their parents.
    let caps = json!([
        "CAP_SYS_ADMIN",
        "CAP_DAC_OVERRIDE",
        "CAP_FOWNER",
        "CAP_CHOWN"
    ]);
    c["process"]["capabilities"] = json!({"bounding": caps, "effective": caps, "permitted": caps});
    let m = Some(map(1000, HOST_BASE, 1));
    push_mount(&mut c, bind(&src, "/r", &["rbind", "ridmap"], m.clone()));
    push_mount(&mut c, bind(&src, "/i", &["rbind", "idmap"], m));
    mount_points(&ctx, &["/r", "/i"]);
    ctx.write_config(&c);
    let id = ctx.id("c");
    let out = in_private_mntns(
        &ctx,
        &format!(
            "mount --bind {} {}; $CAPSA run --bundle {} {id}",
            lower.display(),
            src.join("sub").display(),
            ctx.bundle_str()
        ),
    );
    assert_lines(
        &out,
        &[
            "/r 0",
            "/r/sub/f 0",
            "/i 0",
            // Not idmapped: 1000 on disk is unmapped in the container.
            "/i/sub/f 65534",
            "locked",
            "by-root",
            "f",
        ],
    );
    assert_eq!(owner(&lower.join("by-root")), (1000, 1000));
    assert_none_left(&ctx.root, &ctx.dir, &[&id], &ctx.name);
}

#[test]
fn a_read_only_host_mount_stays_read_only_inside() {
    // The idmapped copy is made inside the container's mount namespace,
    // where the kernel has locked the host's read-only flag: the
    // container's root, even with CAP_SYS_ADMIN in its user namespace,
    // cannot remount it read-write (a copy made in the host's namespace
    // could be).
    let ctx = Ctx::new("idmap-lockedro");
    let dir = ctx.dir.join("src");
    make_owned(&dir, 0, 0, false);
    let mut c = ctx.sh_config(
        "touch /d/x 2>/dev/null || echo read-only; \
         mount -o remount,bind,rw /d 2>/dev/null && echo remounted || echo refused; \
         touch /d/y 2>/dev/null || echo still read-only",
    );
    with_userns(&mut c);
    let caps = json!(["CAP_SYS_ADMIN", "CAP_DAC_OVERRIDE"]);
    c["process"]["capabilities"] = json!({"bounding": caps, "effective": caps, "permitted": caps});
    push_mount(&mut c, bind(&dir, "/d", &["rbind", "idmap"], None));
    mount_points(&ctx, &["/d"]);
    ctx.write_config(&c);
    let id = ctx.id("c");
    let d = dir.display();
    let out = in_private_mntns(
        &ctx,
        &format!(
            "mount --bind {d} {d}; mount -o remount,bind,ro {d}; \
             $CAPSA run --bundle {} {id}",
            ctx.bundle_str()
        ),
    );
    assert_lines(&out, &["read-only", "refused", "still read-only"]);
    assert!(!dir.join("x").exists() && !dir.join("y").exists());
    assert_none_left(&ctx.root, &ctx.dir, &[&id], &ctx.name);
}

#[test]
fn a_filesystem_that_refuses_names_the_mount_and_leaves_nothing() {
    let ctx = Ctx::new("idmap-refused");
    for userns in [false, true] {
        let mut c = ctx.sh_config("true");
        if userns {
            with_userns(&mut c);
            mount_points(&ctx, &["/k"]);
        }
        let i = push_mount(
            &mut c,
            bind(
                Path::new("/sys/kernel"),
                "/k",
                &["rbind", "idmap"],
                Some(map(0, 1000, 1)),
            ),
        );
        ctx.write_config(&c);
        let id = ctx.id(if userns { "userns" } else { "plain" });
        let out = capsa_marked(&ctx, &["create", "--bundle", ctx.bundle_str(), &id]);
        assert_fails_with(
            &out,
            &format!(
                "capsa: config.json: mounts[{i}]: idmapped mount of /sys/kernel on /k: \
                 sysfs does not support idmapped mounts"
            ),
        );
        assert_none_left(&ctx.root, &ctx.dir, &[&id], &ctx.name);
    }

    // ridmap over a tree with a procfs below the source: the submount is
    // named.
    let src = ctx.dir.join("tree");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    let mut c = ctx.sh_config("true");
    let i = push_mount(
        &mut c,
        bind(&src, "/t", &["rbind", "ridmap"], Some(map(0, 1000, 1))),
    );
    ctx.write_config(&c);
    let id = ctx.id("sub");
    let out = in_private_mntns(
        &ctx,
        &format!(
            "mount -t proc proc {}; $CAPSA create --bundle {} {id}",
            src.join("sub").display(),
            ctx.bundle_str()
        ),
    );
    assert_fails_with(
        &out,
        &format!(
            "capsa: config.json: mounts[{i}]: idmapped mount of {} on /t: proc mounted at {} \
             (below the source: ridmap maps it too) does not support idmapped mounts",
            src.display(),
            src.join("sub").display()
        ),
    );
    assert_none_left(&ctx.root, &ctx.dir, &[&id], &ctx.name);
}

#[test]
fn bad_idmapped_mounts_are_refused_naming_the_field() {
    let ctx = Ctx::new("idmap-bad");
    let dir = ctx.dir.join("src");
    std::fs::create_dir_all(&dir).unwrap();
    let id = ctx.id("c");
    let try_create = |c: &Value, needle: &str| {
        ctx.write_config(c);
        let out = capsa_marked(&ctx, &["create", "--bundle", ctx.bundle_str(), &id]);
        assert_fails_with(&out, needle);
        assert_none_left(&ctx.root, &ctx.dir, &[&id], &ctx.name);
    };
    let with = |m: Value| -> (Value, usize) {
        let mut c = ctx.sh_config("true");
        let i = push_mount(&mut c, m);
        (c, i)
    };

    // Not a bind mount.
    let mut m =
        json!({"destination": "/t", "type": "tmpfs", "source": "tmpfs", "options": ["idmap"]});
    m["uidMappings"] = map(0, 1000, 1);
    m["gidMappings"] = map(0, 1000, 1);
    let (c, i) = with(m);
    try_create(
        &c,
        &format!(
            "config.json: mounts[{i}]: idmapped mounts (idmap, ridmap, uidMappings, \
             gidMappings) are only supported for bind mounts"
        ),
    );

    // Overlapping ranges, on the container side and on the host side.
    let mut m = bind(&dir, "/d", &["bind", "idmap"], Some(map(0, 1000, 10)));
    m["uidMappings"] = json!([
        {"containerID": 0, "hostID": 1000, "size": 10},
        {"containerID": 5, "hostID": 5000, "size": 1}
    ]);
    let (c, i) = with(m);
    try_create(
        &c,
        &format!("config.json: mounts[{i}].uidMappings[1]: overlaps mounts[{i}].uidMappings[0]"),
    );
    let mut m = bind(&dir, "/d", &["bind", "idmap"], Some(map(0, 1000, 10)));
    m["gidMappings"] = json!([
        {"containerID": 0, "hostID": 1000, "size": 10},
        {"containerID": 100, "hostID": 1009, "size": 1}
    ]);
    let (c, i) = with(m);
    try_create(
        &c,
        &format!("config.json: mounts[{i}].gidMappings[1]: overlaps mounts[{i}].gidMappings[0]"),
    );

    // An empty range, and one past the highest id capsa accepts.
    let mut m = bind(&dir, "/d", &["bind", "idmap"], Some(map(0, 1000, 1)));
    m["gidMappings"] = map(0, 1000, 0);
    let (c, i) = with(m);
    try_create(
        &c,
        &format!("config.json: mounts[{i}].gidMappings[0].size: must not be 0"),
    );
    let (c, i) = with(bind(&dir, "/d", &["bind"], Some(map(u32::MAX, 0, 2))));
    try_create(
        &c,
        &format!("config.json: mounts[{i}].uidMappings[0]: range goes past id 2147483647"),
    );

    // More ranges than a uid_map takes.
    let many: Vec<Value> = (0..341u32)
        .map(|n| json!({"containerID": n * 2, "hostID": 1000 + n * 2, "size": 1}))
        .collect();
    let mut m = bind(&dir, "/d", &["bind", "idmap"], Some(map(0, 1000, 1)));
    m["uidMappings"] = Value::Array(many);
    let (c, i) = with(m);
    try_create(
        &c,
        &format!("config.json: mounts[{i}].uidMappings: 341 ranges; the kernel takes at most 340"),
    );

    // uidMappings without gidMappings.
    let mut m = bind(&dir, "/d", &["bind", "idmap"], None);
    m["uidMappings"] = map(0, 1000, 1);
    let (c, i) = with(m);
    try_create(
        &c,
        &format!(
            "config.json: mounts[{i}].gidMappings: missing: an idmapped mount with uidMappings \
             needs both"
        ),
    );

    // idmap with no mappings of its own and no user namespace to take
    // them from (empty lists count as none, as the spec says).
    let mut m = bind(&dir, "/d", &["bind", "idmap"], None);
    m["uidMappings"] = json!([]);
    m["gidMappings"] = json!([]);
    let (c, i) = with(m);
    try_create(
        &c,
        &format!(
            "config.json: mounts[{i}].options: idmap without uidMappings and gidMappings takes \
             the container's user namespace mappings, but linux.namespaces has no user namespace"
        ),
    );
}
