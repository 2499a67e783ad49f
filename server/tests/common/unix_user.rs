//! A Unix user of its own for a test (tests run as root in CI): created with
//! `useradd`, removed with `userdel` when dropped; commands run as it with
//! `runuser`. Shared by the server's and the CLI's tests.

use std::process::{Command, Output};

pub struct UnixUser {
    pub name: String,
}

impl UnixUser {
    /// Creates a user with a fresh name and no home. Panics unless run as
    /// root, which the security tests need (CI runs them as root).
    pub fn create() -> UnixUser {
        // SAFETY: geteuid has no preconditions.
        assert_eq!(unsafe { libc::geteuid() }, 0, "the security tests create Unix users: run them as root");
        let name = format!("skyt{}", skypilot_api::identity::random_hex(6).expect("random bytes"));
        // Tests run in parallel, and useradd gives up at once while another
        // holds the lock on /etc/passwd: try again for a while.
        for _ in 0..100 {
            let out = Command::new("useradd")
                .args(["--no-create-home", "--shell", "/bin/sh", "--user-group", &name])
                .output()
                .expect("useradd runs");
            if out.status.success() {
                return UnixUser { name };
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("useradd {name} kept failing");
    }

    /// The user's uid.
    pub fn uid(&self) -> u32 {
        let out = Command::new("id").args(["-u", &self.name]).output().expect("id runs");
        String::from_utf8_lossy(&out.stdout).trim().parse().expect("a uid")
    }

    /// Runs `sh -c script` as this user.
    pub fn run(&self, script: &str) -> Output {
        Command::new("runuser")
            .args(["-u", &self.name, "--", "sh", "-c", script])
            .output()
            .expect("runuser runs")
    }
}

impl Drop for UnixUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.name).status();
    }
}
