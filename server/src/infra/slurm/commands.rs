//! The Slurm commands the Slurm infra runs on a cluster's login node (as the
//! configured user, over SSH), and what their output means. Every value
//! that reaches a script is quoted or a checked name or number.

use crate::infra::{Capacity, Nodes, RunRef, ssh::remote::quote};

/// One node as `sinfo` reports it (once per partition it is in).
#[derive(Debug, Clone, PartialEq)]
pub struct SlurmNode {
    pub name: String,
    /// Its partitions; the default one ends with '*'.
    pub partitions: Vec<String>,
    pub cpus: usize,
    pub memory_mib: u64,
    /// One name per GPU (the GRES type, or "GPU" where it has none).
    pub gpus: Vec<String>,
    /// idle, mixed, allocated, down, drained ...
    pub state: String,
}

impl SlurmNode {
    /// Whether the node takes jobs.
    pub fn usable(&self) -> bool {
        // '*' (not responding) and '$' (maintenance) keep a node from jobs;
        // the power-saving and reboot marks do not.
        let state = self.state.trim_end_matches(['~', '#', '!', '%', '@', '^', '-']);
        matches!(state, "idle" | "mixed" | "allocated" | "completing" | "planned")
    }

    pub fn capacity(&self) -> Capacity {
        Capacity { cpus: self.cpus, memory_gib: self.memory_mib as f64 / 1024.0, gpus: self.gpus.clone() }
    }
}

/// Lists the nodes: "NAME|PARTITION|CPUS|MEMORY_MB|GRES|STATE" per node and partition.
pub const SINFO: &str = "sinfo -h -N -o '%N|%P|%c|%m|%G|%T'\n";

/// The nodes of `sinfo`'s output, each once with all its partitions.
pub fn parse_sinfo(output: &str) -> Vec<SlurmNode> {
    let mut nodes: Vec<SlurmNode> = Vec::new();
    for line in output.lines() {
        let fields: Vec<&str> = line.trim().split('|').collect();
        let [name, partition, cpus, memory, gres, state] = fields.as_slice() else { continue };
        if let Some(known) = nodes.iter_mut().find(|node| node.name == *name) {
            known.partitions.push(partition.to_string());
            continue;
        }
        nodes.push(SlurmNode {
            name: name.to_string(),
            partitions: vec![partition.to_string()],
            cpus: cpus.trim().parse().unwrap_or(0),
            memory_mib: memory.trim().trim_end_matches('+').parse().unwrap_or(0),
            gpus: parse_gpus(gres),
            state: state.to_string(),
        });
    }
    for node in &mut nodes {
        sort_partitions(&mut node.partitions);
    }
    nodes
}

/// The default partition (marked '*') first, then the others by name.
pub fn sort_partitions<T: AsRef<str>>(partitions: &mut [T]) {
    partitions.sort_by_key(|partition| (!partition.as_ref().ends_with('*'), partition.as_ref().to_string()));
}

/// The GPUs of a node's GRES: `gpu:a100:4(S:0-1),shard:8` holds four "a100".
fn parse_gpus(gres: &str) -> Vec<String> {
    let mut gpus = Vec::new();
    for entry in gres.split(',') {
        let entry = entry.split('(').next().unwrap_or_default();
        let parts: Vec<&str> = entry.split(':').collect();
        let (name, count) = match parts.as_slice() {
            ["gpu", count] => ("GPU", *count),
            ["gpu", name, count] => (*name, *count),
            _ => continue,
        };
        let count: usize = count.parse().unwrap_or(0);
        gpus.extend(std::iter::repeat_n(name.to_string(), count));
    }
    gpus
}

/// Slurm's state of one allocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    pub job_id: u64,
    /// PENDING, RUNNING, CANCELLED, TIMEOUT, NODE_FAIL ...
    pub state: String,
    /// Why it waits (or ended), as Slurm says.
    pub reason: String,
    /// The CPUs it holds on each node.
    pub cpus_per_node: u32,
    /// Its nodes, in rank order (empty while it waits).
    pub nodes: Vec<String>,
}

impl Allocation {
    pub fn running(&self) -> bool {
        self.state == "RUNNING"
    }

    /// Whether it still waits for its nodes.
    pub fn waiting(&self) -> bool {
        matches!(self.state.as_str(), "PENDING" | "CONFIGURING" | "REQUEUED" | "RESIZING" | "SUSPENDED")
    }

    /// Whether it waits for something that will not come by itself: a
    /// request beyond what its partition, account or QOS allows (Slurm
    /// queues it rather than refusing it where limits are not enforced at
    /// submission).
    pub fn never_starts(&self) -> bool {
        self.waiting()
            && matches!(
                self.reason.as_str(),
                "BadConstraints" | "AccountNotAllowed" | "QOSNotAllowed" | "InvalidAccount" | "InvalidQOS"
            )
    }

    /// Whether it waits on a partition limit, which holds for good when the
    /// partition has too few nodes of the size asked for (counting those
    /// down or drained), and for a while when some are down or drained.
    pub fn waits_on_partition(&self) -> bool {
        self.waiting() && matches!(self.reason.as_str(), "PartitionConfig" | "PartitionNodeLimit")
    }

    /// What Slurm did to it, for messages: "PENDING (Resources)",
    /// "TIMEOUT: it reached its time limit".
    pub fn describe(&self) -> String {
        let why = match self.state.as_str() {
            "CANCELLED" => "it was cancelled (scancel, by its user or an admin)",
            "TIMEOUT" => "it reached its time limit",
            "NODE_FAIL" => "one of its nodes failed",
            "PREEMPTED" => "it was preempted",
            "BOOT_FAIL" => "a node failed to boot",
            "DEADLINE" => "it reached its deadline",
            "OUT_OF_MEMORY" => "it ran out of memory",
            "COMPLETING" => "it is ending",
            "COMPLETED" | "FAILED" => "its batch step ended",
            _ => "",
        };
        match (why, self.reason.as_str()) {
            ("", "" | "None") => self.state.clone(),
            ("", reason) => format!("{} ({reason})", self.state),
            (why, _) => format!("{}: {why}", self.state),
        }
    }
}

/// Prints the newest allocation named `job_name` of the login user
/// ("ID|STATE|REASON|NODELIST"), then its nodes one per line; nothing when
/// Slurm knows none.
pub fn lookup(job_name: &str) -> String {
    format!(
        "all=$(squeue -h -t all -u \"$(id -un)\" --name={} -o '%i|%T|%r|%c|%N') || exit 4\n\
         line=$(printf '%s\\n' \"$all\" | sort -t '|' -k1,1n | tail -n 1)\n\
         [ -n \"$line\" ] || exit 0\necho \"$line\"\nnodes=${{line##*|}}\n\
         case \"$nodes\" in ''|'(null)'|n/a) ;; *) scontrol show hostnames \"$nodes\" ;; esac\n",
        quote(job_name)
    )
}

/// The allocation `lookup` printed.
pub fn parse_lookup(output: &str) -> Option<Allocation> {
    let mut lines = output.lines().map(str::trim).filter(|line| !line.is_empty());
    let fields: Vec<&str> = lines.next()?.split('|').collect();
    let [id, state, reason, cpus, _] = fields.as_slice() else { return None };
    Some(Allocation {
        job_id: id.parse().ok()?,
        state: state.to_string(),
        reason: reason.to_string(),
        cpus_per_node: cpus.trim().parse().unwrap_or(0),
        nodes: lines.map(str::to_string).collect(),
    })
}

/// Asks Slurm for an allocation of `nodes` named `job_name`, held by a
/// batch step that sleeps; prints its job id. Not requeued: a failed node
/// ends it, and the cluster's jobs are lost with it.
pub fn submit(job_name: &str, nodes: &Nodes, partition: Option<&str>) -> String {
    let mut options = format!(
        "--parsable --job-name={} --nodes={} --ntasks-per-node=1 --cpus-per-task={} --no-requeue \
         --output=/dev/null --error=/dev/null",
        quote(job_name),
        nodes.count.max(1),
        nodes.cpus.ceil().max(1.0) as u64,
    );
    if nodes.memory_gib > 0.0 {
        options += &format!(" --mem={}M", (nodes.memory_gib * 1024.0).ceil() as u64);
    }
    if nodes.gpus > 0 {
        options += &format!(" --gres=gpu:{}", nodes.gpus);
    }
    if let Some(partition) = partition {
        options += &format!(" --partition={}", quote(partition));
    }
    format!("sbatch {options} --wrap='exec sleep infinity'\n")
}

/// Cancels every allocation named `job_name` of the login user, and waits
/// (up to 45 s, within one command's time) until Slurm lists none pending or
/// running; fails when Slurm does not answer, so that nothing is forgotten
/// while Slurm still holds it. What follows the script runs once they are gone.
pub fn cancel(job_name: &str) -> String {
    let name = quote(job_name);
    format!(
        "scancel -u \"$(id -un)\" --name={name} || {{ echo 'scancel failed' >&2; exit 4; }}\n\
         for i in $(seq 450); do\n\
         left=$(squeue -h -u \"$(id -un)\" --name={name} -t PENDING,CONFIGURING,RUNNING,SUSPENDED,COMPLETING -o %i) \
         || {{ echo 'squeue failed' >&2; exit 4; }}\n\
         [ -n \"$left\" ] || break\nsleep 0.1\ndone\n\
         if [ -n \"$left\" ]; then echo \"Slurm did not end allocation $left within 45 s\" >&2; exit 3; fi\n"
    )
}

/// Cancels the step a run started (named after the run's process on the
/// login node), where it outlived that process.
pub fn cancel_step(job_id: u64, pid: u32) -> String {
    format!(
        "for step in $(squeue -h -s -j {job_id} -o '%i %j' 2>/dev/null | awk '$2 ~ /^sky-.*-{pid}$/ {{print $1}}'); do \
         scancel \"$step\"; done; true\n"
    )
}

/// What a run executes on the login node: the step that runs the rest of
/// the same file on `node` of `allocation` (the file is on the shared
/// home), with the CPUs the allocation holds there, then, inside the step,
/// `script`. `marker` (random, per run) tells the step apart from the
/// launcher, whatever the task's own environment holds. The step is named
/// after the run and its process on the login node (the launcher's parent),
/// so that `cancel_step` finds it. Slurm's own line about a task's exit code
/// is left out of the log: the job's status says it.
pub fn step_script(run: &RunRef, allocation: &Allocation, node: &str, marker: &str, script: &str) -> String {
    let cpus = match allocation.cpus_per_node {
        0 => String::new(),
        cpus => format!(" --cpus-per-task={cpus}"),
    };
    format!(
        "if [ \"${{SKY_SLURM_STEP:-}}\" != {marker} ]; then\n\
         SKY_SLURM_STEP={marker} srun --jobid={job_id} --overlap --nodes=1 --ntasks=1{cpus} --nodelist={node} \
         --job-name=\"sky-{job}-{phase}-{rank}-$PPID\" --quiet bash \"$0\" 2>&1 | \
         sed -u '/^srun: error: [^ ]*: task [0-9]*: Exited with exit code [0-9]*$/d'\n\
         exit \"${{PIPESTATUS[0]}}\"\nfi\nunset SKY_SLURM_STEP\n{script}",
        marker = quote(marker),
        job_id = allocation.job_id,
        node = quote(node),
        job = run.job_id,
        phase = run.phase,
        rank = run.rank,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sinfo_lists_each_node_once_with_its_partitions_and_gpus() {
        let nodes = parse_sinfo(
            "node1|main*|4|7900|(null)|idle\nnode1|debug|4|7900|(null)|idle\n\
             gpu1|gpu|64|512000|gpu:a100:4(S:0-1),shard:8|mixed\ngpu2|gpu|64|512000|gpu:2|down*\n",
        );
        assert_eq!(nodes.len(), 3);
        assert_eq!(nodes[0].partitions, ["main*", "debug"]);
        let mut listed = ["debug", "gpu", "main*"];
        sort_partitions(&mut listed);
        assert_eq!(listed, ["main*", "debug", "gpu"], "the default first, then by name");
        assert_eq!(nodes[0].capacity(), Capacity { cpus: 4, memory_gib: 7900.0 / 1024.0, gpus: vec![] });
        assert_eq!(nodes[1].gpus, ["a100"; 4]);
        assert_eq!(nodes[2].gpus, ["GPU"; 2]);
        assert!(nodes[1].usable() && !nodes[2].usable());
    }

    #[test]
    fn an_allocation_says_what_slurm_did_to_it() {
        let found = parse_lookup("12|RUNNING|None|4|node[1-2]\nnode1\nnode2\n").unwrap();
        assert_eq!(
            found,
            Allocation {
                job_id: 12,
                state: "RUNNING".into(),
                reason: "None".into(),
                cpus_per_node: 4,
                nodes: vec!["node1".into(), "node2".into()]
            }
        );
        assert!(found.running());
        let pending = parse_lookup("13|PENDING|Resources|1|\n").unwrap();
        assert!(pending.waiting() && pending.nodes.is_empty());
        assert_eq!(pending.describe(), "PENDING (Resources)");
        assert!(!pending.never_starts() && !pending.waits_on_partition());
        assert!(Allocation { reason: "InvalidQOS".into(), ..pending.clone() }.never_starts());
        assert!(Allocation { reason: "PartitionNodeLimit".into(), ..pending.clone() }.waits_on_partition());
        let ended = Allocation { state: "TIMEOUT".into(), ..found };
        assert_eq!(ended.describe(), "TIMEOUT: it reached its time limit");
        assert_eq!(parse_lookup(""), None);
    }
}
