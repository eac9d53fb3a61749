//! The container lifecycle by hand, as containerd and people at a shell
//! drive it: create, state, start, kill, delete, run.

mod common;
use common::*;

#[test]
fn run_is_pid1_with_its_hostname_and_exit_status() {
    let ctx = Ctx::new("run");
    let out = ctx.run(&ctx.sh_config("echo pid=$$; hostname; exit 7"));
    assert_eq!(out.status.code(), Some(7), "stderr: {}", stderr(&out));
    assert_eq!(stdout(&out), "pid=1\ncapsa\n");
    // run deletes the container afterwards
    assert!(ctx.state_entries().is_empty(), "{:?}", ctx.state_entries());
}

#[test]
fn run_reports_death_by_signal_as_128_plus_n() {
    let ctx = Ctx::new("runsig");
    // A child of PID 1 kills itself; PID 1 then dies of the same signal
    // through sh's exit status convention; use a direct kill of PID 1 from
    // the host instead via --keep and kill.
    let mut c = ctx.sh_config("sleep 100");
    c["process"]["args"] = serde_json::json!(["sleep", "100"]);
    ctx.write_config(&c);
    let id = ctx.id("c");
    let mut child = ctx
        .cmd(&["run", "--bundle", ctx.bundle_str(), &id])
        .spawn()
        .unwrap();
    ctx.wait_status(&id, "running");
    assert_ok(&ctx.capsa(&["kill", &id, "KILL"]));
    let st = child.wait().unwrap();
    assert_eq!(st.code(), Some(137));
}

#[test]
fn run_forwards_signals_to_the_container() {
    let ctx = Ctx::new("fwd");
    let c = ctx.sh_config(
        "trap 'echo got-term; exit 3' TERM; echo ready; while true; do sleep 0.05; done",
    );
    ctx.write_config(&c);
    let id = ctx.id("c");
    let child = ctx
        .cmd(&["run", "--bundle", ctx.bundle_str(), &id])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    ctx.wait_status(&id, "running");
    std::thread::sleep(std::time::Duration::from_millis(200));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(stdout(&out), "ready\ngot-term\n");
}

#[test]
fn create_start_kill_delete_by_hand() {
    let ctx = Ctx::new("life");
    let mut c = ctx.default_config();
    c["process"]["args"] = serde_json::json!(["sleep", "100"]);
    c["annotations"] = serde_json::json!({"org.example.key": "value"});
    ctx.write_config(&c);
    let id = ctx.id("c");
    let pid_file = ctx.dir.join("init.pid");
    let out = ctx.capsa(&[
        "create",
        "--bundle",
        ctx.bundle_str(),
        "--pid-file",
        pid_file.to_str().unwrap(),
        &id,
    ]);
    assert_ok(&out);

    let st = ctx.state(&id);
    assert_eq!(st["status"], "created");
    assert_eq!(st["id"], id.as_str());
    assert_eq!(st["bundle"], ctx.bundle_str());
    assert_eq!(st["annotations"]["org.example.key"], "value");
    assert!(st["ociVersion"].as_str().unwrap().starts_with("1."));
    let pid = st["pid"].as_i64().unwrap();
    assert!(pid > 0 && pid_exists(pid));
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap().trim(),
        pid.to_string()
    );
    // The init already is in its namespaces but the user process has not
    // run: it is still capsa, named for its part until it execs.
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_eq!(comm.trim(), capsa::process::INIT_COMM);

    let list = ctx.capsa(&["list", "--format", "json"]);
    assert_ok(&list);
    let l: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(l[0]["id"], id.as_str());
    assert_eq!(l[0]["status"], "created");

    assert_ok(&ctx.capsa(&["start", &id]));
    assert_eq!(ctx.status(&id), "running");
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_eq!(comm.trim(), "sleep");
    assert_fails_with(&ctx.capsa(&["start", &id]), "already running");
    assert_fails_with(&ctx.capsa(&["delete", &id]), "not stopped");
    assert!(
        pid_exists(pid),
        "delete without --force must not touch a running container"
    );

    assert_ok(&ctx.capsa(&["kill", &id, "SIGKILL"]));
    ctx.wait_status(&id, "stopped");
    assert_eq!(ctx.state(&id)["pid"], 0);
    assert_fails_with(&ctx.capsa(&["kill", &id, "KILL"]), "container not running");
    assert_fails_with(&ctx.capsa(&["start", &id]), "stopped");
    assert_ok(&ctx.capsa(&["delete", &id]));
    assert_fails_with(&ctx.capsa(&["state", &id]), "does not exist");
    assert!(ctx.state_entries().is_empty());
}

#[test]
fn kill_defaults_to_sigterm_and_takes_names_and_numbers() {
    let ctx = Ctx::new("kill");
    let mut c = ctx.sh_config(
        "trap 'echo TERM >> /tmp/sigs' TERM; trap 'echo USR1 >> /tmp/sigs' USR1; trap 'echo HUP >> /tmp/sigs; exit 0' HUP; \
         while true; do sleep 0.05; done",
    );
    c["root"]["readonly"] = false.into();
    ctx.write_config(&c);
    let id = ctx.id("c");
    assert_ok(&ctx.capsa(&["run", "--detach", "--bundle", ctx.bundle_str(), &id]));
    std::thread::sleep(std::time::Duration::from_millis(200));
    let sigs = ctx.bundle.join("rootfs/tmp/sigs");
    let wait_lines = |n: usize| {
        for _ in 0..300 {
            if std::fs::read_to_string(&sigs)
                .map(|s| s.lines().count())
                .unwrap_or(0)
                >= n
            {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("signal {n} not seen");
    };
    assert_ok(&ctx.capsa(&["kill", &id]));
    wait_lines(1);
    assert_ok(&ctx.capsa(&["kill", &id, "USR1"]));
    wait_lines(2);
    assert_ok(&ctx.capsa(&["kill", &id, "1"]));
    ctx.wait_status(&id, "stopped");
    assert_eq!(std::fs::read_to_string(&sigs).unwrap(), "TERM\nUSR1\nHUP\n");
    assert_fails_with(&ctx.capsa(&["kill", &id, "NOSUCHSIG"]), "invalid signal");
    assert_ok(&ctx.capsa(&["delete", &id]));
}

#[test]
fn delete_of_a_created_container_kills_its_init() {
    let ctx = Ctx::new("delcreated");
    let id = ctx.id("c");
    assert_ok(&ctx.capsa(&["create", "--bundle", ctx.bundle_str(), &id]));
    let pid = ctx.state(&id)["pid"].as_i64().unwrap();
    assert!(pid_exists(pid));
    assert_ok(&ctx.capsa(&["delete", &id]));
    for _ in 0..200 {
        if !pid_exists(pid)
            || std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z"))
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let gone = !pid_exists(pid)
        || std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z"));
    assert!(gone, "init {pid} still alive after delete");
    assert!(ctx.state_entries().is_empty());
}

#[test]
fn kill_all_and_force_delete_reach_every_process() {
    let ctx = Ctx::new("killall");
    let c = ctx.sh_config("sleep 100 & sleep 100 & wait");
    ctx.write_config(&c);
    let id = ctx.id("c");
    assert_ok(&ctx.capsa(&["run", "-d", "--bundle", ctx.bundle_str(), &id]));
    let pid = ctx.state(&id)["pid"].as_i64().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap();
    let kids: Vec<i64> = children
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!(kids.len(), 2, "{children}");
    assert_ok(&ctx.capsa(&["kill", "--all", &id, "KILL"]));
    ctx.wait_status(&id, "stopped");
    for k in kids {
        assert!(
            !pid_exists(k)
                || std::fs::read_to_string(format!("/proc/{k}/stat"))
                    .is_ok_and(|s| s.contains(") Z"))
        );
    }
    assert_ok(&ctx.capsa(&["delete", &id]));

    assert_ok(&ctx.capsa(&["run", "-d", "--bundle", ctx.bundle_str(), &id]));
    assert_eq!(ctx.status(&id), "running");
    assert_ok(&ctx.capsa(&["delete", "--force", &id]));
    assert!(ctx.state_entries().is_empty());
}

#[test]
fn run_keep_leaves_a_stopped_container() {
    let ctx = Ctx::new("keep");
    ctx.write_config(&ctx.default_config());
    let id = ctx.id("c");
    assert_ok(&ctx.capsa(&["run", "--keep", "--bundle", ctx.bundle_str(), &id]));
    assert_eq!(ctx.status(&id), "stopped");
    assert_ok(&ctx.capsa(&["delete", &id]));
}

#[test]
fn config_changes_after_create_do_not_affect_the_container() {
    let ctx = Ctx::new("cfgchange");
    let mut c = ctx.sh_config("hostname");
    c["hostname"] = "before".into();
    ctx.write_config(&c);
    let id = ctx.id("c");
    let out_path = ctx.dir.join("out");
    let out_file = std::fs::File::create(&out_path).unwrap();
    let st = ctx
        .cmd(&["create", "--bundle", ctx.bundle_str(), &id])
        .stdout(out_file)
        .status()
        .unwrap();
    assert!(st.success());
    c["hostname"] = "after".into();
    c["annotations"] = serde_json::json!({"x": "y"});
    ctx.write_config(&c);
    assert_ok(&ctx.capsa(&["start", &id]));
    ctx.wait_status(&id, "stopped");
    assert_eq!(std::fs::read_to_string(&out_path).unwrap(), "before\n");
    assert!(ctx.state(&id).get("annotations").is_none());
    assert_ok(&ctx.capsa(&["delete", &id]));
}
