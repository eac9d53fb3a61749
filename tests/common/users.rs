//! An ordinary user made by a test, with subordinate ids, for the rootless
//! tests (tests/rootless.rs, and integration/podman.rs through a `#[path]`
//! module). On drop its processes are killed, then the user and its lines
//! of /etc/subuid and /etc/subgid are removed, pass or fail.
#![allow(dead_code)]

use std::process::Command;

pub struct TestUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

impl TestUser {
    /// `useradd NAME` (no home), then `usermod --add-subuids/--add-subgids`
    /// of `count` ids from `sub_start` (besides any range useradd adds by
    /// itself). `name` must be unique on the host: tests run in parallel.
    pub fn create(name: &str, sub_start: u32, count: u32) -> TestUser {
        let _ = Command::new("userdel").arg(name).output();
        let st = Command::new("useradd")
            .args(["--no-create-home", "--shell", "/bin/sh", name])
            .status()
            .expect("run useradd");
        assert!(st.success(), "useradd {name} failed");
        // From here on, the drop removes it.
        let mut user = TestUser {
            name: name.to_string(),
            uid: 0,
            gid: 0,
        };
        let range = format!("{sub_start}-{}", sub_start + count - 1);
        let st = Command::new("usermod")
            .args(["--add-subuids", &range, "--add-subgids", &range, name])
            .status()
            .expect("run usermod");
        assert!(st.success(), "usermod --add-subuids failed");
        let id = |flag: &str| -> u32 {
            let o = Command::new("id").args([flag, name]).output().unwrap();
            String::from_utf8_lossy(&o.stdout).trim().parse().unwrap()
        };
        (user.uid, user.gid) = (id("-u"), id("-g"));
        user
    }

    /// The user's processes, by `pgrep -u`.
    pub fn processes(&self) -> String {
        Command::new("pgrep")
            .args(["-u", &self.name])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        // Whatever the user still runs goes first (userdel refuses a user
        // with processes); a process may be forking as it is killed.
        for _ in 0..100 {
            let _ = Command::new("pkill")
                .args(["-KILL", "-u", &self.name])
                .status();
            if self.processes().is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = Command::new("userdel").arg(&self.name).status();
        for f in ["/etc/subuid", "/etc/subgid"] {
            if let Ok(text) = std::fs::read_to_string(f) {
                let kept: String = text
                    .lines()
                    .filter(|l| !l.starts_with(&format!("{}:", self.name)))
                    .map(|l| format!("{l}\n"))
                    .collect();
                let _ = std::fs::write(f, kept);
            }
        }
    }
}
