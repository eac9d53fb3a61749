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

/// A veth pair the test makes on the host, deleted when the test ends.
struct Veth(String);

impl Veth {
    fn new(tag: char) -> Veth {
        let name = format!("cpv{}{tag}", std::process::id() % 100_000);
        let _ = ip(&["link", "del", &name]);
        let peer = format!("{name}p");
        let out = ip(&["link", "add", &name, "type", "veth", "peer", "name", &peer]);
        assert!(out.status.success(), "ip link add: {}", stderr(&out));
        Veth(name)
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        let _ = ip(&["link", "del", &self.0]);
    }
}

fn ip(args: &[&str]) -> std::process::Output {
    std::process::Command::new("ip")
        .args(args)
        .output()
        .expect("run ip (iproute2)")
}

#[test]
fn net_devices_move_into_the_container_with_their_addresses_and_back() {
    let ctx = Ctx::new("netdev");
    let veth = Veth::new('a');
    let dev = veth.0.as_str();
    assert!(
        ip(&["addr", "add", "10.199.77.1/24", "dev", dev])
            .status
            .success()
    );
    assert!(ip(&["link", "set", dev, "up"]).status.success());
    let mut c =
        ctx.sh_config("ip -o addr show dev eth7; ip -o link show dev eth7; echo done; sleep 100");
    c["linux"]["netDevices"] = json!({ dev: {"name": "eth7"} });
    ctx.write_config(&c);
    let id = ctx.id("c");
    let log = ctx.dir.join("out.txt");
    let st = ctx
        .cmd(&["create", "--bundle", ctx.bundle_str(), &id])
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::process::Stdio::inherit())
        .status()
        .unwrap();
    assert!(st.success());
    // Gone from the host while the container has it.
    assert!(!ip(&["link", "show", dev]).status.success());
    assert_ok(&ctx.capsa(&["start", &id]));
    let mut text = String::new();
    for _ in 0..300 {
        text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("done\n") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(
        text.contains("eth7") && text.contains("inet 10.199.77.1/24"),
        "{text}"
    );
    let link = text.lines().find(|l| l.contains("<")).unwrap_or("");
    assert!(
        link.contains(",UP") || link.contains("<UP"),
        "eth7 is not up: {text}"
    );
    assert_ok(&ctx.capsa(&["delete", "--force", &id]));
    // Back on the host, under its own name, with its address.
    let out = ip(&["-o", "addr", "show", "dev", dev]);
    assert!(
        out.status.success(),
        "{dev} did not come back: {}",
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("inet 10.199.77.1/24"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn net_devices_are_refused_without_a_network_namespace_or_device() {
    let ctx = Ctx::new("netdevbad");
    let id = ctx.id("c");
    let mut c = ctx.default_config();
    c["linux"]["netDevices"] = json!({ "cpvnosuchdev0": {} });
    ctx.write_config(&c);
    let out = ctx.capsa(&["create", "--bundle", ctx.bundle_str(), &id]);
    assert_fails_with(
        &out,
        "linux.netDevices[\"cpvnosuchdev0\"]: no interface cpvnosuchdev0",
    );
    assert!(ctx.state_entries().is_empty());
    let veth = Veth::new('b');
    c["linux"]["netDevices"] = json!({ veth.0.as_str(): {} });
    c["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .retain(|n| n["type"] != "network");
    ctx.write_config(&c);
    let out = ctx.capsa(&["create", "--bundle", ctx.bundle_str(), &id]);
    assert_fails_with(
        &out,
        "linux.netDevices: moving network devices needs a network namespace",
    );
    assert!(ctx.state_entries().is_empty());
    assert!(ip(&["link", "show", &veth.0]).status.success());
    // A create that fails after moving the device gives it back.
    assert!(
        ip(&["addr", "add", "10.199.78.1/24", "dev", &veth.0])
            .status
            .success()
    );
    let mut c = ctx.default_config();
    c["linux"]["netDevices"] = json!({ veth.0.as_str(): {"name": "eth8"} });
    c["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/data", "type": "bind", "source": ctx.dir.join("no-such-dir"),
        "options": ["rbind"]}));
    ctx.write_config(&c);
    let out = ctx.capsa(&["create", "--bundle", ctx.bundle_str(), &id]);
    assert_fails_with(&out, "no-such-dir");
    assert!(ctx.state_entries().is_empty());
    let out = ip(&["-o", "addr", "show", "dev", &veth.0]);
    assert!(
        stdout(&out).contains("inet 10.199.78.1/24"),
        "{}",
        stderr(&out)
    );
}
