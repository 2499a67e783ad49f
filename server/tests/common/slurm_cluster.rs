//! A real Slurm for tests (run as root in CI): munge, a controller and
//! `nodes` node daemons (`node1`, `node2` ...), all on this host with their
//! own configuration, key, ports and folders in a temporary folder, each a
//! child of the test. SkyPilot reaches Slurm through a login node: here an
//! sshd on 127.0.0.2 with a Unix user of its own, whose sessions see the
//! test's configuration (`SLURM_CONF`). The nodes share the login user's
//! home, as Slurm's compute nodes do. Needs Debian's slurmctld, slurmd,
//! slurm-client and munge (the test script installs them). Partition `main`
//! (the default) holds every node, `debug` the last one.

use std::{
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use super::{
    ports::quiet_port,
    ssh_hosts::{SshHost, SshHosts},
};

/// A running Slurm and its login node.
pub struct TestSlurm {
    /// The login node (one host).
    pub login: SshHosts,
    /// The `slurm.conf` every Slurm command of the test reads.
    pub conf: PathBuf,
    /// Each node daemon, by node (`node1` is index 0).
    nodes: Vec<Option<Child>>,
    controller: Option<Child>,
    munge: Option<Child>,
    dir: tempfile::TempDir,
}

impl TestSlurm {
    /// Starts munge, the controller and `nodes` node daemons of `cpus` CPUs
    /// each (declared: more than the host has is fine), and waits until
    /// every node is idle.
    pub fn start(nodes: usize, cpus: usize) -> TestSlurm {
        for tool in ["/usr/sbin/slurmctld", "/usr/sbin/slurmd", "/usr/bin/srun", "/usr/sbin/munged"] {
            assert!(
                Path::new(tool).exists(),
                "{tool} is missing: install slurmctld, slurmd, slurm-client and munge (scripts/test.sh does)"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        // Slurm's commands, run as the login user, read the configuration
        // and reach munge's socket here.
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::create_dir_all(root.join("munge")).unwrap();
        std::fs::set_permissions(root.join("munge"), std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut key = vec![0u8; 1024];
        std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom").unwrap(), &mut key).unwrap();
        std::fs::write(root.join("munge/key"), key).unwrap();
        std::fs::set_permissions(root.join("munge/key"), std::fs::Permissions::from_mode(0o400)).unwrap();
        let socket = root.join("munge/socket");
        let munge = Command::new("/usr/sbin/munged")
            .args(["--foreground", "--force", "--num-threads=2"])
            .arg(format!("--key-file={}", root.join("munge/key").display()))
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--pid-file={}", root.join("munge/pid").display()))
            .arg(format!("--log-file={}", root.join("munge/log").display()))
            .arg(format!("--seed-file={}", root.join("munge/seed").display()))
            .stdout(Stdio::null())
            .stderr(log_file(root, "munged.out"))
            .spawn()
            .unwrap();
        wait_for(|| socket.exists(), "munged to open its socket", root);
        let controller_port = quiet_port();
        let node_ports: Vec<u16> = (0..nodes).map(|_| quiet_port()).collect();
        let mut conf = format!(
            "ClusterName=skytest\nSlurmctldHost=localhost\nSlurmctldPort={controller_port}\n\
             AuthType=auth/munge\nAuthInfo=socket={socket}\nCryptoType=crypto/munge\n\
             StateSaveLocation={root}/state\nSlurmdSpoolDir={root}/spool-%n\n\
             SlurmctldPidFile={root}/slurmctld.pid\nSlurmdPidFile={root}/slurmd-%n.pid\n\
             SlurmctldLogFile={root}/slurmctld.log\nSlurmdLogFile={root}/slurmd-%n.log\n\
             ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\nSelectType=select/cons_tres\n\
             SelectTypeParameters=CR_CPU\nSchedulerType=sched/builtin\nSchedulerParameters=sched_interval=1\nSlurmUser=root\nReturnToService=2\n\
             MpiDefault=none\nJobAcctGatherType=jobacct_gather/none\nSlurmdParameters=config_overrides\n\
             KillWait=2\nMinJobAge=300\n",
            socket = socket.display(),
            root = root.display(),
        );
        let names: Vec<String> = (1..=nodes).map(|n| format!("node{n}")).collect();
        for (name, port) in names.iter().zip(&node_ports) {
            conf += &format!(
                "NodeName={name} NodeHostname=localhost NodeAddr=127.0.0.1 Port={port} CPUs={cpus} RealMemory=4096\n"
            );
        }
        conf +=
            &format!("PartitionName=main Nodes={} Default=YES MaxTime=INFINITE State=UP\n", names.join(","));
        // A second partition of the last node alone.
        conf += &format!("PartitionName=debug Nodes={} MaxTime=INFINITE State=UP\n", names[names.len() - 1]);
        let conf_file = root.join("slurm.conf");
        std::fs::write(&conf_file, conf).unwrap();
        std::fs::create_dir_all(root.join("state")).unwrap();
        let controller = Command::new("/usr/sbin/slurmctld")
            .args(["-D", "-c", "-f"])
            .arg(&conf_file)
            .env("SLURM_CONF", &conf_file)
            .stdout(Stdio::null())
            .stderr(log_file(root, "slurmctld.out"))
            .spawn()
            .unwrap();
        let login = SshHosts::start(1);
        let host = &login.hosts[0];
        let home = host.user.home.clone().unwrap();
        std::fs::write(
            home.join(".ssh/environment"),
            format!("SLURM_CONF={}\nPATH=/usr/local/bin:/usr/bin:/bin\n", conf_file.display()),
        )
        .unwrap();
        let mut slurm = TestSlurm {
            login,
            conf: conf_file,
            nodes: Vec::new(),
            controller: Some(controller),
            munge: Some(munge),
            dir,
        };
        for name in &names {
            let daemon = slurm.start_node(name);
            slurm.nodes.push(Some(daemon));
        }
        slurm.wait_until_idle(nodes);
        slurm
    }

    fn start_node(&self, name: &str) -> Child {
        Command::new("/usr/sbin/slurmd")
            .args(["-D", "-N", name, "-f"])
            .arg(&self.conf)
            .env("SLURM_CONF", &self.conf)
            .stdout(Stdio::null())
            .stderr(log_file(self.dir.path(), &format!("slurmd-{name}.out")))
            .spawn()
            .unwrap()
    }

    fn wait_until_idle(&self, nodes: usize) {
        wait_for(
            || {
                // A node is listed once per partition it is in.
                let out = self.as_root(&["sinfo", "-h", "-N", "-o", "%N %T"]);
                let mut idle: Vec<String> = String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .filter(|line| line.ends_with(" idle"))
                    .map(str::to_string)
                    .collect();
                idle.dedup();
                idle.len() == nodes
            },
            "every Slurm node to be idle",
            self.dir.path(),
        );
    }

    /// The login node.
    pub fn login_host(&self) -> &SshHost {
        &self.login.hosts[0]
    }

    /// A `~/.slurm/config` naming this Slurm `name`.
    pub fn config_file(&self, name: &str) -> PathBuf {
        let host = self.login_host();
        let text = format!(
            "# the test's Slurm\nHost {name}\n    HostName {}\n    Port {}\n    User {}\n    IdentityFile {}\n",
            host.address,
            host.port,
            host.user.name,
            self.login.key.display()
        );
        let file = self.dir.path().join(format!("{name}.slurm-config"));
        std::fs::write(&file, text).unwrap();
        file
    }

    /// Runs a Slurm command as root (the admin).
    pub fn as_root(&self, args: &[&str]) -> Output {
        Command::new(args[0]).args(&args[1..]).env("SLURM_CONF", &self.conf).output().unwrap()
    }

    /// Runs `script` as the login user, as if logged in.
    pub fn as_login_user(&self, script: &str) -> Output {
        self.login_host().run(&format!("export SLURM_CONF={}; {script}", self.conf.display()))
    }

    /// The login user's allocations Slurm has pending or running: "ID STATE NAME" each.
    pub fn active_jobs(&self) -> Vec<String> {
        let user = self.login_host().user.name.clone();
        let out = self.as_root(&[
            "squeue",
            "-h",
            "-u",
            &user,
            "-t",
            "PENDING,RUNNING,CONFIGURING",
            "-o",
            "%i %T %j",
        ]);
        String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
    }

    /// The state and reason Slurm gives job `id` ("CANCELLED None").
    pub fn job_state(&self, id: &str) -> String {
        let out = self.as_root(&["squeue", "-h", "-t", "all", "-j", id, "-o", "%T %r"]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Where the daemons log, for a failing test's message.
    pub fn logs(&self) -> String {
        collect_logs(self.dir.path())
    }
}

impl Drop for TestSlurm {
    fn drop(&mut self) {
        // Every job of the login user ends before the daemons do, so that no
        // step is left running.
        let user = self.login_host().user.name.clone();
        let _ = self.as_root(&["scancel", "-u", &user]);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let out = self.as_root(&["squeue", "-h", "-u", &user, "-o", "%i"]);
            if !out.status.success() || out.stdout.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        for child in
            self.nodes.iter_mut().flatten().chain(self.controller.iter_mut()).chain(self.munge.iter_mut())
        {
            // SAFETY: kill has no memory preconditions; the pid is our own child's.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline && child.try_wait().ok().flatten().is_none() {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        self.login_host().user.kill_processes();
    }
}

fn log_file(root: &Path, name: &str) -> std::fs::File {
    std::fs::File::create(root.join(name)).unwrap()
}

fn collect_logs(root: &Path) -> String {
    let mut text = String::new();
    for name in ["slurmctld.log", "slurmctld.out", "slurmd-node1.log", "slurmd-node2.log", "munged.out"] {
        if let Ok(log) = std::fs::read_to_string(root.join(name)) {
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            text += &format!("--- {name}\n{}\n", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
        }
    }
    text
}

/// Waits (up to a minute) until `ready`, polling: the daemons say nothing when they are ready.
fn wait_for(ready: impl Fn() -> bool, what: &str, root: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}\n{}", collect_logs(root));
        std::thread::sleep(Duration::from_millis(100));
    }
}
