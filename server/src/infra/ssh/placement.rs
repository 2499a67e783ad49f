//! Where the nodes of a pool's clusters are: one file per cluster, so that a
//! restarted server finds every node again, and the choice of hosts for a
//! new cluster beside what the others hold.
//!
//! A placement file is `needs <cpus> <GiB> <gpus>` (what each node holds),
//! then one line per node by rank: its host's label and the indices of the
//! host's GPUs it holds (`user@10.0.0.2:22 0,1`).

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use crate::{
    error::Result,
    infra::{Capacity, Nodes},
};

/// One node of a cluster: its host and the host's GPUs it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacedNode {
    pub host: String,
    pub gpus: Vec<u32>,
}

/// Where a cluster's nodes are, and what each holds there.
#[derive(Debug, Clone, PartialEq)]
pub struct Placement {
    pub needs: Nodes,
    pub nodes: Vec<PlacedNode>,
}

/// What the nodes of other clusters hold on one host.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Held {
    pub cpus: f64,
    pub memory_gib: f64,
    pub gpus: Vec<u32>,
}

impl Held {
    fn add(&mut self, needs: &Nodes, gpus: &[u32]) {
        self.cpus += needs.cpus;
        self.memory_gib += needs.memory_gib;
        self.gpus.extend_from_slice(gpus);
    }
}

/// The placement files of one pool.
pub struct Placements {
    dir: PathBuf,
}

impl Placements {
    pub fn new(dir: PathBuf) -> std::io::Result<Placements> {
        std::fs::create_dir_all(&dir)?;
        Ok(Placements { dir })
    }

    fn file(&self, cluster: &str) -> PathBuf {
        self.dir.join(cluster)
    }

    /// The cluster's placement; None when it has none.
    pub fn read(&self, cluster: &str) -> Result<Option<Placement>> {
        read_file(&self.file(cluster))
    }

    /// Records where a cluster's nodes are, whole or not at all.
    pub fn write(&self, cluster: &str, placement: &Placement) -> Result<()> {
        let needs = &placement.needs;
        let mut text = format!("needs {} {} {}\n", needs.cpus, needs.memory_gib, needs.gpus);
        for node in &placement.nodes {
            let gpus: Vec<String> = node.gpus.iter().map(u32::to_string).collect();
            text += &format!("{} {}\n", node.host, gpus.join(","));
        }
        let file = self.file(cluster);
        let partial = file.with_extension("partial");
        std::fs::write(&partial, text)?;
        std::fs::rename(&partial, &file)?;
        Ok(())
    }

    pub fn remove(&self, cluster: &str) -> Result<()> {
        match std::fs::remove_file(self.file(cluster)) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(err.into()),
            _ => Ok(()),
        }
    }

    /// What the nodes of clusters other than `except` hold, by host label.
    pub fn held_per_host(&self, except: &str) -> HashMap<String, Held> {
        let mut held: HashMap<String, Held> = HashMap::new();
        for entry in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let name = entry.file_name();
            if name == except || name.to_string_lossy().ends_with(".partial") {
                continue;
            }
            let Ok(Some(placement)) = read_file(&entry.path()) else { continue };
            for node in &placement.nodes {
                held.entry(node.host.clone()).or_default().add(&placement.needs, &node.gpus);
            }
        }
        held
    }
}

fn read_file(file: &Path) -> Result<Option<Placement>> {
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err.into()),
    };
    let mut lines = text.lines();
    let needs = lines.next().and_then(|line| line.strip_prefix("needs ")).unwrap_or_default();
    let mut numbers = needs.split_whitespace().map(|number| number.parse::<f64>().unwrap_or(0.0));
    let nodes: Vec<PlacedNode> = lines
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let host = words.next()?.to_string();
            let gpus = words.next().unwrap_or("").split(',').filter_map(|index| index.parse().ok()).collect();
            Some(PlacedNode { host, gpus })
        })
        .collect();
    let needs = Nodes {
        count: nodes.len() as i32,
        cpus: numbers.next().unwrap_or(0.0),
        memory_gib: numbers.next().unwrap_or(0.0),
        gpus: numbers.next().unwrap_or(0.0) as u32,
        region: None,
    };
    Ok(Some(Placement { needs, nodes }))
}

/// A host that answered: what it has, and what other clusters hold there.
pub struct Room {
    pub host: String,
    pub capacity: Capacity,
    pub held: Held,
}

/// Picks a host for each of `nodes` among `rooms`: a host of its own while
/// there are enough, else the one with fewest of this cluster's nodes and
/// then the least held; each node gets the lowest free GPU indices. When
/// they do not all fit, says for each host what it has free.
pub fn choose(mut rooms: Vec<Room>, nodes: &Nodes) -> std::result::Result<Vec<PlacedNode>, Vec<String>> {
    let mut mine = vec![0usize; rooms.len()];
    let mut placed = Vec::new();
    for _ in 0..nodes.count {
        let chosen = (0..rooms.len())
            .filter(|&i| fits(&rooms[i], nodes).is_ok())
            .min_by(|&a, &b| mine[a].cmp(&mine[b]).then(rooms[a].held.cpus.total_cmp(&rooms[b].held.cpus)));
        let Some(i) = chosen else {
            return Err(rooms
                .iter()
                .map(|room| {
                    let why = fits(room, nodes).err().unwrap_or_else(|| "room for fewer nodes".into());
                    format!("{}: {why}", room.host)
                })
                .collect());
        };
        let room = &mut rooms[i];
        let gpus: Vec<u32> = (0..room.capacity.gpus.len() as u32)
            .filter(|index| !room.held.gpus.contains(index))
            .take(nodes.gpus as usize)
            .collect();
        room.held.add(nodes, &gpus);
        mine[i] += 1;
        placed.push(PlacedNode { host: room.host.clone(), gpus });
    }
    Ok(placed)
}

/// Whether `room` has space for one more node of `nodes`; else what it has free.
fn fits(room: &Room, nodes: &Nodes) -> std::result::Result<(), String> {
    let capacity = &room.capacity;
    let free_cpus = capacity.cpus as f64 - room.held.cpus;
    let free_memory = capacity.memory_gib - room.held.memory_gib;
    let free_gpus = capacity.gpus.len().saturating_sub(room.held.gpus.len());
    if nodes.cpus > free_cpus + 1e-9
        || nodes.memory_gib > free_memory + 1e-9
        || nodes.gpus as usize > free_gpus
    {
        return Err(format!(
            "{free_cpus} of {} CPUs, {free_memory:.1} GiB memory, {free_gpus} of {} GPU(s) free",
            capacity.cpus,
            capacity.gpus.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(host: &str, cpus: usize, gpus: usize) -> Room {
        Room {
            host: host.into(),
            capacity: Capacity { cpus, memory_gib: 16.0, gpus: vec!["H100".into(); gpus] },
            held: Held::default(),
        }
    }

    fn nodes(count: i32, cpus: f64, gpus: u32) -> Nodes {
        Nodes { count, cpus, gpus, ..Nodes::default() }
    }

    #[test]
    fn each_node_gets_a_host_of_its_own_and_free_gpu_indices() {
        let mut busy = room("b", 8, 4);
        busy.held.add(&nodes(1, 1.0, 2), &[0, 2]);
        let placed = choose(vec![room("a", 8, 4), busy], &nodes(2, 2.0, 2)).unwrap();
        assert_eq!(
            placed,
            [
                PlacedNode { host: "a".into(), gpus: vec![0, 1] },
                PlacedNode { host: "b".into(), gpus: vec![1, 3] }
            ]
        );
    }

    #[test]
    fn nodes_share_a_host_only_when_there_are_too_few_and_never_share_a_gpu() {
        let placed = choose(vec![room("a", 8, 4)], &nodes(2, 1.0, 2)).unwrap();
        assert_eq!(placed[0].gpus, [0, 1]);
        assert_eq!(placed[1].gpus, [2, 3]);
        let refused = choose(vec![room("a", 8, 4)], &nodes(3, 1.0, 2)).unwrap_err();
        assert_eq!(refused, ["a: 6 of 8 CPUs, 16.0 GiB memory, 0 of 4 GPU(s) free"]);
    }

    #[test]
    fn a_placement_reads_back_as_written_and_counts_as_held_for_others() {
        let dir = tempfile::tempdir().unwrap();
        let placements = Placements::new(dir.path().join("lab")).unwrap();
        let placement = Placement {
            needs: nodes(2, 1.5, 1),
            nodes: vec![
                PlacedNode { host: "u@a:22".into(), gpus: vec![3] },
                PlacedNode { host: "u@b:22".into(), gpus: vec![0] },
            ],
        };
        placements.write("train", &placement).unwrap();
        assert_eq!(placements.read("train").unwrap(), Some(placement));
        let held = placements.held_per_host("other");
        assert_eq!(held["u@a:22"], Held { cpus: 1.5, memory_gib: 0.0, gpus: vec![3] });
        assert!(placements.held_per_host("train").is_empty(), "a cluster does not hold against itself");
        placements.remove("train").unwrap();
        assert_eq!(placements.read("train").unwrap(), None);
    }
}
