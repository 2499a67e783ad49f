//! Real OpenSSH servers as test hosts (tests run as root in CI): each host
//! has its own loopback address (127.0.0.N), its own Unix user and home, and
//! a host key; one client key made by the test logs in to all of them, and
//! nothing else does. The test accepts each connection itself, on a port the
//! kernel picked, and hands it to `sshd -i`: no port is fixed or raced for.
//! Needs `/usr/sbin/sshd` (Debian's openssh-server; the test script installs it).

use std::{
    net::{TcpListener, TcpStream},
    os::fd::OwnedFd,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

use super::unix_user::UnixUser;

const SSHD: &str = "/usr/sbin/sshd";

/// Test hosts and the key that logs in to them.
pub struct SshHosts {
    pub hosts: Vec<SshHost>,
    /// The client's private key (root's, 0600).
    pub key: PathBuf,
    dir: tempfile::TempDir,
}

/// One host: an address, a port, a user, and the sshd processes serving it.
pub struct SshHost {
    pub address: String,
    pub port: u16,
    pub user: UnixUser,
    dir: PathBuf,
    stopped: Arc<AtomicBool>,
    sessions: Arc<Mutex<Vec<Child>>>,
}

impl SshHosts {
    /// Starts `count` hosts, on 127.0.0.2 and up.
    pub fn start(count: usize) -> SshHosts {
        assert!(Path::new(SSHD).exists(), "{SSHD} is missing: install openssh-server (scripts/test.sh does)");
        // sshd insists on its privilege separation folder.
        std::fs::create_dir_all("/run/sshd").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("client_key");
        keygen(&key);
        let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
        let hosts = (0..count).map(|index| SshHost::start(dir.path(), index, &public)).collect();
        SshHosts { hosts, key, dir }
    }

    /// An `ssh_node_pools.yaml` with one pool of every host.
    pub fn pool_file(&self, pool: &str) -> PathBuf {
        let mut yaml = format!("{pool}:\n  identity_file: {}\n  hosts:\n", self.key.display());
        for host in &self.hosts {
            yaml += &format!(
                "    - ip: {}\n      port: {}\n      user: {}\n",
                host.address, host.port, host.user.name
            );
        }
        let file = self.dir.path().join(format!("{pool}.yaml"));
        std::fs::write(&file, yaml).unwrap();
        file
    }
}

impl SshHost {
    fn start(root: &Path, index: usize, authorized: &str) -> SshHost {
        let address = format!("127.0.0.{}", index + 2);
        let user = UnixUser::create_with_home();
        let home = user.home.clone().unwrap();
        let ssh_dir = home.join(".ssh");
        std::fs::create_dir_all(&ssh_dir).unwrap();
        std::fs::write(ssh_dir.join("authorized_keys"), authorized).unwrap();
        let chown = Command::new("chown").args(["-R", &format!("{0}:{0}", user.name)]).arg(&ssh_dir).status();
        assert!(chown.unwrap().success());
        let dir = root.join(format!("host-{index}"));
        std::fs::create_dir_all(&dir).unwrap();
        keygen(&dir.join("host_key"));
        let config = format!(
            "HostKey {}/host_key\nUsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             PubkeyAuthentication yes\nAllowUsers {}\nStrictModes no\nPidFile none\nLogLevel ERROR\n\
             PermitUserEnvironment yes\n",
            dir.display(),
            user.name
        );
        std::fs::write(dir.join("sshd_config"), config).unwrap();
        let listener = TcpListener::bind((address.as_str(), 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let host = SshHost { address, port, user, dir, stopped: Arc::default(), sessions: Arc::default() };
        let (stopped, sessions, config) =
            (host.stopped.clone(), host.sessions.clone(), host.dir.join("sshd_config"));
        let log = host.dir.join("sshd.log");
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let input = OwnedFd::from(stream.try_clone().unwrap());
                let log = std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap();
                let session = Command::new(SSHD)
                    .args(["-i", "-e", "-f"])
                    .arg(&config)
                    .stdin(Stdio::from(input))
                    .stdout(Stdio::from(OwnedFd::from(stream)))
                    .stderr(log)
                    .spawn()
                    .unwrap();
                sessions.lock().unwrap().push(session);
            }
        });
        host
    }

    /// `user@address:port`.
    pub fn label(&self) -> String {
        format!("{}@{}:{}", self.user.name, self.address, self.port)
    }

    /// Stops the host as a crash would: no new connections, its sshd
    /// sessions and its user's processes killed.
    pub fn kill(&self) {
        if !self.stopped.swap(true, Ordering::SeqCst) {
            // Wake the accept loop so that it sees the stop and closes the port.
            let _ = TcpStream::connect((self.address.as_str(), self.port));
        }
        self.kill_sessions();
        self.user.kill_processes();
    }

    /// Cuts the connections the host has now (new ones are still taken).
    pub fn kill_sessions(&self) {
        for session in self.sessions.lock().unwrap().iter_mut() {
            let _ = session.kill();
            let _ = session.wait();
        }
    }

    /// Gives the host a new host key, as a reinstalled host has.
    pub fn change_host_key(&self) {
        let key = self.dir.join("host_key");
        let _ = std::fs::remove_file(&key);
        let _ = std::fs::remove_file(key.with_extension("pub"));
        keygen(&key);
    }

    /// Makes the host report `count` GPUs named `name`: an `nvidia-smi` on
    /// the user's PATH that answers the query the server makes (the
    /// processes it starts see the devices only as indices).
    pub fn give_gpus(&self, name: &str, count: usize) {
        let home = self.user.home.clone().unwrap();
        let bin = home.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let script = format!("#!/bin/sh\nfor i in $(seq {count}); do echo '{name}'; done\n");
        std::fs::write(bin.join("nvidia-smi"), script).unwrap();
        std::fs::set_permissions(bin.join("nvidia-smi"), std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let path = format!("PATH={}:/usr/local/bin:/usr/bin:/bin\n", bin.display());
        std::fs::write(home.join(".ssh/environment"), path).unwrap();
    }

    /// Runs `script` as the host's user (as if logged in).
    pub fn run(&self, script: &str) -> std::process::Output {
        self.user.run(script)
    }
}

impl Drop for SshHost {
    fn drop(&mut self) {
        self.kill();
    }
}

fn keygen(path: &Path) {
    let out =
        Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
