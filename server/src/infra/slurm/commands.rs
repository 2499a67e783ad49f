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
        let state = self.state.trim_end_matches(['*', '~', '#', '!', '%', '$', '@', '^', '-']);
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
    nodes
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
                "PartitionConfig"
                    | "PartitionNodeLimit"
                    | "PartitionTimeLimit"
                    | "BadConstraints"
                    | "AccountNotAllowed"
                    | "QOSNotAllowed"
                    | "InvalidAccount"
                    | "InvalidQOS"
            )
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
            "COMPLETED" | "COMPLETING" | "FAILED" => "its batch step ended",
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
        "line=$(squeue -h -t all -u \"$(id -un)\" --name={} -o '%i|%T|%r|%N' | sort -t '|' -k1,1n | tail -n 1)\n\
         [ -n \"$line\" ] || exit 0\necho \"$line\"\nnodes=${{line##*|}}\n\
         case \"$nodes\" in ''|'(null)'|n/a) ;; *) scontrol show hostnames \"$nodes\" ;; esac\n",
        quote(job_name)
    )
}

/// The allocation `lookup` printed.
pub fn parse_lookup(output: &str) -> Option<Allocation> {
    let mut lines = output.lines().map(str::trim).filter(|line| !line.is_empty());
    let fields: Vec<&str> = lines.next()?.split('|').collect();
    let [id, state, reason, _] = fields.as_slice() else { return None };
    Some(Allocation {
        job_id: id.parse().ok()?,
        state: state.to_string(),
        reason: reason.to_string(),
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
/// (up to a minute) until none is pending or running; what follows the
/// script runs once they are gone.
pub fn cancel(job_name: &str) -> String {
    let active = format!(
        "squeue -h -u \"$(id -un)\" --name={} -t PENDING,CONFIGURING,RUNNING,SUSPENDED,COMPLETING -o %i | grep -q .",
        quote(job_name)
    );
    format!(
        "scancel -u \"$(id -un)\" --name={}\n\
         for i in $(seq 600); do {active} || break; sleep 0.1; done\n\
         if {active}; then echo 'Slurm did not end the allocation within a minute' >&2; exit 3; fi\n",
        quote(job_name)
    )
}

/// What a run executes on the login node: the step that runs the rest of
/// the same file on `node` of allocation `job_id` (the file is on the
/// shared home), then, inside the step, `script`. Slurm's own line about a
/// task's exit code is left out of the log: the job's status says it.
pub fn step_script(run: &RunRef, job_id: u64, node: &str, script: &str) -> String {
    format!(
        "if [ -z \"${{SKY_SLURM_STEP:-}}\" ]; then\n\
         SKY_SLURM_STEP=1 srun --jobid={job_id} --overlap --nodes=1 --ntasks=1 --nodelist={node} \
         --job-name=sky-{job}-{phase}-{rank} --quiet bash \"$0\" 2>&1 | \
         sed -u '/^srun: error: [^ ]*: task [0-9]*: Exited with exit code [0-9]*$/d'\n\
         exit \"${{PIPESTATUS[0]}}\"\nfi\nunset SKY_SLURM_STEP\n{script}",
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
        assert_eq!(nodes[0].capacity(), Capacity { cpus: 4, memory_gib: 7900.0 / 1024.0, gpus: vec![] });
        assert_eq!(nodes[1].gpus, ["a100"; 4]);
        assert_eq!(nodes[2].gpus, ["GPU"; 2]);
        assert!(nodes[1].usable() && !nodes[2].usable());
    }

    #[test]
    fn an_allocation_says_what_slurm_did_to_it() {
        let found = parse_lookup("12|RUNNING|None|node[1-2]\nnode1\nnode2\n").unwrap();
        assert_eq!(
            found,
            Allocation {
                job_id: 12,
                state: "RUNNING".into(),
                reason: "None".into(),
                nodes: vec!["node1".into(), "node2".into()]
            }
        );
        assert!(found.running());
        let pending = parse_lookup("13|PENDING|Resources|\n").unwrap();
        assert!(pending.waiting() && pending.nodes.is_empty());
        assert_eq!(pending.describe(), "PENDING (Resources)");
        assert!(!pending.never_starts());
        assert!(Allocation { reason: "PartitionNodeLimit".into(), ..pending.clone() }.never_starts());
        let ended = Allocation { state: "TIMEOUT".into(), ..found };
        assert_eq!(ended.describe(), "TIMEOUT: it reached its time limit");
        assert_eq!(parse_lookup(""), None);
    }
}
