//! Fuzzing the request decoders over real gRPC: random bytes and mutated
//! valid requests go to every method of the server. Each call must end with a
//! status that says what was wrong (never UNKNOWN, which a panicking handler
//! or a dropped connection gives), and the server must stay healthy with its
//! stored requests intact.

mod common;

use std::time::Duration;

use bytes::{Buf, BufMut};
use common::TestServer;
use prost::Message;
use skypilot_api::proto::skypilot::v1::{
    AutostopRequest, CancelJobsRequest, CancelManagedJobsRequest, CheckRequest, ClusterActionRequest,
    ExecRequest, JobRecovery, LaunchRequest, ListClustersRequest, ListJobsRequest, ListManagedJobsRequest,
    ListRequestsRequest, Resources, SshDownRequest, SshUpRequest, StreamLogsRequest, TailJobLogsRequest,
    TailManagedJobLogsRequest, TaskSpec, WatchOperationRequest,
};
use tonic::{
    Code, Request, Status,
    codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
    transport::Channel,
};

/// Every unary method but DeleteOperation: random bytes can spell a unique
/// prefix of the request the test keeps ("0"), and deleting it is no fault.
const UNARY: &[&str] = &[
    "/google.longrunning.Operations/ListOperations",
    "/google.longrunning.Operations/GetOperation",
    "/google.longrunning.Operations/CancelOperation",
    "/google.longrunning.Operations/WaitOperation",
    "/skypilot.v1.RequestService/ListRequests",
    "/skypilot.v1.ServerService/GetServerInfo",
    "/skypilot.v1.InfraService/Check",
    "/skypilot.v1.InfraService/SshUp",
    "/skypilot.v1.InfraService/SshDown",
    "/skypilot.v1.ClusterService/Launch",
    "/skypilot.v1.ClusterService/Exec",
    "/skypilot.v1.ClusterService/Stop",
    "/skypilot.v1.ClusterService/Start",
    "/skypilot.v1.ClusterService/Down",
    "/skypilot.v1.ClusterService/Autostop",
    "/skypilot.v1.ClusterService/ListClusters",
    "/skypilot.v1.JobService/ListJobs",
    "/skypilot.v1.JobService/CancelJobs",
    // LaunchManagedJob is left out: a random task would run for real.
    "/skypilot.v1.ManagedJobService/ListManagedJobs",
    "/skypilot.v1.ManagedJobService/CancelManagedJobs",
    "/skypilot.v1.UserService/WhoAmI",
    "/skypilot.v1.UserService/ListUsers",
    "/skypilot.v1.UserService/CreateUser",
    "/skypilot.v1.UserService/DeleteUser",
    "/skypilot.v1.UserService/SetRole",
    "/skypilot.v1.UserService/SetPassword",
    "/skypilot.v1.UserService/CreateToken",
    "/skypilot.v1.UserService/ListTokens",
    "/skypilot.v1.UserService/RevokeToken",
];

const STREAMING: &[&str] = &[
    "/skypilot.v1.RequestService/WatchOperation",
    "/skypilot.v1.RequestService/StreamLogs",
    "/skypilot.v1.JobService/TailJobLogs",
    "/skypilot.v1.ManagedJobService/TailManagedJobLogs",
];

/// Sends and receives message bodies as raw bytes.
#[derive(Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }

    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
    }
}

/// A small deterministic generator (the seed is printed to repeat a run).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let len = self.below(max + 1);
        (0..len).map(|_| self.next() as u8).collect()
    }

    /// Text of every kind: empty, long, globs, control and non-ASCII characters.
    fn text(&mut self) -> String {
        const PIECES: &[&str] = &[
            "fuzz", "-", "*", "?", "[", "/", "..", " ", "\0", "\n", "é", "🚀", "0", "9", "A", ":", "=",
            "$HOME",
        ];
        let pieces = match self.below(10) {
            0 => 0,
            1 => 200 + self.below(200),
            _ => 1 + self.below(6),
        };
        (0..pieces).map(|_| PIECES[self.below(PIECES.len())]).collect::<String>().replace("\\0", "\0")
    }

    fn number(&mut self) -> i64 {
        match self.below(4) {
            0 => 0,
            1 => -(self.below(10) as i64),
            2 => self.next() as i64,
            _ => self.below(100) as i64,
        }
    }

    /// A well-formed request of `path` with arbitrary field values.
    fn well_formed(&mut self, path: &str) -> Option<Vec<u8>> {
        let task = TaskSpec {
            name: self.text(),
            workdir: if self.below(4) == 0 { self.text() } else { String::new() },
            num_nodes: self.number() as i32,
            resources: Some(Resources {
                infra: self.text(),
                cpus: self.text(),
                memory: self.text(),
                accelerators: self.text(),
                ports: vec![self.text()],
                autostop_idle_minutes: Some(self.number() as i32),
                autostop_down: self.below(2) == 0,
                job_recovery: Some(JobRecovery {
                    strategy: self.text(),
                    max_restarts_on_errors: self.number() as i32,
                }),
            }),
            envs: [(self.text(), self.text())].into(),
            file_mounts: [(self.text(), self.text())].into(),
            run: "true".into(),
            ..Default::default()
        };
        let message = match path {
            // Dry runs only: a well-formed launch must not start real work here.
            "/skypilot.v1.ClusterService/Launch" => LaunchRequest {
                task: Some(task),
                cluster_name: self.text(),
                idle_minutes_to_autostop: Some(self.number() as i32),
                dryrun: true,
                idempotency_key: self.text(),
                ..Default::default()
            }
            .encode_to_vec(),
            "/skypilot.v1.ClusterService/Autostop" => AutostopRequest {
                cluster_name: self.text(),
                idle_minutes: self.number() as i32,
                down: self.below(2) == 0,
                cancel: self.below(2) == 0,
                idempotency_key: self.text(),
            }
            .encode_to_vec(),
            "/skypilot.v1.JobService/CancelJobs" => CancelJobsRequest {
                cluster_name: self.text(),
                job_ids: vec![self.number(), self.number()],
                all: self.below(2) == 0,
                idempotency_key: self.text(),
            }
            .encode_to_vec(),
            "/skypilot.v1.RequestService/ListRequests" => ListRequestsRequest {
                all_users: true,
                include_finished: true,
                cluster_name: self.text(),
                limit: self.number() as i32,
                request_ids: vec![self.text()],
            }
            .encode_to_vec(),
            "/skypilot.v1.RequestService/StreamLogs" => StreamLogsRequest {
                name: self.text(),
                follow: false,
                tail_lines: Some(self.number() as i32),
                offset: Some(self.number()),
            }
            .encode_to_vec(),
            "/skypilot.v1.JobService/TailJobLogs" => TailJobLogsRequest {
                cluster_name: self.text(),
                job_id: self.number(),
                follow: false,
                tail_lines: Some(self.number() as i32),
                offset: Some(self.number()),
            }
            .encode_to_vec(),
            "/skypilot.v1.InfraService/SshUp" => {
                SshUpRequest { infra: self.text(), idempotency_key: self.text() }.encode_to_vec()
            }
            "/skypilot.v1.InfraService/SshDown" => {
                SshDownRequest { infra: self.text(), idempotency_key: self.text() }.encode_to_vec()
            }
            "/skypilot.v1.ManagedJobService/ListManagedJobs" => ListManagedJobsRequest {
                all_users: self.below(2) == 0,
                skip_finished: self.below(2) == 0,
                job_ids: vec![self.number()],
                page_size: self.number() as i32,
                page_token: self.text(),
            }
            .encode_to_vec(),
            "/skypilot.v1.ManagedJobService/CancelManagedJobs" => CancelManagedJobsRequest {
                job_ids: vec![self.number(), self.number()],
                name: self.text(),
                all: self.below(2) == 0,
                all_users: self.below(2) == 0,
                idempotency_key: self.text(),
            }
            .encode_to_vec(),
            "/skypilot.v1.ManagedJobService/TailManagedJobLogs" => TailManagedJobLogsRequest {
                job_id: self.number(),
                name: self.text(),
                follow: false,
                controller: self.below(2) == 0,
                offset: Some(self.number()),
                tail_lines: Some(self.number() as i32),
            }
            .encode_to_vec(),
            "/skypilot.v1.ClusterService/ListClusters" => ListClustersRequest {
                cluster_names: vec![self.text()],
                all_users: true,
                refresh: self.below(2) == 0,
            }
            .encode_to_vec(),
            _ => return None,
        };
        Some(message)
    }

    /// Flips, drops and inserts bytes of `valid`.
    fn mutate(&mut self, valid: &[u8]) -> Vec<u8> {
        let mut out = valid.to_vec();
        for _ in 0..1 + self.below(4) {
            match self.below(3) {
                0 if !out.is_empty() => {
                    let at = self.below(out.len());
                    out[at] ^= 1 << self.below(8);
                }
                1 if !out.is_empty() => {
                    let at = self.below(out.len());
                    out.truncate(at);
                }
                _ => {
                    let at = self.below(out.len() + 1);
                    let byte = self.next() as u8;
                    out.insert(at, byte);
                }
            }
        }
        out
    }
}

/// Valid requests whose mutations reach the validators behind the decoders.
fn templates() -> Vec<(&'static str, Vec<u8>)> {
    let task = TaskSpec {
        name: "fuzz".into(),
        num_nodes: 1,
        resources: Some(Resources { cpus: "0.1".into(), ..Default::default() }),
        run: "true".into(),
        ..Default::default()
    };
    vec![
        (
            "/skypilot.v1.ClusterService/Launch",
            LaunchRequest {
                task: Some(task.clone()),
                cluster_name: "fuzz".into(),
                dryrun: true,
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            "/skypilot.v1.ClusterService/Exec",
            ExecRequest { cluster_name: "fuzz".into(), task: Some(task), ..Default::default() }
                .encode_to_vec(),
        ),
        (
            "/skypilot.v1.ClusterService/Down",
            ClusterActionRequest { cluster_name: "fuzz-*".into(), ..Default::default() }.encode_to_vec(),
        ),
        (
            "/skypilot.v1.ClusterService/Autostop",
            AutostopRequest { cluster_name: "fuzz".into(), idle_minutes: 5, ..Default::default() }
                .encode_to_vec(),
        ),
        (
            "/skypilot.v1.ClusterService/ListClusters",
            ListClustersRequest { cluster_names: vec!["f*".into()], all_users: true, refresh: true }
                .encode_to_vec(),
        ),
        (
            "/skypilot.v1.JobService/ListJobs",
            ListJobsRequest { cluster_name: "fuzz".into(), ..Default::default() }.encode_to_vec(),
        ),
        (
            "/skypilot.v1.JobService/CancelJobs",
            CancelJobsRequest { cluster_name: "fuzz".into(), job_ids: vec![1, -1], ..Default::default() }
                .encode_to_vec(),
        ),
        ("/skypilot.v1.InfraService/Check", CheckRequest::default().encode_to_vec()),
        (
            "/skypilot.v1.InfraService/SshUp",
            SshUpRequest { infra: "lab".into(), ..Default::default() }.encode_to_vec(),
        ),
        (
            "/skypilot.v1.RequestService/ListRequests",
            ListRequestsRequest { limit: 5, request_ids: vec!["0".into()], ..Default::default() }
                .encode_to_vec(),
        ),
        (
            "/skypilot.v1.RequestService/StreamLogs",
            StreamLogsRequest { name: "operations/0".into(), tail_lines: Some(3), ..Default::default() }
                .encode_to_vec(),
        ),
        (
            "/skypilot.v1.RequestService/WatchOperation",
            WatchOperationRequest { name: "0".into() }.encode_to_vec(),
        ),
        (
            "/skypilot.v1.JobService/TailJobLogs",
            TailJobLogsRequest { cluster_name: "fuzz".into(), job_id: 1, ..Default::default() }
                .encode_to_vec(),
        ),
    ]
}

/// Whether a streaming request asks to wait for what comes next: a log
/// followed, or an operation watched until it ends.
fn may_wait(path: &str, body: &[u8]) -> bool {
    match path {
        "/skypilot.v1.RequestService/StreamLogs" => StreamLogsRequest::decode(body).is_ok_and(|r| r.follow),
        "/skypilot.v1.JobService/TailJobLogs" => TailJobLogsRequest::decode(body).is_ok_and(|r| r.follow),
        "/skypilot.v1.RequestService/WatchOperation" => true,
        _ => false,
    }
}

/// What one call ended with; panics on an answer that says nothing.
async fn call(channel: &Channel, path: &'static str, body: Vec<u8>) -> Option<Code> {
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.expect("the server accepts calls");
    let path = http::uri::PathAndQuery::from_static(path);
    let status = if STREAMING.contains(&path.as_str()) {
        let call = async {
            let mut stream =
                grpc.server_streaming(Request::new(body.clone()), path.clone(), RawCodec).await?.into_inner();
            while stream.message().await?.is_some() {}
            Ok::<(), Status>(())
        };
        // A request to follow may rightly wait for more: that is an answer
        // too. Any other stream must end.
        match tokio::time::timeout(Duration::from_secs(2), call).await {
            Ok(result) => result.err(),
            Err(_) => {
                assert!(
                    may_wait(path.as_str(), &body),
                    "{path} hung although it was not asked to follow: {body:?}"
                );
                None
            }
        }
    } else {
        grpc.unary(Request::new(body.clone()), path.clone(), RawCodec).await.err()
    };
    let status = status?;
    assert_ne!(status.code(), Code::Unknown, "{path} answered {body:?} with {status:?}");
    // gRPC answers a message that does not parse with INTERNAL; nothing else may.
    assert!(
        status.code() != Code::Internal || status.message().contains("decode"),
        "{path} answered {body:?} with {status:?}"
    );
    assert!(!status.message().trim().is_empty(), "{path} answered {body:?} with an empty message");
    Some(status.code())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_and_mutated_requests_get_clear_errors_and_the_server_stays_whole() {
    let server = TestServer::start().await;
    let client = server.client().await;
    let kept = client.check(CheckRequest::default()).await.unwrap();
    let channel = server.channel().await;
    let seed =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    println!("seed {seed}");
    let mut rng = Rng(seed);
    let mut codes = std::collections::BTreeMap::<String, usize>::new();
    let methods: Vec<&'static str> = UNARY.iter().chain(STREAMING).copied().collect();
    let templates = templates();
    for round in 0..3_000 {
        let (path, body) = match round % 3 {
            0 => (methods[rng.below(methods.len())], rng.bytes(64)),
            1 => {
                let (path, valid) = &templates[rng.below(templates.len())];
                (*path, rng.mutate(valid))
            }
            _ => {
                let path = templates[rng.below(templates.len())].0;
                match rng.well_formed(path) {
                    Some(body) => (path, body),
                    None => continue,
                }
            }
        };
        let code = call(&channel, path, body).await;
        *codes.entry(format!("{code:?}")).or_default() += 1;
    }
    println!("answers by code: {codes:?}");

    // Still healthy, and what was stored before is still there.
    assert_eq!(client.get_operation(&kept.name).await.unwrap().name, kept.name);
    let fresh = client.check(CheckRequest::default()).await.unwrap();
    assert!(client.wait_operation(&fresh.name, Duration::from_secs(30)).await.unwrap().done);
    // Mutated launches may have made clusters; remove them.
    for cluster in
        client.list_clusters(ListClustersRequest { all_users: true, ..Default::default() }).await.unwrap()
    {
        let down =
            client.cluster_action(skypilot_api::client::ClusterAction::Down, &cluster.name).await.unwrap();
        client.wait_operation(&down.name, Duration::from_secs(30)).await.unwrap();
    }
}
