//! Fields of the runtime-spec real clients send beyond the basics:
//! each is honoured (observed from inside the container) or refused by
//! name, never accepted and dropped.

mod common;
use common::*;
use serde_json::json;

#[test]
fn intel_rdt_is_refused_by_name() {
    let ctx = Ctx::new("rdt");
    let mut c = ctx.default_config();
    c["linux"]["intelRdt"] = json!({"closID": "capsa-test", "l3CacheSchema": "L3:0=f"});
    ctx.write_config(&c);
    let id = ctx.id("c");
    let out = ctx.capsa(&["create", "--bundle", ctx.bundle_str(), &id]);
    let resctrl = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.contains(" /sys/fs/resctrl ") && l.contains(" - resctrl "));
    if resctrl {
        assert_fails_with(&out, "linux.intelRdt: capsa does not implement");
    } else {
        assert_fails_with(&out, "linux.intelRdt: this host has no resctrl filesystem");
    }
    assert!(ctx.state_entries().is_empty());
}

#[test]
fn a_rootfs_that_is_a_symlink_is_refused() {
    let ctx = Ctx::new("rootlink");
    std::fs::rename(ctx.bundle.join("rootfs"), ctx.bundle.join("real")).unwrap();
    std::os::unix::fs::symlink("real", ctx.bundle.join("rootfs")).unwrap();
    let id = ctx.id("c");
    let out = ctx.capsa(&["create", "--bundle", ctx.bundle_str(), &id]);
    assert_fails_with(&out, "root.path: rootfs is a symlink or passes through one");
    assert!(ctx.state_entries().is_empty());
    // The real directory, named as such, runs; so does a bundle reached
    // through a symlink (only what root.path adds must be free of links).
    let mut c = ctx.sh_config("echo ok");
    c["root"]["path"] = json!("real");
    let link = ctx.dir.join("bundle-link");
    std::os::unix::fs::symlink(&ctx.bundle, &link).unwrap();
    ctx.write_config(&c);
    let out = ctx.capsa(&["run", "--bundle", link.to_str().unwrap(), &id]);
    assert_ok(&out);
    assert_eq!(stdout(&out), "ok\n");
}
