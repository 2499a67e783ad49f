//! The Slurm infra against a real Slurm (a controller and two node daemons
//! on this host) reached through a real login node over SSH.

use std::sync::Arc;

use super::{SlurmInfra, config::SlurmCluster};
use crate::infra::{
    Infra, Nodes, RunEnd, RunRef, RunSpec,
    ssh::{connection::Ssh, pools::Host},
};

use crate::infra::ssh::pool::ssh_hosts;

#[path = "../../../tests/common/ports.rs"]
mod ports;

#[path = "../../../tests/common/slurm_cluster.rs"]
#[allow(dead_code)]
mod slurm_cluster;

fn cluster_of(slurm: &slurm_cluster::TestSlurm) -> SlurmCluster {
    let host = slurm.login_host();
    SlurmCluster {
        name: "test".into(),
        login: Host {
            address: host.address.clone(),
            user: host.user.name.clone(),
            port: host.port,
            identity_file: Some(slurm.login.key.clone()),
        },
    }
}

#[tokio::test]
async fn a_slurm_cluster_keeps_the_infra_contract() {
    let slurm = slurm_cluster::TestSlurm::start(2, 4);
    let state = tempfile::tempdir().unwrap();
    let ssh = Arc::new(Ssh::new(state.path().join("ssh")).unwrap());
    let open = || SlurmInfra::new(cluster_of(&slurm), ssh.clone(), state.path()).unwrap();
    let reopen = || Box::new(open()) as Box<dyn Infra>;
    let infra = open();
    crate::infra::contract::check(&infra, &reopen, state.path()).await;
    assert!(slurm.active_jobs().is_empty(), "the allocation is released: {:?}", slurm.active_jobs());
    ssh.close().await;
}

#[tokio::test]
async fn ranks_run_as_steps_on_their_own_nodes_and_an_allocation_ended_by_slurm_loses_its_runs() {
    let slurm = slurm_cluster::TestSlurm::start(2, 4);
    let state = tempfile::tempdir().unwrap();
    let ssh = Arc::new(Ssh::new(state.path().join("ssh")).unwrap());
    let infra = SlurmInfra::new(cluster_of(&slurm), ssh.clone(), state.path()).unwrap();
    let provisioned = infra.provision("pair", &Nodes::any(2)).await.unwrap();
    assert_eq!(provisioned.addresses, ["node1", "node2"]);
    let spec = |job_id, rank: i32, script: &str| RunSpec {
        run: RunRef { cluster: "pair".into(), job_id, phase: "run", rank },
        script: script.into(),
        env: vec![],
        log_prefix: format!("({rank}) "),
    };
    for rank in 0..2 {
        let run = spec(1, rank, "echo \"on $SLURMD_NODENAME\"; exit 4");
        let handle = infra.start(&run).await.unwrap();
        assert_eq!(infra.wait(&run.run, handle).await, RunEnd::Exited(4));
    }
    let log = String::from_utf8(infra.read_log("pair", 1, 0).await.unwrap()).unwrap();
    assert_eq!(log, "(0) on node1\n(1) on node2\n", "Slurm's own exit-code line is left out");

    // An admin cancels the allocation under a running step.
    let run = spec(2, 1, "sleep 60");
    let handle = infra.start(&run).await.unwrap();
    let job = slurm
        .active_jobs()
        .into_iter()
        .next()
        .expect("the allocation")
        .split(' ')
        .next()
        .unwrap()
        .to_string();
    let cancelled = slurm.as_root(&["scancel", &job]);
    assert!(cancelled.status.success());
    match infra.wait(&run.run, handle).await {
        RunEnd::Lost(why) => assert!(why.contains("CANCELLED") && why.contains(&job), "{why}"),
        other => panic!("expected the run lost with its allocation, got {other:?}"),
    }
    let nodes = infra.nodes("pair", true).await;
    assert!(nodes.iter().all(|node| !node.reachable && node.detail.contains("CANCELLED")), "{nodes:?}");
    infra.release("pair", false).await.unwrap();
    ssh.close().await;
}
