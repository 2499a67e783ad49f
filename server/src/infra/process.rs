//! Detached processes on this host, as the local infra runs them: each runs
//! in its own process group (so it outlives the API server), appends its
//! output to a log file and writes its exit code to a file when it ends. The
//! server waits on its own children directly and watches processes it
//! recovered after a restart through /proc.

use std::{
    io,
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use super::RunHandle;

/// How often a recovered (not our child) process is checked.
const RECOVERED_POLL: Duration = Duration::from_millis(200);
/// Time between SIGTERM and SIGKILL when killing a job.
const KILL_GRACE: Duration = Duration::from_secs(3);

/// Writes its pid to PID_FILE, runs `bash SCRIPT`, appending its output (each line prefixed with PREFIX
/// when given) to LOG, then writes the exit code to EXIT atomically.
pub const WRAPPER: &str = r#"set -o pipefail
script="$1"; log="$2"; exit_file="$3"; prefix="$4"; pid_file="$5"
echo "$$" > "$pid_file"
if [ -n "$prefix" ]; then
  bash "$script" 2>&1 | sed -u "s/^/$prefix/" >> "$log"
else
  bash "$script" >> "$log" 2>&1
fi
code=$?
echo "$code" > "$exit_file.tmp" && mv "$exit_file.tmp" "$exit_file"
"#;

/// The wrapper's `$0`, by which `find_running` knows it.
pub const WRAPPER_NAME: &str = "sky-job";

/// One command to run on one node.
#[derive(Debug, Clone)]
pub struct NodeCommand {
    pub script: String,
    pub script_file: PathBuf,
    pub log: PathBuf,
    pub exit_file: PathBuf,
    /// Where the process writes its pid first thing (for recovery).
    pub pid_file: PathBuf,
    /// Prefix for every output line (multi-node jobs), e.g. "(worker1, rank=1) ".
    pub prefix: String,
    pub cwd: PathBuf,
    pub env: Vec<(String, String)>,
    /// Run as this uid (and the group of the same number) rather than as the server.
    pub run_as: Option<u32>,
}

/// A started process: how to find it again, and the child to wait on.
pub struct Spawned {
    pub handle: RunHandle,
    pub child: tokio::process::Child,
}

/// Writes the script of `command` and clears what an earlier start of the
/// same run left behind.
pub fn prepare(command: &NodeCommand) -> io::Result<()> {
    std::fs::write(&command.script_file, &command.script)?;
    let _ = std::fs::remove_file(&command.exit_file);
    let _ = std::fs::remove_file(&command.pid_file);
    Ok(())
}

/// Starts a `prepare`d command detached, in its own process group.
pub fn spawn(command: &NodeCommand) -> io::Result<Spawned> {
    let mut process = tokio::process::Command::new("bash");
    process
        .arg("-c")
        .arg(WRAPPER)
        .arg(WRAPPER_NAME)
        .arg(&command.script_file)
        .arg(&command.log)
        .arg(&command.exit_file)
        .arg(&command.prefix)
        .arg(&command.pid_file)
        .current_dir(&command.cwd)
        // The server's own secrets are not passed on (a task may set its own).
        .env_remove("SKYPILOT_INITIAL_BASIC_AUTH")
        .env_remove("SKYPILOT_INITIAL_SERVICE_ACCOUNT_TOKEN")
        .env_remove("SKYPILOT_SERVICE_ACCOUNT_TOKEN")
        .envs(command.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(false);
    process.as_std_mut().process_group(0);
    if let Some(uid) = command.run_as {
        // Without supplementary groups: std drops them when root sets a uid.
        process.uid(uid).gid(uid);
    }
    let child = process.spawn()?;
    let pid = child.id().ok_or_else(|| io::Error::other("the job process exited before it was seen"))?;
    let start_ticks = start_ticks(pid).unwrap_or(0);
    Ok(Spawned { handle: RunHandle { pid, start_ticks }, child })
}

/// Waits until a child of ours ends (its exit code is then in its exit file,
/// unless it was killed before writing one).
pub async fn wait_child(mut child: tokio::process::Child) {
    let _ = child.wait().await;
}

/// The same for a process started by an earlier run of the server.
pub async fn wait_recovered(process: RunHandle) {
    while is_alive(process) {
        tokio::time::sleep(RECOVERED_POLL).await;
    }
}

/// The wrapper process running `script_file`, found through /proc: for a
/// process that started but has not written its pid file yet.
pub fn find_running(script_file: &Path) -> Option<RunHandle> {
    let script = script_file.as_os_str().as_encoded_bytes();
    std::fs::read_dir("/proc").ok()?.filter_map(Result::ok).find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
        // bash -c WRAPPER sky-job SCRIPT LOG ...
        let mut args = cmdline.split(|byte| *byte == 0).skip(3);
        (args.next() == Some(WRAPPER_NAME.as_bytes()) && args.next() == Some(script))
            .then(|| RunHandle { pid, start_ticks: start_ticks(pid).unwrap_or(u64::MAX) })
    })
}

/// The pid a process wrote to `pid_file`, if it got that far.
pub fn read_pid(pid_file: &Path) -> Option<u32> {
    std::fs::read_to_string(pid_file).ok().and_then(|text| text.trim().parse().ok())
}

/// The exit code in `exit_file`, if the process wrote one.
pub fn read_exit_code(exit_file: &Path) -> Option<i32> {
    std::fs::read_to_string(exit_file).ok().and_then(|text| text.trim().parse().ok())
}

/// The SIGKILLs that follow SIGTERMs, so that a stopping server can wait for
/// them (otherwise a job that ignores SIGTERM would outlive its cancellation).
static ESCALATIONS: std::sync::LazyLock<tokio_util::task::TaskTracker> =
    std::sync::LazyLock::new(tokio_util::task::TaskTracker::new);

/// Terminates the process group of `process` (SIGTERM, then SIGKILL after
/// a grace period), also when its leader has exited and left processes in
/// it. A pid now used by another process means the group is gone: the
/// kernel hands out no pid that still names a process group.
pub fn kill_group(process: RunHandle) {
    if !still_ours(process) {
        return;
    }
    signal_group(process.pid, libc::SIGTERM);
    ESCALATIONS.spawn(async move {
        tokio::time::sleep(KILL_GRACE).await;
        // Checked again: by now the group may be gone and its number taken
        // by a new process that leads a group of its own.
        if still_ours(process) {
            signal_group(process.pid, libc::SIGKILL);
        }
    });
}

/// Whether the group `process` leads (or led) may still be ours to signal:
/// its leader runs, or no process has its number (what is left in the
/// group, if anything, is what the run started).
fn still_ours(process: RunHandle) -> bool {
    self::start_ticks(process.pid).is_none() || is_alive(process)
}

/// Waits until every pending SIGKILL was sent (at most the kill grace).
pub async fn finish_kills() {
    ESCALATIONS.close();
    ESCALATIONS.wait().await;
    ESCALATIONS.reopen();
}

fn signal_group(pid: u32, signal: i32) {
    // Never 0 or 1: kill(0) and kill(-1) reach far more than one group.
    let Ok(pgid @ 2..) = i32::try_from(pid) else { return };
    // SAFETY: kill(2) on a process group this server created; a vanished group is harmless.
    unsafe {
        libc::kill(-pgid, signal);
    }
}

/// Whether `process` is still the same live process (a start time of 0,
/// never recorded, matches any).
pub fn is_alive(process: RunHandle) -> bool {
    match self::start_ticks(process.pid) {
        Some(ticks) => process.start_ticks == 0 || ticks == process.start_ticks,
        None => false,
    }
}

/// When `pid` started (clock ticks since boot), from /proc; None if it is gone
/// or is a zombie.
pub fn start_ticks(pid: u32) -> Option<u64> {
    let fields = stat_fields(pid)?;
    if fields.first().map(String::as_str) == Some("Z") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

/// Whether `pid` leads a process group of its own, as every run does: a pid
/// read back from a file a job could write is trusted only then.
pub fn leads_its_group(pid: u32) -> bool {
    stat_fields(pid).and_then(|fields| fields.get(2)?.parse::<u32>().ok()) == Some(pid)
}

/// The uid a process runs as.
pub fn process_uid(pid: u32) -> Option<u32> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(format!("/proc/{pid}")).ok().map(|meta| meta.uid())
}

/// The fields of /proc/PID/stat after the command name (which is in
/// parentheses and may hold spaces): state, ppid, pgrp, ...
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    Some(rest.split_whitespace().map(str::to_string).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_detached_process_logs_and_reports_its_exit_code() {
        let dir = tempfile::tempdir().unwrap();
        let command = NodeCommand {
            script: "echo hello $GREETING_NAME\nexit 3\n".into(),
            script_file: dir.path().join("run.sh"),
            log: dir.path().join("run.log"),
            exit_file: dir.path().join("exit"),
            pid_file: dir.path().join("pid"),
            prefix: "(worker1, rank=1) ".into(),
            cwd: dir.path().to_path_buf(),
            env: vec![("GREETING_NAME".into(), "sky".into())],
            run_as: None,
        };
        prepare(&command).unwrap();
        let process = spawn(&command).unwrap();
        assert!(process.handle.start_ticks > 0);
        let pid = process.handle.pid;
        wait_child(process.child).await;
        assert_eq!(read_exit_code(&command.exit_file), Some(3));
        assert_eq!(read_pid(&command.pid_file), Some(pid));
        assert_eq!(std::fs::read_to_string(&command.log).unwrap(), "(worker1, rank=1) hello sky\n");
    }

    /// Whether any process is left in the group `pgid`.
    fn group_exists(pgid: u32) -> bool {
        // SAFETY: signal 0 only checks that the group exists.
        unsafe { libc::kill(-(pgid as i32), 0) == 0 }
    }

    /// Waits (bounded) until the group `pgid` is empty.
    async fn wait_group_gone(pgid: u32) {
        let deadline = std::time::Instant::now() + KILL_GRACE + std::time::Duration::from_secs(10);
        while group_exists(pgid) {
            assert!(std::time::Instant::now() < deadline, "process group {pgid} outlived its kill");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    fn command_in(dir: &std::path::Path, script: &str) -> NodeCommand {
        NodeCommand {
            script: script.into(),
            script_file: dir.join("run.sh"),
            log: dir.join("run.log"),
            exit_file: dir.join("exit"),
            pid_file: dir.join("pid"),
            prefix: String::new(),
            cwd: dir.to_path_buf(),
            env: vec![],
            run_as: None,
        }
    }

    /// Children of the run: one plain, one that ignores SIGTERM; each
    /// writes its pid to `started-<n>` once running.
    const CHILDREN: &str = "sleep 300 & echo $! > started-1\n(trap '' TERM; echo $BASHPID > started-2; sleep 300) &\n\
                            while [ ! -s started-2 ]; do sleep 0.01; done\n";

    #[tokio::test]
    async fn killing_the_group_ends_the_run_and_every_child_even_one_that_ignores_sigterm() {
        let dir = tempfile::tempdir().unwrap();
        let command = command_in(dir.path(), &format!("{CHILDREN}echo ready\nsleep 300\n"));
        prepare(&command).unwrap();
        let process = spawn(&command).unwrap();
        let handle = process.handle;
        while !std::fs::read_to_string(&command.log).unwrap_or_default().contains("ready") {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        kill_group(handle);
        wait_child(process.child).await;
        let code = read_exit_code(&command.exit_file);
        assert!(code.is_none() || code != Some(0), "{code:?}");
        assert!(!is_alive(handle));
        finish_kills().await;
        wait_group_gone(handle.pid).await;
    }

    #[tokio::test]
    async fn killing_a_group_whose_leader_exited_ends_what_it_left_behind() {
        let dir = tempfile::tempdir().unwrap();
        let command = command_in(dir.path(), &format!("{CHILDREN}exit 0\n"));
        prepare(&command).unwrap();
        let process = spawn(&command).unwrap();
        let handle = process.handle;
        wait_child(process.child).await;
        assert_eq!(read_exit_code(&command.exit_file), Some(0));
        assert!(group_exists(handle.pid), "the children are left in the group");
        kill_group(handle);
        finish_kills().await;
        wait_group_gone(handle.pid).await;
    }

    #[tokio::test]
    async fn killing_the_group_ends_the_process_without_an_exit_code() {
        let dir = tempfile::tempdir().unwrap();
        let command = NodeCommand {
            script: "sleep 30\n".into(),
            script_file: dir.path().join("run.sh"),
            log: dir.path().join("run.log"),
            exit_file: dir.path().join("exit"),
            pid_file: dir.path().join("pid"),
            prefix: String::new(),
            cwd: dir.path().to_path_buf(),
            env: vec![],
            run_as: None,
        };
        prepare(&command).unwrap();
        let process = spawn(&command).unwrap();
        let handle = process.handle;
        kill_group(handle);
        wait_child(process.child).await;
        let code = read_exit_code(&command.exit_file);
        assert!(code.is_none() || code != Some(0), "{code:?}");
        assert!(!is_alive(handle));
    }
}
