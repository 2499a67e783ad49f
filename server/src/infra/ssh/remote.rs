//! The shell scripts the SSH infra runs on a pool's hosts (with bash, as the
//! pool's user, from the user's home). Every value that reaches a script is
//! quoted (`quote`); cluster names, ranks, job ids and phases are checked
//! names and numbers.

use crate::infra::{RunRef, process};

/// Where a cluster's nodes live on a host, under the user's home.
pub fn cluster_dir(cluster: &str) -> String {
    format!("\"$HOME\"/.sky-api/clusters/{cluster}")
}

pub fn node_home(cluster: &str, rank: i32) -> String {
    format!("{}/node-{rank}", cluster_dir(cluster))
}

pub fn job_dir(cluster: &str, job_id: i64) -> String {
    format!("{}/jobs/{job_id}", cluster_dir(cluster))
}

/// A run's own files: `<job dir>/<phase>-<rank>.<extension>`.
pub fn run_file(run: &RunRef, extension: &str) -> String {
    format!("{}/{}-{}.{extension}", job_dir(&run.cluster, run.job_id), run.phase, run.rank)
}

/// The job's log on the head node's host, which `read_log` serves.
pub fn job_log(cluster: &str, job_id: i64) -> String {
    format!("{}/run.log", job_dir(cluster, job_id))
}

/// `text` as one shell word.
pub fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// Makes the nodes' folders of `ranks` on one host.
pub fn provision(cluster: &str, ranks: &[i32]) -> String {
    let mut script = format!("set -e\nmkdir -p {}/jobs\n", cluster_dir(cluster));
    for rank in ranks {
        script += &format!("mkdir -p {}/sky_workdir\n", node_home(cluster, *rank));
    }
    script
}

/// Removes the cluster from one host.
pub fn release(cluster: &str) -> String {
    format!("rm -rf {}\n", cluster_dir(cluster))
}

/// Starts a run detached, in a session and process group of its own,
/// appending its output to `log`; prints "PID START_TICKS" ("PID gone" when
/// it ended already). A run that
/// already started (the same command sent again after a lost connection)
/// is reported, not started twice.
pub fn start(
    run: &RunRef,
    script: &str,
    env: &[(String, String)],
    prefix: &str,
    log: &str,
    delimiter: &str,
) -> String {
    let (script_file, exit_file, pid_file) =
        (run_file(run, "sh"), run_file(run, "exit"), run_file(run, "pid"));
    let home = node_home(&run.cluster, run.rank);
    let mut out = format!(
        "set -e\nmkdir -p {job}\n\
         if pid=$(cat {pid_file} 2>/dev/null) && [ -r /proc/$pid/stat ] && \
         [ \"$(awk '{{print $5}}' /proc/$pid/stat 2>/dev/null)\" = \"$pid\" ]; then \
         ticks=$(awk '{{print $22}}' /proc/$pid/stat 2>/dev/null) || true; echo \"$pid ${{ticks:-gone}}\"; exit 0; fi\n\
         cat > {script_file} <<'{delimiter}'\n{script}\n{delimiter}\n\
         rm -f {exit_file} {pid_file}\ncd {home}/sky_workdir\n",
        job = job_dir(&run.cluster, run.job_id),
    );
    // Names are checked when the task is accepted; one that is no shell name is left out.
    for (key, value) in env.iter().filter(|(key, _)| is_env_name(key)) {
        out += &format!("export {key}={}\n", quote(value));
    }
    out += &format!(
        "HOME={home} setsid bash -c {wrapper} {name} {script_file} {log} {exit_file} {prefix} {pid_file} \
         </dev/null >/dev/null 2>&1 &\n\
         pid=$!\necho \"$pid\" > {pid_file}\n\
         ticks=$(awk '{{print $22}}' /proc/$pid/stat 2>/dev/null) || true\necho \"$pid ${{ticks:-gone}}\"\n",
        wrapper = quote(process::WRAPPER),
        name = process::WRAPPER_NAME,
        prefix = quote(prefix),
    );
    out
}

fn is_env_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Prints "PID START_TICKS" of a started run that leads its group, "PID
/// gone" for one that ended, nothing for one that never started.
pub fn find(run: &RunRef) -> String {
    format!(
        "pid=$(cat {} 2>/dev/null) || exit 0\n\
         if [ -r /proc/$pid/stat ] && [ \"$(awk '{{print $5}}' /proc/$pid/stat)\" = \"$pid\" ]; then \
         echo \"$pid $(awk '{{print $22}}' /proc/$pid/stat)\"; else echo \"$pid gone\"; fi\n",
        run_file(run, "pid")
    )
}

/// Prints "running" while the run's process lives (a zombie that its new
/// parent has not reaped yet has ended), else its exit code (nothing when
/// it was killed before writing one).
pub fn poll(run: &RunRef, pid: u32, start_ticks: u64) -> String {
    format!(
        "set -- $(awk '{{print $3, $22}}' /proc/{pid}/stat 2>/dev/null)\n\
         if [ \"${{2:-}}\" = \"{start_ticks}\" ] && [ \"$1\" != Z ]; then echo running; \
         else cat {} 2>/dev/null || true; fi\n",
        run_file(run, "exit")
    )
}

/// Ends a run's process group (SIGTERM, SIGKILL 3 s later), if the pid is
/// still that run's.
pub fn terminate(pid: u32, start_ticks: u64) -> String {
    format!(
        "if [ \"$(awk '{{print $5, $22}}' /proc/{pid}/stat 2>/dev/null)\" = \"{pid} {start_ticks}\" ]; then \
         kill -TERM -- -{pid} 2>/dev/null || true; \
         for i in $(seq 30); do kill -0 -- -{pid} 2>/dev/null || exit 0; sleep 0.1; done; \
         kill -KILL -- -{pid} 2>/dev/null || true; fi\n"
    )
}

/// Up to `len` bytes of a file from `offset` (nothing when it is missing).
pub fn read_chunk(file: &str, offset: u64, len: usize) -> String {
    format!("[ -f {file} ] || exit 0\ntail -c +{} {file} | head -c {len}\n", offset + 1)
}

/// Prints where the last `lines` lines of a file start (0 when it is missing).
pub fn tail_offset(file: &str, lines: u64) -> String {
    format!(
        "[ -f {file} ] || {{ echo 0; exit 0; }}\nsize=$(stat -c %s {file})\n\
         last=$(tail -n {lines} {file} | wc -c)\necho $((size - last))\n"
    )
}

/// Prints how many bytes of a worker run's log were appended to the job's
/// log (kept in `counter` on the head's host).
pub fn merged_bytes(counter: &str) -> String {
    format!("cat {counter} 2>/dev/null || echo 0\n")
}

/// Appends the `len` bytes on standard input to `log` when `counter` says
/// `merged` bytes were appended so far (else drops them: another merge got
/// there first), then prints the count.
pub fn append_at(log: &str, counter: &str, merged: u64, len: usize) -> String {
    format!(
        "have=$(cat {counter} 2>/dev/null || echo 0)\n\
         if [ \"$have\" = {merged} ]; then\n\
         part=$(mktemp) && cat > \"$part\" && [ \"$(stat -c %s \"$part\")\" = {len} ] && cat \"$part\" >> {log} \
         && echo {next} > {counter}.partial && mv {counter}.partial {counter}\n\
         rm -f \"$part\"\n\
         else cat > /dev/null; fi\n\
         cat {counter} 2>/dev/null || echo 0\n",
        next = merged + len as u64
    )
}

/// Lists the ids of the cluster's jobs that have a log.
pub fn logged_jobs(cluster: &str) -> String {
    format!(
        "cd {}/jobs 2>/dev/null || exit 0\nfor d in */; do [ -f \"$d/run.log\" ] && echo \"${{d%/}}\"; done; true\n",
        cluster_dir(cluster)
    )
}

/// Unpacks a tar stream on standard input into the folder `dest`.
pub fn unpack_into(dest: &str) -> String {
    format!("set -e\nmkdir -p {dest}\ntar -C {dest} -xf -\n")
}

/// Lists the regular files under `dest` (if it exists): "SIZE MTIME PATH",
/// each ended by a NUL.
pub fn listing(dest: &str) -> String {
    format!("cd {dest} 2>/dev/null || exit 0\nfind . -type f -printf '%s %T@ %P\\0'\n")
}

/// Unpacks a one-entry tar stream and puts its entry at `dest`.
pub fn unpack_as(dest: &str, entry: &str, scratch: &str) -> String {
    format!(
        "set -e\nmkdir -p {scratch}\ntar -C {scratch} -xf -\nmkdir -p \"$(dirname {dest})\"\nrm -rf {dest}\n\
         mv {scratch}/{entry} {dest}\nrm -rf {scratch}\n",
        entry = quote(entry)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_keeps_any_text_one_word() {
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!("printf %s {}", quote("it's $HOME `x` \"y\"\n")))
            .output()
            .unwrap();
        assert_eq!(out.stdout, b"it's $HOME `x` \"y\"\n");
    }
}
