//! Kubernetes' path to the runtime: a CRI v1 client (what kubelet does)
//! talking to containerd 1.6's CRI plugin, which writes the bundles and
//! drives the runtime through `containerd-shim-runc-v2` as the runtime
//! handler `capsa` (`BinaryName` = the runtime under test, cgroupfs driver).
//!
//! Each test starts a private containerd (own root, state, sockets, CNI
//! configuration, IPAM store, network namespaces under its state dir, a
//! bridge and a /24 of its own, a stream server on a random local port),
//! imports a busybox image and a pause image built offline, and tears all
//! of it down when it ends, pass or fail. What is asserted is seen from
//! inside the containers (ExecSync) or through CRI.
//!
//! `CAPSA_CLIENT_RUNTIME=/usr/sbin/runc` runs the same tests against runc.

mod common;

use common::*;
use k8s_cri::v1 as cri;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};
use tonic::transport::{Channel, Endpoint, Uri};

const CNI_BIN: &str = "/usr/lib/cni";
const BUSYBOX: &str = "docker.io/library/busybox:capsa";
const PAUSE: &str = "docker.io/library/pause:capsa";
const HANDLER: &str = "capsa";
/// Kubernetes' pod namespace for the pods the tests make.
const K8S_NAMESPACE: &str = "capsa-cri";
/// What one CRI call may take before the test fails (kubelet's default is 2 min).
const RPC_TIMEOUT: Duration = Duration::from_secs(90);

/// Calls one CRI method on `$c`'s runtime service and waits for it.
macro_rules! call {
    ($c:expr, $method:ident, $req:expr) => {{
        let mut client = $c.client.clone();
        $c.rpc(stringify!($method), client.$method($req))
    }};
}

/// A private containerd with the CRI plugin on and a connected client.
struct Cri {
    rt: tokio::runtime::Runtime,
    client: RuntimeServiceClient<Channel>,
    daemon: Child,
    /// The CNI bridge (created by the bridge plugin, removed on drop).
    bridge: String,
    /// The CNI network's name (its cached results under /var/lib/cni).
    network: String,
    /// The first three octets of the pods' /24, with a trailing dot.
    subnet: String,
    /// The cgroup (in every hierarchy) that holds the pods' cgroups.
    cgroup_root: String,
    /// Ids of the pods made, for the clean-up of CNI's cache.
    pods: std::cell::RefCell<Vec<String>>,
    dir: Scratch,
}

/// A pod sandbox and the configuration it was made from.
struct Pod {
    id: String,
    config: cri::PodSandboxConfig,
}

impl Cri {
    fn start() -> Cri {
        require("containerd");
        require("ctr");
        require("containerd-shim-runc-v2");
        for p in ["bridge", "host-local", "loopback", "portmap"] {
            assert!(
                Path::new(CNI_BIN).join(p).is_file(),
                "{CNI_BIN}/{p} is missing: run `make integration-deps` \
                 (apt-get install containernetworking-plugins)"
            );
        }
        let dir = Scratch::new("capsa-cri");
        let name = unique("capsa-cri");
        let n: u32 = name.rsplit('-').next().unwrap().parse().unwrap();
        let bridge = format!("ccri{:x}x{n}", std::process::id());
        let subnet = free_subnet(n);
        let d = &dir.path;
        for sub in ["cni", "logs", "ipam"] {
            fs::create_dir_all(d.join(sub)).unwrap();
        }
        // No gateway and no masquerading: the plugin then neither turns on
        // the host's ip_forward nor writes iptables rules; the pods still
        // get a veth on the bridge and an address from host-local.
        let cni = format!(
            r#"{{"cniVersion":"0.4.0","name":"{name}","plugins":[
  {{"type":"bridge","bridge":"{bridge}","isGateway":false,"ipMasq":false,
    "ipam":{{"type":"host-local","ranges":[[{{"subnet":"{subnet}0/24"}}]],"dataDir":"{ipam}"}}}},
  {{"type":"portmap","capabilities":{{"portMappings":true}}}}]}}"#,
            ipam = d.join("ipam").display(),
        );
        fs::write(d.join("cni/10-capsa.conflist"), cni).unwrap();
        let cri_plugin = r#"plugins."io.containerd.grpc.v1.cri""#;
        let config = format!(
            r#"version = 2
root = "{root}"
state = "{state}"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
[{cri_plugin}]
  sandbox_image = "{PAUSE}"
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  netns_mounts_under_state_dir = true
  [{cri_plugin}.containerd]
    default_runtime_name = "{HANDLER}"
    [{cri_plugin}.containerd.runtimes.{HANDLER}]
      runtime_type = "io.containerd.runc.v2"
      [{cri_plugin}.containerd.runtimes.{HANDLER}.options]
        BinaryName = "{binary}"
        Root = "{runtime_root}"
        SystemdCgroup = false
  [{cri_plugin}.cni]
    bin_dir = "{CNI_BIN}"
    conf_dir = "{cni}"
    max_conf_num = 1
"#,
            root = d.join("root").display(),
            state = d.join("state").display(),
            sock = d.join("containerd.sock").display(),
            binary = runtime().display(),
            runtime_root = d.join("runtime-root").display(),
            cni = d.join("cni").display(),
        );
        fs::write(d.join("config.toml"), config).unwrap();
        let daemon = spawn_logged(
            Command::new("containerd")
                .arg("--config")
                .arg(d.join("config.toml")),
            &d.join("containerd.log"),
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let channel = connect(&rt, d.join("containerd.sock"));
        let c = Cri {
            rt,
            client: RuntimeServiceClient::new(channel),
            daemon,
            bridge,
            network: name.clone(),
            subnet,
            cgroup_root: name,
            pods: Default::default(),
            dir,
        };
        wait_for(30, "containerd's CRI plugin to answer", || {
            call!(c, version, cri::VersionRequest::default()).ok()
        });
        // kubelet waits for the runtime and the network to be ready.
        wait_for(30, "CRI RuntimeReady and NetworkReady", || {
            let st = call!(c, status, cri::StatusRequest { verbose: false }).ok()?;
            let conds = st.status?.conditions;
            conds.iter().all(|c| c.status).then_some(())
        });
        for img in [busybox_image(), pause_image()] {
            ok(run_limited(
                120,
                "ctr",
                &[
                    "-a",
                    &c.address(),
                    "-n",
                    "k8s.io",
                    "images",
                    "import",
                    img.to_str().unwrap(),
                ],
            ));
        }
        // CRI learns of imported images from containerd's events.
        let mut images = ImageServiceClient::new(c.channel());
        for img in [BUSYBOX, PAUSE] {
            wait_for(20, &format!("CRI to know the image {img}"), || {
                let req = cri::ImageStatusRequest {
                    image: Some(cri::ImageSpec {
                        image: img.into(),
                        ..Default::default()
                    }),
                    verbose: false,
                };
                let st = c.rpc("ImageStatus", images.image_status(req)).ok()?;
                st.image.map(|_| ())
            });
        }
        c
    }

    /// A channel to containerd's socket (gRPC over a unix socket).
    fn channel(&self) -> Channel {
        connect(&self.rt, self.dir.join("containerd.sock"))
    }

    fn address(&self) -> String {
        self.dir.join("containerd.sock").display().to_string()
    }

    /// Runs one CRI call to its end; panics if containerd does not answer
    /// within RPC_TIMEOUT.
    fn rpc<T>(
        &self,
        what: &str,
        fut: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, tonic::Status> {
        self.try_rpc(RPC_TIMEOUT, fut)
            .unwrap_or_else(|| panic!("CRI {what}: no answer within {RPC_TIMEOUT:?}"))
    }

    fn try_rpc<T>(
        &self,
        limit: Duration,
        fut: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Option<Result<T, tonic::Status>> {
        let r = self
            .rt
            .block_on(async { tokio::time::timeout(limit, fut).await });
        r.ok().map(|r| r.map(|r| r.into_inner()))
    }

    /// The runtime's state root for CRI's containerd namespace.
    fn runtime_root(&self) -> PathBuf {
        self.dir.join("runtime-root/k8s.io")
    }

    /// A pod as kubelet describes it: own network and IPC namespaces,
    /// a PID namespace per container, a log directory and a cgroup parent.
    fn pod_config(&self, name: &str) -> cri::PodSandboxConfig {
        let uid = unique("uid");
        cri::PodSandboxConfig {
            metadata: Some(cri::PodSandboxMetadata {
                name: name.into(),
                uid: uid.clone(),
                namespace: K8S_NAMESPACE.into(),
                attempt: 0,
            }),
            hostname: name.into(),
            log_directory: self.dir.join(&format!("logs/{name}")).display().to_string(),
            linux: Some(cri::LinuxPodSandboxConfig {
                cgroup_parent: format!("/{}/pod{uid}", self.cgroup_root),
                security_context: Some(cri::LinuxSandboxSecurityContext {
                    namespace_options: Some(namespaces(
                        cri::NamespaceMode::Pod,
                        cri::NamespaceMode::Container,
                        cri::NamespaceMode::Pod,
                    )),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn run_pod(&self, name: &str, edit: impl FnOnce(&mut cri::PodSandboxConfig)) -> Pod {
        let mut config = self.pod_config(name);
        edit(&mut config);
        let resp = call!(
            self,
            run_pod_sandbox,
            cri::RunPodSandboxRequest {
                config: Some(config.clone()),
                runtime_handler: HANDLER.into(),
            }
        )
        .unwrap_or_else(|e| panic!("RunPodSandbox {name}: {e}"));
        self.pods.borrow_mut().push(resp.pod_sandbox_id.clone());
        Pod {
            id: resp.pod_sandbox_id,
            config,
        }
    }

    fn pod_status(&self, pod: &Pod) -> cri::PodSandboxStatusResponse {
        call!(
            self,
            pod_sandbox_status,
            cri::PodSandboxStatusRequest {
                pod_sandbox_id: pod.id.clone(),
                verbose: true,
            }
        )
        .expect("PodSandboxStatus")
    }

    /// The pod's network namespace file, from the sandbox's OCI spec that
    /// containerd reports in the verbose status.
    fn pod_netns(&self, pod: &Pod) -> PathBuf {
        let st = self.pod_status(pod);
        let info: serde_json::Value =
            serde_json::from_str(st.info.get("info").expect("verbose info")).unwrap();
        let ns = info["runtimeSpec"]["linux"]["namespaces"]
            .as_array()
            .expect("namespaces in the sandbox spec")
            .iter()
            .find(|n| n["type"] == "network")
            .expect("a network namespace");
        PathBuf::from(ns["path"].as_str().expect("a netns path"))
    }

    /// Creates and starts a container in `pod`: `cmd` is its command
    /// (Kubernetes' command, the image's entrypoint is replaced); it shares
    /// the pod's namespace options unless `edit` changes them.
    fn start_container(
        &self,
        pod: &Pod,
        name: &str,
        cmd: &[&str],
        edit: impl FnOnce(&mut cri::ContainerConfig),
    ) -> String {
        let ns = pod
            .config
            .linux
            .as_ref()
            .and_then(|l| l.security_context.as_ref())
            .and_then(|s| s.namespace_options.clone());
        let mut config = cri::ContainerConfig {
            metadata: Some(cri::ContainerMetadata {
                name: name.into(),
                attempt: 0,
            }),
            image: Some(cri::ImageSpec {
                image: BUSYBOX.into(),
                ..Default::default()
            }),
            command: cmd.iter().map(|s| s.to_string()).collect(),
            log_path: format!("{name}.log"),
            linux: Some(cri::LinuxContainerConfig {
                resources: None,
                security_context: Some(cri::LinuxContainerSecurityContext {
                    namespace_options: ns,
                    ..Default::default()
                }),
            }),
            ..Default::default()
        };
        edit(&mut config);
        let id = call!(
            self,
            create_container,
            cri::CreateContainerRequest {
                pod_sandbox_id: pod.id.clone(),
                config: Some(config),
                sandbox_config: Some(pod.config.clone()),
            }
        )
        .unwrap_or_else(|e| panic!("CreateContainer {name}: {e}"))
        .container_id;
        call!(
            self,
            start_container,
            cri::StartContainerRequest {
                container_id: id.clone()
            }
        )
        .unwrap_or_else(|e| panic!("StartContainer {name}: {e}"));
        id
    }

    /// ExecSync `sh -c script` (kubelet's probes and `kubectl exec` without
    /// a terminal).
    fn exec(&self, id: &str, script: &str) -> cri::ExecSyncResponse {
        call!(
            self,
            exec_sync,
            cri::ExecSyncRequest {
                container_id: id.into(),
                cmd: vec!["sh".into(), "-c".into(), script.into()],
                timeout: 30,
            }
        )
        .unwrap_or_else(|e| panic!("ExecSync {script:?}: {e}"))
    }

    /// ExecSync that must exit 0; returns its stdout.
    #[track_caller]
    fn sh(&self, id: &str, script: &str) -> String {
        let r = self.exec(id, script);
        let out = String::from_utf8_lossy(&r.stdout).into_owned();
        assert_eq!(
            r.exit_code,
            0,
            "exec {script:?} failed: stdout {out:?} stderr {:?}",
            String::from_utf8_lossy(&r.stderr)
        );
        out
    }

    fn status(&self, id: &str) -> cri::ContainerStatus {
        call!(
            self,
            container_status,
            cri::ContainerStatusRequest {
                container_id: id.into(),
                verbose: false,
            }
        )
        .unwrap_or_else(|e| panic!("ContainerStatus {id}: {e}"))
        .status
        .expect("a container status")
    }

    /// StopContainer with a grace period; returns how long it took.
    fn stop(&self, id: &str, grace: i64) -> Duration {
        let t = Instant::now();
        call!(
            self,
            stop_container,
            cri::StopContainerRequest {
                container_id: id.into(),
                timeout: grace,
            }
        )
        .unwrap_or_else(|e| panic!("StopContainer {id}: {e}"));
        t.elapsed()
    }

    fn remove(&self, id: &str) {
        call!(
            self,
            remove_container,
            cri::RemoveContainerRequest {
                container_id: id.into()
            }
        )
        .unwrap_or_else(|e| panic!("RemoveContainer {id}: {e}"));
    }

    /// StopPodSandbox then RemovePodSandbox, as kubelet ends a pod.
    fn end_pod(&self, pod: &Pod) {
        let id = pod.id.clone();
        call!(
            self,
            stop_pod_sandbox,
            cri::StopPodSandboxRequest {
                pod_sandbox_id: id.clone()
            }
        )
        .unwrap_or_else(|e| panic!("StopPodSandbox: {e}"));
        call!(
            self,
            remove_pod_sandbox,
            cri::RemovePodSandboxRequest { pod_sandbox_id: id }
        )
        .unwrap_or_else(|e| panic!("RemovePodSandbox: {e}"));
    }

    /// The container's log file (CRI format: `TIME STREAM F|P TEXT`).
    fn log_path(&self, pod: &Pod, name: &str) -> PathBuf {
        Path::new(&pod.config.log_directory).join(format!("{name}.log"))
    }

    /// Waits until the log file holds a stdout line with exactly `text`.
    #[track_caller]
    fn wait_log(&self, path: &Path, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let log = fs::read_to_string(path).unwrap_or_default();
            if log_lines(&log).iter().any(|l| l == text) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no line {text:?} in {}:\n{log}",
                path.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// After every pod is gone: CRI lists nothing, and neither shims,
    /// runtime state, mounts, network namespaces nor the containers'
    /// cgroups are left.
    fn assert_nothing_left(&self, cgroups: &[String], netns: &[PathBuf]) {
        let pods = call!(
            self,
            list_pod_sandbox,
            cri::ListPodSandboxRequest::default()
        )
        .unwrap();
        assert!(pods.items.is_empty(), "pods left: {:?}", pods.items);
        let ctrs = call!(self, list_containers, cri::ListContainersRequest::default()).unwrap();
        assert!(
            ctrs.containers.is_empty(),
            "containers left: {:?}",
            ctrs.containers
        );
        // The shims carry the daemon's address on their command line and
        // exit shortly after their last task is deleted.
        let addr = self.address();
        wait_for(20, "the shims to exit", || {
            pids_with_cmdline(&format!("-address {addr}"))
                .is_empty()
                .then_some(())
        });
        let rt = runtime().display().to_string();
        let root = self.runtime_root().display().to_string();
        let listed = ok(run_limited(20, &rt, &["--root", &root, "list", "-q"]));
        assert_eq!(listed.trim(), "", "runtime state left in {root}");
        let mounts = mounts_under(&self.dir.path);
        assert!(mounts.is_empty(), "mounts left: {mounts:?}");
        for ns in netns {
            assert!(!ns.exists(), "netns {} left", ns.display());
        }
        for id in self.pods.borrow().iter() {
            for f in self.cni_cache(id) {
                assert!(!f.exists(), "CNI cache {} left", f.display());
            }
        }
        for cg in cgroups {
            assert!(!cgroup_exists(cg), "cgroup {cg} left");
        }
    }

    /// libcni's cached results for a pod: its network's and loopback's.
    fn cni_cache(&self, pod_id: &str) -> [PathBuf; 2] {
        let cache = Path::new("/var/lib/cni/results");
        [
            cache.join(format!("{}-{pod_id}-eth0", self.network)),
            cache.join(format!("cni-loopback-{pod_id}-lo")),
        ]
    }

    /// The cgroup path CRI gives a container (or sandbox) of `pod` with the
    /// cgroupfs driver.
    fn cgroup_of(&self, pod: &Pod, id: &str) -> String {
        let parent = &pod.config.linux.as_ref().unwrap().cgroup_parent;
        format!("{parent}/{id}")
    }
}

impl Drop for Cri {
    fn drop(&mut self) {
        // As kubelet would: stop and remove every pod (their containers go
        // with them), without panicking again if containerd is stuck.
        let limit = Duration::from_secs(30);
        let mut client = self.client.clone();
        if let Some(Ok(list)) = self.try_rpc(
            limit,
            client.list_pod_sandbox(cri::ListPodSandboxRequest::default()),
        ) {
            for p in list.items {
                let mut client = self.client.clone();
                let _ = self.try_rpc(
                    limit,
                    client.stop_pod_sandbox(cri::StopPodSandboxRequest {
                        pod_sandbox_id: p.id.clone(),
                    }),
                );
                let mut client = self.client.clone();
                let _ = self.try_rpc(
                    limit,
                    client.remove_pod_sandbox(cri::RemovePodSandboxRequest {
                        pod_sandbox_id: p.id,
                    }),
                );
            }
        }
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        kill_matching(&format!("-address {}", self.address()));
        // Containers CRI could not remove: the runtime kills and deletes them.
        let rt = runtime().display().to_string();
        let root = self.runtime_root().display().to_string();
        if Path::new(&root).exists() {
            let listed = stdout(&run_limited(20, &rt, &["--root", &root, "list", "-q"]));
            for id in listed.lines().filter(|l| !l.is_empty()) {
                let _ = run_limited(20, &rt, &["--root", &root, "delete", "--force", id]);
            }
        }
        remove_cgroup(&self.cgroup_root);
        let _ = run_limited(10, "ip", &["link", "del", &self.bridge]);
        // CNI's result cache (libcni's, not configurable through CRI) keeps
        // an entry per pod and network until the network is torn down.
        for id in self.pods.borrow().iter() {
            for f in self.cni_cache(id) {
                let _ = fs::remove_file(f);
            }
        }
        // Only if empty: another CNI user may be using it.
        let _ = fs::remove_dir("/var/lib/cni/results");
        let _ = fs::remove_dir("/var/lib/cni");
        if std::thread::panicking()
            && let Ok(log) = fs::read_to_string(self.dir.join("containerd.log"))
        {
            eprintln!("containerd.log, warnings and errors:");
            for l in log.lines().filter(|l| !l.contains("level=info")) {
                eprintln!("  {l}");
            }
        }
        // The Scratch (dropped next) unmounts what is left under the dir:
        // network namespaces, shm, rootfs overlays.
    }
}

fn connect(rt: &tokio::runtime::Runtime, sock: PathBuf) -> Channel {
    // The channel's worker task needs the runtime; it connects on first use.
    rt.block_on(async {
        Endpoint::try_from("http://[::]:50051")
            .unwrap()
            .connect_with_connector_lazy(tower::service_fn(move |_: Uri| {
                let sock = sock.clone();
                async move {
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                        tokio::net::UnixStream::connect(sock).await?,
                    ))
                }
            }))
    })
}

fn namespaces(
    net: cri::NamespaceMode,
    pid: cri::NamespaceMode,
    ipc: cri::NamespaceMode,
) -> cri::NamespaceOption {
    cri::NamespaceOption {
        network: net as i32,
        pid: pid as i32,
        ipc: ipc as i32,
        ..Default::default()
    }
}

/// A /24 in 10.213.0.0/16 that no route on this host uses yet.
fn free_subnet(n: u32) -> String {
    let routes = stdout(&run_limited(
        10,
        "ip",
        &["-4", "route", "show", "table", "all"],
    ));
    let start = std::process::id().wrapping_mul(7).wrapping_add(n * 31);
    (0..250)
        .map(|i| format!("10.213.{}.", (start + i) % 250 + 1))
        .find(|p| !routes.contains(p.as_str()))
        .expect("a free /24 in 10.213.0.0/16")
}

/// The text of a CRI log file's complete stdout lines.
fn log_lines(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|l| {
            let mut f = l.splitn(4, ' ');
            let _time = f.next()?;
            let stream = f.next()?;
            let tag = f.next()?;
            // A terminal's lines end in \r\n; CRI splits at the \n.
            (stream == "stdout" && tag == "F")
                .then(|| f.next().unwrap_or("").trim_end_matches('\r').to_string())
        })
        .collect()
}

fn string_of(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A capability set from /proc/PID/status text (`CapEff:` etc.).
fn cap_set(status: &str, field: &str) -> u64 {
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in {status}"));
    u64::from_str_radix(line[field.len()..].trim(), 16).unwrap()
}

fn status_field(status: &str, field: &str) -> String {
    status
        .lines()
        .find(|l| l.starts_with(field))
        .map(|l| l[field.len()..].trim().to_string())
        .unwrap_or_else(|| panic!("no {field} in {status}"))
}

const CAP_CHOWN: u64 = 1 << 0;
const CAP_NET_ADMIN: u64 = 1 << 12;

#[test]
fn pod_network_exec_logs_stop_and_nothing_left() {
    let c = Cri::start();
    // The pod's sysctls (namespaced ones: net for the pod's network
    // namespace, kernel.shm* for its IPC namespace) reach its containers.
    let pod = c.run_pod("net", |p| {
        let sysctls = &mut p.linux.as_mut().unwrap().sysctls;
        sysctls.insert("net.ipv4.ip_unprivileged_port_start".into(), "80".into());
        sysctls.insert("kernel.shm_rmid_forced".into(), "1".into());
        // Written by containerd into the pod's resolv.conf, which the
        // runtime binds into each container (no traffic goes there).
        p.dns_config = Some(cri::DnsConfig {
            servers: vec!["192.0.2.53".into()],
            searches: vec!["capsa.test".into()],
            options: vec!["ndots:2".into()],
        });
    });
    let st = c.pod_status(&pod);
    let status = st.status.as_ref().unwrap();
    assert_eq!(status.state, cri::PodSandboxState::SandboxReady as i32);
    let ip = status.network.as_ref().expect("pod network").ip.clone();
    assert!(
        ip.starts_with(&c.subnet),
        "pod ip {ip} not in {}0/24",
        c.subnet
    );
    let netns = c.pod_netns(&pod);
    assert!(netns.starts_with(&c.dir.path), "{}", netns.display());

    let script = "echo \"started in $(pwd) as $GREETING\"; \
        trap 'echo got-term; exit 0' TERM; \
        while :; do if [ -e /tmp/tick ]; then rm -f /tmp/tick; echo tick; fi; sleep 0.1; done";
    let main = c.start_container(&pod, "main", &["sh", "-c"], |cfg| {
        cfg.args = vec![script.into()];
        cfg.working_dir = "/home/user".into();
        cfg.envs = vec![cri::KeyValue {
            key: "GREETING".into(),
            value: "hello cri".into(),
        }];
    });
    let log = c.log_path(&pod, "main");
    c.wait_log(&log, "started in /home/user as hello cri");

    // The pod's own network namespace: lo and eth0 with the pod's address,
    // nothing else.
    let addrs = c.sh(&main, "ip -o addr show");
    assert!(
        addrs.contains("lo") && addrs.contains("inet 127.0.0.1/8"),
        "{addrs}"
    );
    assert!(
        addrs.contains("eth0") && addrs.contains(&format!("inet {ip}/24")),
        "{addrs}"
    );
    let links = c.sh(&main, "ls /sys/class/net | sort | tr '\\n' ' '");
    assert_eq!(links.trim(), "eth0 lo");
    let host_net = fs::read_link("/proc/self/ns/net").unwrap();
    let net = c.sh(&main, "readlink /proc/self/ns/net");
    assert_ne!(net.trim(), host_net.to_str().unwrap());

    // The container's own PID namespace, its command as pid 1; exec gets
    // the container's environment and working directory.
    let sysctls = c.sh(
        &main,
        "cat /proc/sys/net/ipv4/ip_unprivileged_port_start /proc/sys/kernel/shm_rmid_forced",
    );
    assert_eq!(sysctls, "80\n1\n");
    let init = c.sh(&main, "tr '\\0' ' ' < /proc/1/cmdline");
    assert!(init.starts_with("sh -c echo"), "{init}");
    assert_eq!(
        c.sh(&main, "echo $GREETING; pwd"),
        "hello cri\n/home/user\n"
    );
    assert_eq!(c.sh(&main, "hostname"), "net\n");
    // The pod's hostname, hosts and resolv.conf files, bound in by CRI.
    assert_eq!(c.sh(&main, "cat /etc/hostname"), "net\n");
    let resolv = c.sh(&main, "cat /etc/resolv.conf");
    for l in [
        "nameserver 192.0.2.53",
        "search capsa.test",
        "options ndots:2",
    ] {
        assert!(resolv.lines().any(|x| x == l), "{resolv}");
    }
    assert!(c.sh(&main, "cat /etc/hosts").contains("localhost"));

    // ExecSync: exit codes and both streams come back.
    let r = c.exec(&main, "echo out; echo oops >&2; exit 3");
    assert_eq!(r.exit_code, 3);
    assert_eq!(string_of(&r.stdout), "out\n");
    assert_eq!(string_of(&r.stderr), "oops\n");
    // A command that is not there: the runtime's error comes back through
    // the shim (kubelet reports it for a failed probe).
    let missing = call!(
        c,
        exec_sync,
        cri::ExecSyncRequest {
            container_id: main.clone(),
            cmd: vec!["no-such-probe".into()],
            timeout: 10,
        }
    );
    match missing {
        Err(e) => assert!(
            e.message().contains("executable file not found"),
            "{}",
            e.message()
        ),
        Ok(r) => assert_ne!(r.exit_code, 0, "{r:?}"),
    }
    // Probes run many times: each exec is gone once it returned.
    for i in 0..15 {
        assert_eq!(
            c.sh(&main, &format!("echo probe-{i}")),
            format!("probe-{i}\n")
        );
    }
    let ps = c.sh(&main, "ps -o pid,args");
    assert!(!ps.contains("probe-") && ps.contains("sh -c echo"), "{ps}");
    // ...and a timeout ends the call and the process.
    let t = Instant::now();
    let timed_out = call!(
        c,
        exec_sync,
        cri::ExecSyncRequest {
            container_id: main.clone(),
            cmd: vec!["sleep".into(), "47".into()],
            timeout: 1,
        }
    );
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "ExecSync timeout took {:?}",
        t.elapsed()
    );
    match timed_out {
        Err(e) => assert!(e.message().contains("timeout"), "{e}"),
        Ok(r) => panic!("ExecSync with timeout 1 returned {r:?}"),
    }
    wait_for(10, "the timed-out exec to be killed", || {
        let ps = c.sh(&main, "ps -o args");
        (!ps.contains("sleep 47")).then_some(())
    });

    // The shim keeps the runtime's state where the handler's Root says
    // (the root the clean-up and the final check look in).
    let listed = ok(run_limited(
        20,
        &runtime().display().to_string(),
        &["--root", c.runtime_root().to_str().unwrap(), "list", "-q"],
    ));
    assert!(listed.lines().any(|l| l == main), "{listed}");
    assert!(listed.lines().any(|l| l == pod.id), "{listed}");
    // ...and the shims carry the daemon's address (what the final check
    // and the clean-up look for).
    assert!(!pids_with_cmdline(&format!("-address {}", c.address())).is_empty());
    for f in c.cni_cache(&pod.id) {
        assert!(f.exists(), "no CNI cache {}", f.display());
    }
    // The pod's network namespace is a mount (nsfs) while the pod lives.
    assert!(mounts_under(&netns).contains(&netns), "{}", netns.display());

    // ContainerStatus and ContainerStats.
    let s = c.status(&main);
    assert_eq!(s.state, cri::ContainerState::ContainerRunning as i32);
    assert!(s.started_at > 0 && s.created_at > 0);
    assert_eq!(s.log_path, log.display().to_string());
    assert_eq!(s.metadata.as_ref().unwrap().name, "main");
    let stats = call!(
        c,
        container_stats,
        cri::ContainerStatsRequest {
            container_id: main.clone()
        }
    )
    .expect("ContainerStats")
    .stats
    .expect("stats");
    let cpu = stats
        .cpu
        .and_then(|c| c.usage_core_nano_seconds)
        .map(|v| v.value);
    assert!(cpu.unwrap_or(0) > 0, "cpu usage {cpu:?}");
    let mem = stats
        .memory
        .and_then(|m| m.working_set_bytes)
        .map(|v| v.value);
    assert!(mem.unwrap_or(0) > 0, "memory working set {mem:?}");

    // Log rotation: the file is renamed, ReopenContainerLog makes a new one
    // that gets the lines written after.
    let rotated = log.with_extension("log.1");
    fs::rename(&log, &rotated).unwrap();
    call!(
        c,
        reopen_container_log,
        cri::ReopenContainerLogRequest {
            container_id: main.clone()
        }
    )
    .expect("ReopenContainerLog");
    assert!(log.exists(), "ReopenContainerLog made no new log file");
    c.sh(&main, "touch /tmp/tick");
    c.wait_log(&log, "tick");
    let old = fs::read_to_string(&rotated).unwrap();
    assert!(!log_lines(&old).contains(&"tick".to_string()), "{old}");

    // StopContainer: SIGTERM, which this one handles at once...
    let took = c.stop(&main, 10);
    assert!(took < Duration::from_secs(8), "stop took {took:?}");
    let s = c.status(&main);
    assert_eq!(s.state, cri::ContainerState::ContainerExited as i32);
    assert_eq!(s.exit_code, 0);
    assert!(s.finished_at >= s.started_at);
    c.wait_log(&log, "got-term");
    // kubelet's restart: the same container name, the next attempt.
    let again = c.start_container(
        &pod,
        "main",
        &["sh", "-c", "echo attempt-1; exit 5"],
        |cfg| {
            cfg.metadata.as_mut().unwrap().attempt = 1;
            cfg.log_path = "main-1.log".into();
        },
    );
    let s = wait_for(20, "the restarted container to exit", || {
        let s = c.status(&again);
        (s.state == cri::ContainerState::ContainerExited as i32).then_some(s)
    });
    assert_eq!(s.exit_code, 5);
    c.wait_log(&c.log_path(&pod, "main-1"), "attempt-1");

    // A container with a terminal (`kubectl run -t`): its output reaches
    // the log through the pty the runtime handed the shim.
    let tty = c.start_container(
        &pod,
        "tty",
        &[
            "sh",
            "-c",
            "[ -t 0 ] && [ -t 1 ] && echo on-a-tty; sleep 1000",
        ],
        |cfg| {
            cfg.tty = true;
            cfg.stdin = true;
        },
    );
    c.wait_log(&c.log_path(&pod, "tty"), "on-a-tty");
    c.sh(&tty, "test -c /dev/console");
    c.stop(&tty, 0);
    // A container that ignores SIGTERM is killed when the grace period ends.
    let stubborn = c.start_container(
        &pod,
        "stubborn",
        &[
            "sh",
            "-c",
            "trap '' TERM; echo ready; while :; do sleep 0.1; done",
        ],
        |_| {},
    );
    c.wait_log(&c.log_path(&pod, "stubborn"), "ready");
    let took = c.stop(&stubborn, 2);
    assert!(took >= Duration::from_secs(2), "stop took {took:?}");
    assert!(took < Duration::from_secs(15), "stop took {took:?}");
    let s = c.status(&stubborn);
    assert_eq!(s.state, cri::ContainerState::ContainerExited as i32);
    assert_eq!(s.exit_code, 137);

    for id in [&main, &stubborn, &tty, &again] {
        c.remove(id);
        let gone = call!(
            c,
            container_status,
            cri::ContainerStatusRequest {
                container_id: id.to_string(),
                verbose: false,
            }
        );
        assert!(gone.is_err(), "removed container still has a status");
    }
    let cgroups = vec![
        c.cgroup_of(&pod, &main),
        c.cgroup_of(&pod, &stubborn),
        c.cgroup_of(&pod, &tty),
        c.cgroup_of(&pod, &again),
        c.cgroup_of(&pod, &pod.id),
    ];
    c.end_pod(&pod);
    c.assert_nothing_left(&cgroups, &[netns]);
}

/// The namespaces of the calling process as `readlink` prints them.
fn host_ns(kind: &str) -> String {
    fs::read_link(format!("/proc/self/ns/{kind}"))
        .unwrap()
        .display()
        .to_string()
}

/// `readlink /proc/self/ns/KIND` for each kind, inside the container.
fn container_ns(c: &Cri, id: &str, kinds: &[&str]) -> Vec<String> {
    let script: Vec<String> = kinds
        .iter()
        .map(|k| format!("readlink /proc/self/ns/{k}"))
        .collect();
    c.sh(id, &script.join("; "))
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn host_network_pid_and_ipc_pods() {
    use cri::NamespaceMode::{Container, Node, Pod};
    let c = Cri::start();
    let kinds = ["net", "pid", "ipc", "uts", "mnt"];
    let host: Vec<String> = kinds.iter().map(|k| host_ns(k)).collect();

    // hostNetwork + hostPID + hostIPC: the host's namespaces (and, with
    // the host's network, its UTS namespace), a mount namespace of its own.
    let pod = c.run_pod("hostns", |p| {
        // kubelet sets no hostname for a hostNetwork pod: it keeps the
        // node's (a runtime cannot set one without a UTS namespace).
        p.hostname = String::new();
        pod_secctx(p).namespace_options = Some(namespaces(Node, Node, Node));
    });
    let st = c.pod_status(&pod);
    assert_eq!(st.status.unwrap().network.unwrap_or_default().ip, "");
    let id = c.start_container(&pod, "c", &["sleep", "1001"], |_| {});
    let inside = container_ns(&c, &id, &kinds);
    assert_eq!(inside[..4], host[..4], "net, pid, ipc, uts");
    assert_ne!(inside[4], host[4], "mnt");
    // The host's processes are visible: this test's own pid among them.
    let me = std::process::id();
    assert_eq!(
        c.sh(&id, &format!("tr '\\0' ' ' < /proc/{me}/cmdline")),
        fs::read_to_string(format!("/proc/{me}/cmdline"))
            .unwrap()
            .replace('\0', " ")
    );

    // One host namespace at a time: hostPID alone, then hostIPC alone with
    // a PID namespace per container.
    let mut pods = vec![(pod, id)];
    for (name, ns, same) in [
        (
            "hostpid",
            namespaces(Pod, Node, Pod),
            [false, true, false, false],
        ),
        (
            "hostipc",
            namespaces(Pod, Container, Node),
            [false, false, true, false],
        ),
    ] {
        let pod = c.run_pod(name, |p| pod_secctx(p).namespace_options = Some(ns));
        let id = c.start_container(&pod, "c", &["sleep", "1002"], |_| {});
        let inside = container_ns(&c, &id, &kinds);
        for i in 0..4 {
            assert_eq!(
                inside[i] == host[i],
                same[i],
                "{name}: {} is {}, the host's {}",
                kinds[i],
                inside[i],
                host[i]
            );
        }
        if !same[1] {
            assert_eq!(c.sh(&id, "tr '\\0' ' ' < /proc/1/cmdline"), "sleep 1002 ");
        }
        pods.push((pod, id));
    }

    let mut cgroups = Vec::new();
    for (pod, id) in &pods {
        cgroups.push(c.cgroup_of(pod, id));
        cgroups.push(c.cgroup_of(pod, &pod.id));
        c.end_pod(pod);
    }
    c.assert_nothing_left(&cgroups, &[]);
}

#[test]
fn containers_share_the_pods_network_ipc_and_pid_namespaces() {
    use cri::NamespaceMode::Pod;
    let c = Cri::start();
    // shareProcessNamespace: true.
    let pod = c.run_pod("shared", |p| {
        pod_secctx(p).namespace_options = Some(namespaces(Pod, Pod, Pod));
    });
    // nc's stdin never ends (at the end of /dev/null, CRI's stdin, busybox
    // nc may quit before it read what came in).
    let listener = c.start_container(
        &pod,
        "listener",
        &["sh", "-c", "sleep 1000 | nc -l -p 7777"],
        |_| {},
    );
    let other = c.start_container(&pod, "other", &["sleep", "1002"], |_| {});
    let kinds = ["net", "ipc", "uts", "pid"];
    let a = container_ns(&c, &listener, &kinds);
    let b = container_ns(&c, &other, &kinds);
    assert_eq!(a, b);
    // pid 1 is the pause process, and each sees the other's processes.
    let ps = c.sh(&other, "ps -o pid,args");
    assert!(ps.contains("nc -l -p 7777"), "{ps}");
    let pause = c.sh(&other, "tr '\\0' ' ' < /proc/1/cmdline");
    assert!(pause.starts_with("sh -c trap"), "{pause}");
    assert!(c.sh(&listener, "ps -o args").contains("sleep 1002"));
    // Each sits in the cgroup CRI named under the pod's parent: the pause
    // process in the sandbox's, the others in their own.
    let cg = |pid: &str| {
        let text = c.sh(&other, &format!("cat /proc/{pid}/cgroup"));
        text.lines()
            .find(|l| {
                l.split(':')
                    .nth(1)
                    .is_some_and(|k| k.split(',').any(|k| k == "pids"))
            })
            .or_else(|| text.lines().find(|l| l.starts_with("0::")))
            .map(|l| l.splitn(3, ':').nth(2).unwrap().to_string())
            .unwrap_or_else(|| panic!("{text}"))
    };
    assert_eq!(cg("1"), c.cgroup_of(&pod, &pod.id));
    assert_eq!(cg("self"), c.cgroup_of(&pod, &other));
    // The pod's /dev/shm is one.
    c.sh(&listener, "echo shared > /dev/shm/mark");
    assert_eq!(c.sh(&other, "cat /dev/shm/mark"), "shared\n");
    assert_eq!(c.sh(&other, "hostname"), "shared\n");
    // Same network namespace: the other container reaches the listener
    // on the pod's loopback; what it sends lands in the listener's log.
    wait_for(10, "the listener to listen", || {
        c.sh(&other, "netstat -ltn").contains(":7777").then_some(())
    });
    c.sh(&other, "echo hello-over-lo | nc -w 2 127.0.0.1 7777");
    c.wait_log(&c.log_path(&pod, "listener"), "hello-over-lo");

    let cgroups = vec![
        c.cgroup_of(&pod, &listener),
        c.cgroup_of(&pod, &other),
        c.cgroup_of(&pod, &pod.id),
    ];
    c.end_pod(&pod);
    c.assert_nothing_left(&cgroups, &[]);
}

/// A directory of host volumes on a shared mount of its own (CRI wants
/// HostToContainer sources shared or slave, Bidirectional ones shared).
struct Volumes {
    dir: Scratch,
}

impl Volumes {
    fn new() -> Volumes {
        use nix::mount::{MsFlags, mount};
        let dir = Scratch::new("capsa-cri-vol");
        let p = &dir.path;
        mount(Some(p), p, None::<&str>, MsFlags::MS_BIND, None::<&str>).expect("bind");
        mount(
            None::<&str>,
            p,
            None::<&str>,
            MsFlags::MS_SHARED,
            None::<&str>,
        )
        .expect("make-shared");
        for d in ["private/sub", "h2c/sub", "h2c/sub2", "bidi/sub", "ro"] {
            fs::create_dir_all(p.join(d)).unwrap();
        }
        Volumes { dir }
    }

    fn tmpfs(&self, rel: &str, file: &str) {
        use nix::mount::{MsFlags, mount};
        let at = self.dir.join(rel);
        mount(
            Some("tmpfs"),
            &at,
            Some("tmpfs"),
            MsFlags::empty(),
            Some("size=1m"),
        )
        .expect("mount tmpfs");
        fs::write(at.join(file), "from-host\n").unwrap();
    }
}

fn is_mount_point(p: &Path) -> bool {
    mounts_under(p).iter().any(|m| m == p)
}

#[test]
fn volumes_private_host_to_container_and_bidirectional() {
    let vols = Volumes::new();
    let c = Cri::start();
    let v = |rel: &str| vols.dir.join(rel).display().to_string();
    fs::write(vols.dir.join("ro/file"), "read-only\n").unwrap();
    fs::write(vols.dir.join("private/file"), "private\n").unwrap();
    // kubelet's terminationMessagePath: a host file bound onto the
    // container's /dev.
    fs::write(vols.dir.join("termination-log"), "").unwrap();
    // Bidirectional needs a privileged container (and pod) in Kubernetes.
    let pod = c.run_pod("vols", |p| {
        pod_secctx(p).privileged = true;
    });
    use cri::MountPropagation::*;
    let mounts = [
        (v("private"), "/mnt/private", PropagationPrivate, false),
        (v("h2c"), "/mnt/h2c", PropagationHostToContainer, false),
        (v("bidi"), "/mnt/bidi", PropagationBidirectional, false),
        (v("ro"), "/mnt/ro", PropagationPrivate, true),
        (
            v("termination-log"),
            "/dev/termination-log",
            PropagationPrivate,
            false,
        ),
    ];
    let id = c.start_container(&pod, "c", &["sleep", "1001"], |cfg| {
        let sc = cfg.linux.as_mut().unwrap();
        sc.security_context.as_mut().unwrap().privileged = true;
        cfg.mounts = mounts
            .iter()
            .map(|(host, ctr, prop, ro)| cri::Mount {
                host_path: host.clone(),
                container_path: ctr.to_string(),
                readonly: *ro,
                propagation: *prop as i32,
                ..Default::default()
            })
            .collect();
    });
    assert_eq!(c.sh(&id, "cat /mnt/private/file"), "private\n");
    assert_eq!(c.sh(&id, "cat /mnt/ro/file"), "read-only\n");
    let r = c.exec(&id, "echo x > /mnt/ro/new");
    assert_ne!(r.exit_code, 0, "a readonly volume took a write");
    assert!(
        string_of(&r.stderr).contains("Read-only"),
        "{}",
        string_of(&r.stderr)
    );

    // Host to container: a mount made on the host after the start shows
    // inside the HostToContainer volume, not inside the private one.
    vols.tmpfs("h2c/sub", "mark");
    vols.tmpfs("private/sub", "mark");
    assert_eq!(c.sh(&id, "cat /mnt/h2c/sub/mark"), "from-host\n");
    assert_eq!(c.sh(&id, "ls /mnt/private/sub | wc -l").trim(), "0");
    // ...and a mount made inside a HostToContainer volume stays inside.
    c.sh(
        &id,
        "mount -t tmpfs in /mnt/h2c/sub2 && touch /mnt/h2c/sub2/x",
    );
    assert!(!is_mount_point(&vols.dir.join("h2c/sub2")));

    // Bidirectional: a mount made inside appears on the host.
    c.sh(
        &id,
        "mount -t tmpfs in /mnt/bidi/sub && echo from-inside > /mnt/bidi/sub/mark",
    );
    let host_side = vols.dir.join("bidi/sub");
    assert!(
        is_mount_point(&host_side),
        "the inside mount is not on the host"
    );
    assert_eq!(
        fs::read_to_string(host_side.join("mark")).unwrap(),
        "from-inside\n"
    );

    c.sh(&id, "echo last words > /dev/termination-log");
    assert_eq!(
        fs::read_to_string(vols.dir.join("termination-log")).unwrap(),
        "last words\n"
    );

    let s = c.status(&id);
    let bidi = s
        .mounts
        .iter()
        .find(|m| m.container_path == "/mnt/bidi")
        .expect("the bidi mount in the status");
    assert_eq!(bidi.propagation, PropagationBidirectional as i32);

    let cgroups = vec![c.cgroup_of(&pod, &id), c.cgroup_of(&pod, &pod.id)];
    c.end_pod(&pod);
    // The mount made inside stays on the host (as with runc); the volume
    // owner (here the Volumes guard) removes it.
    c.assert_nothing_left(&cgroups, &[]);
}

/// The pod's Linux security context (namespaces, privileged).
fn pod_secctx(p: &mut cri::PodSandboxConfig) -> &mut cri::LinuxSandboxSecurityContext {
    p.linux.as_mut().unwrap().security_context.as_mut().unwrap()
}

fn secctx(cfg: &mut cri::ContainerConfig) -> &mut cri::LinuxContainerSecurityContext {
    cfg.linux
        .as_mut()
        .unwrap()
        .security_context
        .as_mut()
        .unwrap()
}

#[test]
fn security_context_users_caps_seccomp_and_paths() {
    use cri::security_profile::ProfileType;
    let c = Cri::start();
    let pod = c.run_pod("sec", |p| {
        pod_secctx(p).privileged = true;
    });

    // runAsUser/runAsGroup/supplementalGroups, readOnlyRootFilesystem,
    // allowPrivilegeEscalation: false, seccomp RuntimeDefault.
    let user = c.start_container(&pod, "user", &["sleep", "1001"], |cfg| {
        let sc = secctx(cfg);
        sc.run_as_user = Some(cri::Int64Value { value: 1234 });
        sc.run_as_group = Some(cri::Int64Value { value: 2345 });
        sc.supplemental_groups = vec![3456, 3457];
        sc.readonly_rootfs = true;
        sc.no_new_privs = true;
        sc.seccomp = Some(cri::SecurityProfile {
            profile_type: ProfileType::RuntimeDefault as i32,
            localhost_ref: String::new(),
        });
    });
    assert_eq!(c.sh(&user, "id -u; id -g"), "1234\n2345\n");
    let groups = c.sh(&user, "id -G");
    for g in ["2345", "3456", "3457"] {
        assert!(groups.split_whitespace().any(|x| x == g), "{groups}");
    }
    let r = c.exec(&user, "touch /tmp/x");
    assert_ne!(r.exit_code, 0);
    assert!(
        string_of(&r.stderr).contains("Read-only"),
        "{}",
        string_of(&r.stderr)
    );
    let st = c.sh(&user, "cat /proc/self/status");
    assert_eq!(status_field(&st, "NoNewPrivs:"), "1");
    assert_eq!(status_field(&st, "Seccomp:"), "2");
    // The default profile refuses what it leaves out (unshare, for one).
    let r = c.exec(&user, "unshare -U true");
    assert_ne!(r.exit_code, 0, "unshare passed the default seccomp profile");

    // seccompProfile Localhost: a profile file on the node.
    let profile = c.dir.join("profile.json");
    fs::write(
        &profile,
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
            {"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}"#,
    )
    .unwrap();
    let local = c.start_container(&pod, "local", &["sleep", "1004"], |cfg| {
        secctx(cfg).seccomp = Some(cri::SecurityProfile {
            profile_type: ProfileType::Localhost as i32,
            localhost_ref: profile.display().to_string(),
        });
    });
    let r = c.exec(&local, "mkdir /tmp/d");
    assert_ne!(r.exit_code, 0);
    assert!(
        string_of(&r.stderr).contains("Operation not permitted"),
        "{}",
        string_of(&r.stderr)
    );
    c.sh(&local, "touch /tmp/f && rm /tmp/f");

    // Root with NET_ADMIN added and CHOWN dropped, seccomp Unconfined,
    // masked and readonly paths of its own.
    let root = c.start_container(&pod, "root", &["sleep", "1002"], |cfg| {
        let sc = secctx(cfg);
        sc.capabilities = Some(cri::Capability {
            add_capabilities: vec!["NET_ADMIN".into()],
            drop_capabilities: vec!["CHOWN".into()],
            ..Default::default()
        });
        sc.seccomp = Some(cri::SecurityProfile {
            profile_type: ProfileType::Unconfined as i32,
            localhost_ref: String::new(),
        });
        sc.masked_paths = vec!["/proc/kcore".into(), "/proc/loadavg".into()];
        sc.readonly_paths = vec!["/proc/sys".into(), "/etc".into()];
    });
    let st = c.sh(&root, "cat /proc/self/status");
    let eff = cap_set(&st, "CapEff:");
    assert!(eff & CAP_NET_ADMIN != 0, "CapEff {eff:x}");
    assert!(eff & CAP_CHOWN == 0, "CapEff {eff:x}");
    assert_eq!(cap_set(&st, "CapBnd:"), eff);
    assert_eq!(status_field(&st, "Seccomp:"), "0");
    assert_eq!(status_field(&st, "NoNewPrivs:"), "0");
    let r = c.exec(&root, "chown 1:1 /tmp");
    assert_ne!(r.exit_code, 0, "chown without CAP_CHOWN");
    c.sh(&root, "ip link set lo mtu 9000 && ip link set lo mtu 65536");
    assert_eq!(c.sh(&root, "wc -c < /proc/loadavg").trim(), "0");
    assert_ne!(c.sh(&root, "wc -c < /proc/uptime").trim(), "0");
    let r = c.exec(&root, "touch /etc/x");
    assert!(
        string_of(&r.stderr).contains("Read-only"),
        "{}",
        string_of(&r.stderr)
    );
    c.sh(&root, "touch /tmp/x");
    let mi = c.sh(&root, "grep ' /proc/sys ' /proc/self/mountinfo");
    assert!(mi.split(' ').nth(5).unwrap_or("").starts_with("ro"), "{mi}");

    // Privileged: every capability the daemon has, no masks, host devices.
    let privileged = c.start_container(&pod, "priv", &["sleep", "1003"], |cfg| {
        secctx(cfg).privileged = true;
    });
    let st = c.sh(&privileged, "cat /proc/self/status");
    let host = fs::read_to_string(format!("/proc/{}/status", c.daemon.id())).unwrap();
    assert_eq!(cap_set(&st, "CapEff:"), cap_set(&host, "CapEff:"));
    assert_eq!(status_field(&st, "Seccomp:"), "0");
    assert_ne!(c.sh(&privileged, "wc -c < /proc/loadavg").trim(), "0");
    let mi = c.sh(&privileged, "grep ' /sys ' /proc/self/mountinfo");
    assert!(mi.split(' ').nth(5).unwrap_or("").starts_with("rw"), "{mi}");
    if Path::new("/dev/kmsg").exists() {
        c.sh(&privileged, "test -c /dev/kmsg");
        let r = c.exec(&root, "test -e /dev/kmsg");
        assert_ne!(r.exit_code, 0, "an unprivileged container has /dev/kmsg");
    }

    let mut cgroups = vec![c.cgroup_of(&pod, &pod.id)];
    for id in [&user, &root, &privileged, &local] {
        cgroups.push(c.cgroup_of(&pod, id));
    }
    c.end_pod(&pod);
    c.assert_nothing_left(&cgroups, &[]);
}

/// The container's memory limit, CFS quota and period, and CPU shares
/// (weight on cgroup v2) from its own cgroup files, read inside.
const CGROUP_LIMITS: &str = "if [ -f /sys/fs/cgroup/cgroup.controllers ]; then \
      cat /sys/fs/cgroup/memory.max; cat /sys/fs/cgroup/cpu.max; cat /sys/fs/cgroup/cpu.weight; \
    else \
      cat /sys/fs/cgroup/memory/memory.limit_in_bytes; \
      echo $(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us); \
      cat /sys/fs/cgroup/cpu/cpu.shares; \
    fi";

#[test]
fn resources_limits_update_and_stats() {
    let c = Cri::start();
    let pod = c.run_pod("res", |_| {});
    let mib = 1024 * 1024;
    let id = c.start_container(&pod, "c", &["sleep", "1001"], |cfg| {
        cfg.linux.as_mut().unwrap().resources = Some(cri::LinuxContainerResources {
            cpu_period: 100000,
            cpu_quota: 50000,
            cpu_shares: 512,
            memory_limit_in_bytes: 64 * mib,
            memory_swap_limit_in_bytes: 128 * mib,
            // kubelet's for a BestEffort pod's containers.
            oom_score_adj: 1000,
            cpuset_cpus: "0".into(),
            ..Default::default()
        });
        // A host device mapped in under another name.
        cfg.devices = vec![cri::Device {
            container_path: "/dev/capsa-null".into(),
            host_path: "/dev/null".into(),
            permissions: "rw".into(),
        }];
    });
    assert_eq!(c.sh(&id, "cat /proc/self/oom_score_adj"), "1000\n");
    assert_eq!(c.sh(&id, "cat /proc/1/oom_score_adj"), "1000\n");
    let cpuset = if c.exec(&id, "test -d /sys/fs/cgroup/cpuset").exit_code == 0 {
        "cat /sys/fs/cgroup/cpuset/cpuset.cpus"
    } else {
        "cat /sys/fs/cgroup/cpuset.cpus"
    };
    assert_eq!(c.sh(&id, cpuset), "0\n");
    assert_eq!(c.sh(&id, "taskset -p 1 | sed 's/.*: //'"), "1\n");
    c.sh(
        &id,
        "test -c /dev/capsa-null && echo x > /dev/capsa-null && head -c 1 /dev/capsa-null | wc -c",
    );
    let v2 = c
        .exec(&id, "test -f /sys/fs/cgroup/cgroup.controllers")
        .exit_code
        == 0;
    let want = |mem: i64, quota: i64| {
        if v2 {
            // cgroup v2: shares 512 are weight 1 + (512-2)*9999/262142.
            format!("{mem}\n{quota} 100000\n20\n")
        } else {
            format!("{mem}\n{quota} 100000\n512\n")
        }
    };
    assert_eq!(c.sh(&id, CGROUP_LIMITS), want(64 * mib, 50000));
    // Memory plus swap, where the kernel accounts swap (memory.memsw.* on
    // cgroup v1, memory.swap.max, swap alone, on v2).
    let memsw = [
        (
            "/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes",
            128 * mib,
        ),
        ("/sys/fs/cgroup/memory.swap.max", 64 * mib),
    ]
    .into_iter()
    .find(|(f, _)| c.exec(&id, &format!("test -f {f}")).exit_code == 0);
    if let Some((f, want)) = memsw {
        assert_eq!(c.sh(&id, &format!("cat {f}")), format!("{want}\n"));
    }
    let memsw = memsw.map(|(f, _)| f).filter(|f| f.contains("memsw"));

    // kubectl's in-place resize / kubelet's UpdateContainerResources.
    call!(
        c,
        update_container_resources,
        cri::UpdateContainerResourcesRequest {
            container_id: id.clone(),
            linux: Some(cri::LinuxContainerResources {
                cpu_period: 100000,
                cpu_quota: 20000,
                cpu_shares: 512,
                memory_limit_in_bytes: 96 * mib,
                memory_swap_limit_in_bytes: 192 * mib,
                ..Default::default()
            }),
            ..Default::default()
        }
    )
    .expect("UpdateContainerResources");
    assert_eq!(c.sh(&id, CGROUP_LIMITS), want(96 * mib, 20000));
    if let Some(f) = &memsw {
        assert_eq!(c.sh(&id, &format!("cat {f}")), format!("{}\n", 192 * mib));
    }

    // The limit holds: a process that holds more is OOM-killed (where no
    // swap lets it page out instead).
    let swaps = fs::read_to_string("/proc/swaps").unwrap_or_default();
    if swaps.lines().count() <= 1 {
        let r = c.exec(
            &id,
            "head -c 200m /dev/zero | tail > /dev/null && echo survived",
        );
        assert!(
            !string_of(&r.stdout).contains("survived") && r.exit_code != 0,
            "200 MiB held in a 96 MiB container: {r:?}"
        );
    }

    // A container whose process goes past its limit is OOM-killed, and
    // CRI says so: the shim watches the cgroup the runtime made.
    let mut oom_ids = Vec::new();
    if swaps.lines().count() <= 1 {
        let oom = c.start_container(
            &pod,
            "oom",
            &["sh", "-c", "head -c 100m /dev/zero | tail"],
            |cfg| {
                cfg.linux.as_mut().unwrap().resources = Some(cri::LinuxContainerResources {
                    memory_limit_in_bytes: 32 * mib,
                    ..Default::default()
                });
            },
        );
        let s = wait_for(30, "the oom container to exit", || {
            let s = c.status(&oom);
            (s.state == cri::ContainerState::ContainerExited as i32).then_some(s)
        });
        assert_eq!(s.exit_code, 137, "{s:?}");
        assert_eq!(s.reason, "OOMKilled", "{s:?}");
        oom_ids.push(oom);
    }

    let stats = call!(
        c,
        container_stats,
        cri::ContainerStatsRequest {
            container_id: id.clone()
        }
    )
    .expect("ContainerStats")
    .stats
    .expect("stats");
    let attrs = stats.attributes.expect("attributes");
    assert_eq!(attrs.id, id);
    assert!(
        stats
            .cpu
            .and_then(|c| c.usage_core_nano_seconds)
            .unwrap()
            .value
            > 0
    );
    assert!(stats.memory.and_then(|m| m.usage_bytes).unwrap().value > 0);

    let mut cgroups = vec![c.cgroup_of(&pod, &id), c.cgroup_of(&pod, &pod.id)];
    cgroups.extend(oom_ids.iter().map(|o| c.cgroup_of(&pod, o)));
    c.end_pod(&pod);
    c.assert_nothing_left(&cgroups, &[]);
}
