//! The runtime-spec features document (`capsa features`): what this build
//! of capsa really supports today, so clients such as containerd 2 and
//! dockerd do not ask for more.

use crate::spec::OCI_VERSION;

pub fn document() -> serde_json::Value {
    let caps: Vec<String> = {
        let mut v: Vec<String> = caps::all().iter().map(|c| c.to_string()).collect();
        v.sort();
        v
    };
    let mut mount_options: Vec<&str> = vec![
        "async",
        "atime",
        "bind",
        "defaults",
        "dev",
        "diratime",
        "dirsync",
        "exec",
        "idmap",
        "iversion",
        "lazytime",
        "loud",
        "mand",
        "noatime",
        "nodev",
        "nodiratime",
        "noexec",
        "noiversion",
        "nolazytime",
        "nomand",
        "norelatime",
        "nostrictatime",
        "nosuid",
        "nosymfollow",
        "private",
        "rbind",
        "relatime",
        "remount",
        "ridmap",
        "ro",
        "rprivate",
        "rshared",
        "rslave",
        "runbindable",
        "rw",
        "shared",
        "silent",
        "slave",
        "strictatime",
        "suid",
        "symfollow",
        "sync",
        "tmpcopyup",
        "unbindable",
    ];
    mount_options.extend_from_slice(crate::rootfs::mount_options::RECURSIVE_OPTIONS);
    mount_options.sort_unstable();
    serde_json::json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": mount_options,
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "capabilities": caps,
            // systemd: --systemd-cgroup makes the cgroup a transient unit of
            // the system's systemd (a user's instance is not supported).
            "cgroup": {"v1": true, "v2": true, "systemd": true, "systemdUser": false, "rdma": true},
            "seccomp": {
                "enabled": true,
                "actions": [
                    "SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
                    "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY", "SCMP_ACT_TRACE",
                    "SCMP_ACT_TRAP"
                ],
                "operators": [
                    "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT",
                    "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"
                ],
                "archs": crate::seccomp::architectures(),
                "knownFlags": [
                    "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_TSYNC",
                    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"
                ],
                // What this kernel accepts, asked of it.
                "supportedFlags": crate::seccomp::supported_flags()
            },
            "apparmor": {"enabled": false},
            "selinux": {"enabled": false},
            "intelRdt": {"enabled": false},
            // Moved in at create and back at delete (src/netdev.rs).
            "netDevices": {"enabled": true},
            // set_mempolicy(2) in the init and every exec (src/process/attrs.rs).
            "memoryPolicy": {
                "modes": [
                    "MPOL_DEFAULT", "MPOL_PREFERRED", "MPOL_BIND", "MPOL_INTERLEAVE", "MPOL_LOCAL",
                    "MPOL_PREFERRED_MANY", "MPOL_WEIGHTED_INTERLEAVE"
                ],
                "flags": ["MPOL_F_NUMA_BALANCING", "MPOL_F_RELATIVE_NODES", "MPOL_F_STATIC_NODES"]
            },
            // uidMappings/gidMappings of bind mounts (src/rootfs/idmap.rs).
            "mountExtensions": {"idmap": {"enabled": true}}
        },
        // Config annotations capsa acts on and a client should not take
        // from untrusted users: capsa acts on none.
        "potentiallyUnsafeConfigAnnotations": [],
        "annotations": {
            "org.opencontainers.runtime-spec.version": OCI_VERSION,
            "io.github.capsa.version": env!("CARGO_PKG_VERSION"),
            "io.github.capsa.cgroup.v1.controllers":
                "blkio,cpu,cpuacct,cpuset,devices,freezer,hugetlb,memory,net_cls,net_prio,pids,rdma",
            "io.github.capsa.cgroup.v2.controllers": "cpu,cpuset,hugetlb,io,memory,pids,rdma",
            "io.github.capsa.cgroup.v2.devices": "ebpf",
            "io.github.capsa.cgroup.host": crate::cgroups::host_summary()
        }
    })
}
