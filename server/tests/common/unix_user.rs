//! A Unix user of its own for a test (tests run as root in CI): created with
//! `useradd`, removed with `userdel` when dropped; commands run as it with
//! `runuser`. Shared by the server's and the CLI's tests.

use std::process::{Command, Output};

pub struct UnixUser {
    pub name: String,
    /// The user's home, when it was created with one.
    pub home: Option<std::path::PathBuf>,
}

impl UnixUser {
    /// Creates a user with a fresh name and no home. Panics unless run as
    /// root, which the security tests need (CI runs them as root).
    pub fn create() -> UnixUser {
        UnixUser::add(false)
    }

    /// Creates a user with a fresh name and a home of its own (removed with it).
    pub fn create_with_home() -> UnixUser {
        UnixUser::add(true)
    }

    fn add(with_home: bool) -> UnixUser {
        // SAFETY: geteuid has no preconditions.
        assert_eq!(unsafe { libc::geteuid() }, 0, "the security tests create Unix users: run them as root");
        let name = format!("skyt{}", skypilot_api::identity::random_hex(6).expect("random bytes"));
        let home = with_home.then(|| std::path::PathBuf::from(format!("/home/{name}")));
        let home_flag = if with_home { "--create-home" } else { "--no-create-home" };
        // Tests run in parallel, and useradd gives up at once while another
        // holds the lock on /etc/passwd: try again for a while.
        for _ in 0..100 {
            let out = Command::new("useradd")
                .args([home_flag, "--shell", "/bin/bash", "--user-group", &name])
                .output()
                .expect("useradd runs");
            if out.status.success() {
                let user = UnixUser { name, home };
                if with_home {
                    // No password, yet not locked: sshd refuses locked accounts.
                    user.unlock();
                }
                return user;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("useradd {name} kept failing");
    }

    fn unlock(&self) {
        for _ in 0..100 {
            if Command::new("usermod")
                .args(["-p", "*", &self.name])
                .output()
                .is_ok_and(|out| out.status.success())
            {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("usermod {} kept failing", self.name);
    }

    /// Ends every process of this user.
    pub fn kill_processes(&self) {
        let _ = Command::new("pkill").args(["-KILL", "-u", &self.name]).status();
    }

    /// The user's uid.
    pub fn uid(&self) -> u32 {
        let out = Command::new("id").args(["-u", &self.name]).output().expect("id runs");
        String::from_utf8_lossy(&out.stdout).trim().parse().expect("a uid")
    }

    /// Runs `sh -c script` as this user. Other tests add and remove users
    /// meanwhile, rewriting /etc/passwd: a lookup that misses the user while
    /// that happens is tried again.
    pub fn run(&self, script: &str) -> Output {
        let run = || {
            Command::new("runuser")
                .args(["-u", &self.name, "--", "sh", "-c", script])
                .output()
                .expect("runuser runs")
        };
        for _ in 0..50 {
            let output = run();
            if !String::from_utf8_lossy(&output.stderr).contains("does not exist") {
                return output;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        run()
    }
}

impl Drop for UnixUser {
    fn drop(&mut self) {
        if self.home.is_some() {
            // Its processes first: userdel refuses a user that still runs any.
            self.kill_processes();
            for _ in 0..100 {
                if Command::new("userdel")
                    .args(["--remove", &self.name])
                    .output()
                    .is_ok_and(|out| out.status.success())
                {
                    return;
                }
                self.kill_processes();
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
        let _ = Command::new("userdel").arg(&self.name).status();
    }
}
