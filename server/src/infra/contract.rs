//! The `Infra` contract as a test that every implementation runs against
//! itself: nodes, files, detached runs with their environment, logs from an
//! offset, finding a run again from a fresh instance (as after a restart),
//! termination, log archiving and release.

use std::path::Path;

use super::{Infra, Nodes, RunEnd, RunRef, RunSpec};

/// Runs the contract against `infra`; `reopen` makes a second instance over
/// the same state, as a restarted server would. `scratch` is a folder of the
/// API server's host for sources and archives.
pub async fn check(infra: &dyn Infra, reopen: &dyn Fn() -> Box<dyn Infra>, scratch: &Path) {
    let cluster = "contract";
    let provisioned = infra.provision(cluster, &Nodes::any(2)).await.unwrap();
    assert_eq!(provisioned.addresses.len(), 2);
    assert_eq!(
        infra.provision(cluster, &Nodes::any(2)).await.unwrap(),
        provisioned,
        "provision is idempotent"
    );
    let nodes = infra.nodes(cluster, true).await;
    assert_eq!(nodes.len(), 2, "{nodes:?}");
    assert!(nodes.iter().all(|node| node.reachable), "{nodes:?}");
    assert!(infra.capacity().await.unwrap().cpus >= 1);
    assert!(infra.check_destination("~/data").is_ok());

    // Files reach each node's home; runs start in ~/sky_workdir.
    let source = scratch.join("source");
    std::fs::create_dir_all(source.join("nested")).unwrap();
    std::fs::write(source.join("nested/hello.txt"), "from the server\n").unwrap();
    for rank in 0..2 {
        infra.copy_to_node(cluster, rank, &source, "~/sky_workdir").await.unwrap();
    }
    let run = |rank: i32, script: &str| RunSpec {
        run: RunRef { cluster: cluster.into(), job_id: 1, phase: "run", rank },
        script: script.into(),
        env: vec![("GREETING".into(), format!("rank {rank}"))],
        log_prefix: format!("({rank}) "),
    };
    let first = run(0, "cat nested/hello.txt; echo \"$GREETING in $PWD\" | grep -c sky_workdir; exit 3");
    let handle = infra.start(&first).await.unwrap();
    assert_eq!(infra.wait(&first.run, handle).await, RunEnd::Exited(3));
    let log = infra.read_log(cluster, 1, 0).await.unwrap();
    assert_eq!(String::from_utf8(log).unwrap(), "(0) from the server\n(0) 1\n");
    assert_eq!(infra.read_log(cluster, 1, 4).await.unwrap(), b"from the server\n(0) 1\n");
    assert_eq!(infra.log_tail_offset(cluster, 1, 1).await.unwrap(), 20);

    // A run outlives the instance that started it and is found again.
    let second = run(1, "sleep 30");
    infra.start(&second).await.unwrap();
    let reopened = reopen();
    let found = reopened.find(&second.run).await.expect("the started run is found");
    reopened.terminate(cluster, 1, found);
    assert_eq!(reopened.wait(&second.run, found).await, RunEnd::Killed, "a terminated run has no exit code");
    let never = RunRef { cluster: cluster.into(), job_id: 2, phase: "setup", rank: 0 };
    assert!(reopened.find(&never).await.is_none());

    // Logs move to the server's host, then the nodes go.
    let archive = scratch.join("archive");
    assert_eq!(infra.archive_logs(cluster, &archive).await.unwrap(), 1);
    assert!(archive.join("1.log").exists());
    infra.release(cluster, false).await.unwrap();
    infra.release(cluster, false).await.unwrap();
    assert!(infra.read_log(cluster, 1, 0).await.unwrap().is_empty());
    infra.settle().await;
}
