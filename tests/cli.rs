//! The parts of the command line that clients parse: --version, spec,
//! features, list formats, Go-style single-dash flags.

mod common;
use common::*;

#[test]
fn version_has_the_lines_docker_parses() {
    let ctx = Ctx::new("version");
    let out = ctx.capsa(&["--version"]);
    assert_ok(&out);
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("capsa version "), "{text}");
    assert!(lines.iter().any(|l| l.starts_with("commit: ")), "{text}");
    assert!(
        lines
            .iter()
            .any(|l| *l == format!("spec: {}", capsa::spec::OCI_VERSION)),
        "{text}"
    );
}

#[test]
fn spec_writes_runc_defaults_and_refuses_to_overwrite() {
    let ctx = Ctx::new("spec");
    let dir = ctx.dir.join("newbundle");
    std::fs::create_dir_all(&dir).unwrap();
    assert_ok(&ctx.capsa(&["spec", "--bundle", dir.to_str().unwrap()]));
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(v["process"]["args"], serde_json::json!(["sh"]));
    assert_eq!(v["root"]["path"], "rootfs");
    assert_eq!(v["process"]["rlimits"][0]["type"], "RLIMIT_NOFILE");
    let ns: Vec<&str> = v["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap())
        .collect();
    assert_eq!(ns, ["pid", "network", "ipc", "uts", "mount", "cgroup"]);
    assert_eq!(v["mounts"].as_array().unwrap().len(), 7);
    assert!(
        v["linux"]["maskedPaths"]
            .as_array()
            .unwrap()
            .contains(&"/proc/kcore".into())
    );
    let out = ctx.capsa(&["spec", "--bundle", dir.to_str().unwrap()]);
    assert_fails_with(&out, "exists");

    let rl = ctx.dir.join("rootless");
    std::fs::create_dir_all(&rl).unwrap();
    assert_ok(&ctx.capsa(&["spec", "--rootless", "-b", rl.to_str().unwrap()]));
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(rl.join("config.json")).unwrap()).unwrap();
    assert_eq!(v["linux"]["uidMappings"][0]["containerID"], 0);
    assert!(
        v["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["type"] == "user")
    );
    assert!(
        !v["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["type"] == "network")
    );
}

#[test]
fn features_document_is_honest_json() {
    let ctx = Ctx::new("features");
    let out = ctx.capsa(&["features"]);
    assert_ok(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ociVersionMin"], "1.0.0");
    let ns = v["linux"]["namespaces"].as_array().unwrap();
    assert!(ns.contains(&"pid".into()) && ns.contains(&"time".into()));
    assert!(
        v["linux"]["capabilities"]
            .as_array()
            .unwrap()
            .contains(&"CAP_SYS_ADMIN".into())
    );
    let opts = v["mountOptions"].as_array().unwrap();
    for o in ["rbind", "idmap", "ridmap"] {
        assert!(opts.contains(&o.into()), "{o} missing in {opts:?}");
    }
    assert_eq!(v["linux"]["mountExtensions"]["idmap"]["enabled"], true);
}

#[test]
fn go_style_single_dash_flags_and_list_formats() {
    let ctx = Ctx::new("flags");
    let id = ctx.id("c");
    let mut c = ctx.default_config();
    c["process"]["args"] = serde_json::json!(["sleep", "100"]);
    ctx.write_config(&c);
    assert_ok(&ctx.capsa(&["create", "-bundle", ctx.bundle_str(), &id]));
    let out = ctx.capsa(&["list"]);
    assert_ok(&out);
    let text = stdout(&out);
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    );
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(row[0], id);
    assert_eq!(row[2], "created");
    let q = ctx.capsa(&["list", "-q"]);
    assert_eq!(stdout(&q), format!("{id}\n"));
    assert_ok(&ctx.capsa(&["delete", "-force", &id]));
    assert_eq!(stdout(&ctx.capsa(&["list", "--format", "json"])), "[]\n");
}
