//! `sky launch|exec|status|queue|logs|cancel|stop|start|down|autostop`.

use std::io::{IsTerminal, Write};

use prost::Message;
use skypilot_api::{
    Client,
    client::request_metadata,
    names,
    proto::{
        google::longrunning::{Operation, operation},
        skypilot::v1::{
            AutostopRequest, CancelJobsRequest, Cluster, ExecRequest, ExecResponse, Job, JobStatus,
            LaunchRequest, LaunchResponse, ListClustersRequest, ListJobsRequest, TailJobLogsRequest,
        },
    },
};

use crate::{
    connect::connect,
    error::{CliError, CliResult, EXIT_DETACHED},
    follow,
    output::{ago, table},
    task_args::{TaskOptions, build_task},
};

/// SkyPilot's exit codes for `sky logs` (JobExitCode).
pub mod job_exit {
    pub const SUCCEEDED: u8 = 0;
    pub const FAILED: u8 = 100;
    pub const NOT_FINISHED: u8 = 101;
    pub const NOT_FOUND: u8 = 102;
    pub const CANCELLED: u8 = 103;
}

/// Options of `sky launch`.
#[derive(Debug, Clone, clap::Args)]
pub struct LaunchArgs {
    /// Task YAML, or a shell command to run.
    pub entrypoint: Vec<String>,
    /// Cluster name (default: a generated one).
    #[arg(short = 'c', long = "cluster")]
    pub cluster: Option<String>,
    /// Do not stream the job's output; return once it is submitted.
    #[arg(short = 'd', long = "detach-run")]
    pub detach_run: bool,
    /// Do not ask for confirmation.
    #[arg(short = 'y', long = "yes")]
    pub yes: bool,
    /// Only check the task and say what would happen.
    #[arg(long)]
    pub dryrun: bool,
    /// Tear the cluster down when its jobs are done (after -i minutes idle).
    #[arg(long)]
    pub down: bool,
    /// Autostop after this many idle minutes.
    #[arg(short = 'i', long = "idle-minutes-to-autostop")]
    pub idle_minutes: Option<i32>,
    /// Skip setup on an existing cluster.
    #[arg(long)]
    pub no_setup: bool,
    /// Submit and return at once, printing the request id.
    #[arg(long = "async")]
    pub run_async: bool,
    #[command(flatten)]
    pub task: TaskOptions,
}

/// `sky launch`.
pub async fn launch(args: LaunchArgs) -> CliResult {
    let task = build_task(&args.entrypoint, &args.task)?;
    let client = connect().await?;
    let cluster = args.cluster.clone().unwrap_or_default();
    if !args.yes && !args.dryrun && !cluster.is_empty() && std::io::stdin().is_terminal() {
        let existing = client
            .list_clusters(ListClustersRequest { cluster_names: vec![cluster.clone()], all_users: true })
            .await?;
        if existing.is_empty() && !confirm(&format!("Launching a new cluster '{cluster}'. Proceed?"))? {
            return Err(CliError::new("Aborted."));
        }
    }
    let request = LaunchRequest {
        task: Some(task),
        cluster_name: cluster,
        no_setup: args.no_setup,
        down: args.down,
        idle_minutes_to_autostop: args.idle_minutes,
        dryrun: args.dryrun,
        idempotency_key: String::new(),
    };
    let operation = client.launch(request).await?;
    if args.run_async {
        return follow::print_submitted(&operation);
    }
    let response: LaunchResponse = finish_request(&client, &operation).await?;
    if args.dryrun {
        println!("{}", response.summary);
        return Ok(());
    }
    after_submit(&client, &response.cluster_name, response.job_id, args.detach_run).await
}

/// Options of `sky exec`.
#[derive(Debug, Clone, clap::Args)]
pub struct ExecArgs {
    /// Cluster to run on.
    pub cluster: String,
    /// Task YAML, or a shell command to run.
    #[arg(required = true)]
    pub entrypoint: Vec<String>,
    /// Do not stream the job's output.
    #[arg(short = 'd', long = "detach-run")]
    pub detach_run: bool,
    /// Submit and return at once, printing the request id.
    #[arg(long = "async")]
    pub run_async: bool,
    #[command(flatten)]
    pub task: TaskOptions,
}

/// `sky exec`.
pub async fn exec(args: ExecArgs) -> CliResult {
    let task = build_task(&args.entrypoint, &args.task)?;
    let client = connect().await?;
    let request =
        ExecRequest { cluster_name: args.cluster.clone(), task: Some(task), idempotency_key: String::new() };
    let operation = client.exec(request).await?;
    if args.run_async {
        return follow::print_submitted(&operation);
    }
    let response: ExecResponse = finish_request(&client, &operation).await?;
    after_submit(&client, &response.cluster_name, response.job_id, args.detach_run).await
}

/// Follows a request's log on stderr until it finishes; decodes its response.
async fn finish_request<M: Message + Default>(client: &Client, operation: &Operation) -> CliResult<M> {
    let id = request_metadata(operation)?.request_id;
    let done = follow::follow_to_end_on(client, &id, &mut std::io::stderr()).await?;
    match done.result {
        Some(operation::Result::Response(any)) => M::decode(any.value.as_slice())
            .map_err(|err| CliError::new(format!("unreadable response of request {id}: {err}"))),
        _ => Err(CliError::new(format!("request {id} finished without a response"))),
    }
}

/// After a job is submitted: stream its output and exit with its outcome,
/// or (detached) say how to follow it.
async fn after_submit(client: &Client, cluster: &str, job_id: i64, detach: bool) -> CliResult {
    if detach {
        eprintln!("\u{251c}\u{2500}\u{2500} To stream job logs: sky logs {cluster} {job_id}");
        eprintln!("\u{2514}\u{2500}\u{2500} To view the job queue: sky queue {cluster}");
        return Ok(());
    }
    eprintln!(
        "\u{2514}\u{2500}\u{2500} Job started. Streaming logs... (Ctrl-C to exit log streaming; job will not be killed)"
    );
    let job = tail(client, cluster, job_id, true, None).await?;
    let Some(job) = job else { return Ok(()) };
    let status = names::job_status(job.status());
    match job.status() {
        JobStatus::Succeeded => {
            eprintln!("\u{2713} Job finished (status: {status}).");
            Ok(())
        }
        _ => {
            let code =
                job.exit_code.filter(|c| *c > 0 && *c < 256).map(|c| c as u8).unwrap_or(match job.status() {
                    JobStatus::Cancelled => job_exit::CANCELLED,
                    _ => job_exit::FAILED,
                });
            let detail = if job.message.is_empty() { String::new() } else { format!(": {}", job.message) };
            Err(CliError { message: format!("\u{2717} Job {job_id} {status}{detail}"), exit_code: code })
        }
    }
}

/// Streams a job's log to stdout; returns its final record (None if not
/// following). Resumes from the last byte written when the server goes away
/// meanwhile. Ctrl-C detaches.
async fn tail(
    client: &Client,
    cluster: &str,
    job_id: i64,
    follow: bool,
    tail_lines: Option<i32>,
) -> CliResult<Option<Job>> {
    let copy = async {
        let mut stdout = std::io::stdout();
        let mut offset: Option<i64> = None;
        let mut job_id = job_id;
        loop {
            let request = TailJobLogsRequest {
                cluster_name: cluster.to_string(),
                job_id,
                follow,
                tail_lines: if offset.is_none() { tail_lines } else { None },
                offset,
            };
            let mut stream = client.tail_job_logs(request).await?;
            let ended = loop {
                match stream.message().await {
                    Ok(Some(chunk)) => {
                        stdout.write_all(&chunk.data)?;
                        stdout.flush()?;
                        offset = Some(chunk.offset + chunk.data.len() as i64);
                        if let Some(job) = chunk.job {
                            return Ok::<_, CliError>(Some(job));
                        }
                    }
                    Ok(None) => break Ok(()),
                    Err(status) => break Err(client.stream_error(status)),
                }
            };
            match ended {
                Err(err) if !err.is_unavailable() => return Err(err.into()),
                // The stream ended without the job's final record: the server went away; resume.
                _ if follow => {
                    if job_id == 0 {
                        job_id = latest_job(client, cluster).await?;
                    }
                }
                _ => return Ok(None),
            }
        }
    };
    tokio::select! {
        result = copy => result,
        _ = tokio::signal::ctrl_c() => Err(CliError {
            message: format!(
                "\nJob {} keeps running.\n\u{251c}\u{2500}\u{2500} To stream its logs: sky logs {cluster} {}\n\
                 \u{2514}\u{2500}\u{2500} To cancel it: sky cancel {cluster} {}",
                if job_id == 0 { "(latest)".to_string() } else { job_id.to_string() },
                if job_id == 0 { String::new() } else { job_id.to_string() },
                if job_id == 0 { String::new() } else { job_id.to_string() },
            ),
            exit_code: EXIT_DETACHED,
        }),
    }
}

async fn latest_job(client: &Client, cluster: &str) -> CliResult<i64> {
    let jobs = client
        .list_jobs(ListJobsRequest {
            cluster_name: cluster.to_string(),
            skip_finished: false,
            all_users: true,
        })
        .await?;
    jobs.first().map(|j| j.job_id).ok_or_else(|| CliError::new(format!("cluster {cluster} has no jobs")))
}

/// `sky status`.
pub async fn status(clusters: Vec<String>, all_users: bool, verbose: bool) -> CliResult {
    let client = connect().await?;
    let clusters = client.list_clusters(ListClustersRequest { cluster_names: clusters, all_users }).await?;
    if clusters.is_empty() {
        println!("No existing clusters.");
        return Ok(());
    }
    let mut headers = vec!["NAME"];
    if all_users || verbose {
        headers.push("USER");
    }
    headers.extend(["INFRA", "RESOURCES", "STATUS", "AUTOSTOP", "LAUNCHED"]);
    let rows: Vec<Vec<String>> = clusters
        .iter()
        .map(|c| {
            let mut row = vec![c.name.clone()];
            if all_users || verbose {
                row.push(c.user_name.clone());
            }
            row.extend([
                c.infra.clone(),
                resources(c),
                names::cluster_status(c.status()).into(),
                autostop_column(c),
                ago(c.launched_at.as_ref()),
            ]);
            row
        })
        .collect();
    println!("Clusters");
    print!("{}", table(&headers, &rows));
    Ok(())
}

fn resources(cluster: &Cluster) -> String {
    let mut parts = vec![format!("cpus={}", cluster.cpus)];
    parts.push(if cluster.memory_gib > 0.0 { format!("mem={}", cluster.memory_gib) } else { "mem=-".into() });
    if !cluster.accelerators.is_empty() {
        parts.insert(0, format!("gpus={}", cluster.accelerators));
    }
    format!("{}x({})", cluster.num_nodes, parts.join(", "))
}

fn autostop_column(cluster: &Cluster) -> String {
    if cluster.autostop_idle_minutes < 0 {
        "-".into()
    } else if cluster.autostop_down {
        format!("{}m (down)", cluster.autostop_idle_minutes)
    } else {
        format!("{}m", cluster.autostop_idle_minutes)
    }
}

/// `sky queue`.
pub async fn queue(clusters: Vec<String>, skip_finished: bool, all_users: bool) -> CliResult {
    let client = connect().await?;
    let names: Vec<String> = if clusters.is_empty() {
        client
            .list_clusters(ListClustersRequest { cluster_names: vec![], all_users })
            .await?
            .into_iter()
            .map(|c| c.name)
            .collect()
    } else {
        clusters
    };
    if names.is_empty() {
        println!("No existing clusters.");
    }
    for name in names {
        let jobs = client
            .list_jobs(ListJobsRequest { cluster_name: name.clone(), skip_finished, all_users })
            .await?;
        let whose = if all_users { "all users" } else { "current user" };
        println!("Job queue of {whose} on cluster {name}");
        let rows: Vec<Vec<String>> = jobs
            .iter()
            .map(|j| {
                vec![
                    j.job_id.to_string(),
                    if j.name.is_empty() { "-".into() } else { j.name.clone() },
                    j.user_name.clone(),
                    ago(j.submitted_at.as_ref()),
                    ago(j.started_at.as_ref()),
                    duration(j),
                    job_resources(j),
                    names::job_status(j.status()).to_string(),
                ]
            })
            .collect();
        print!(
            "{}",
            table(&["ID", "NAME", "USER", "SUBMITTED", "STARTED", "DURATION", "RESOURCES", "STATUS"], &rows)
        );
    }
    Ok(())
}

fn duration(job: &Job) -> String {
    let Some(start) = &job.started_at else { return "-".into() };
    let end = job.ended_at.as_ref().map(|t| t.seconds).unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    });
    let secs = (end - start.seconds).max(0);
    if secs < 60 {
        format!("{secs}s")
    } else if secs < 3600 {
        format!("{}m {}s", secs / 60, secs % 60)
    } else {
        format!("{}h {}m", secs / 3600, secs % 3600 / 60)
    }
}

fn job_resources(job: &Job) -> String {
    if job.accelerators.is_empty() {
        format!("1x[CPU:{}]", job.cpus)
    } else {
        format!("1x[{}, CPU:{}]", job.accelerators, job.cpus)
    }
}

/// `sky logs`.
pub async fn logs(
    cluster: String,
    job_id: Option<i64>,
    follow: bool,
    tail_lines: Option<u32>,
    status_only: bool,
) -> CliResult {
    let client = connect().await?;
    if status_only {
        let jobs = client
            .list_jobs(ListJobsRequest {
                cluster_name: cluster.clone(),
                skip_finished: false,
                all_users: true,
            })
            .await?;
        let job = match job_id {
            Some(id) => jobs.iter().find(|j| j.job_id == id),
            None => jobs.first(),
        };
        let Some(job) = job else {
            return Err(CliError {
                message: format!(
                    "Job {} not found on cluster {cluster}.",
                    job_id.map(|i| i.to_string()).unwrap_or_else(|| "(latest)".into())
                ),
                exit_code: job_exit::NOT_FOUND,
            });
        };
        println!("Job {}: {}", job.job_id, names::job_status(job.status()));
        let code = match job.status() {
            JobStatus::Succeeded => job_exit::SUCCEEDED,
            JobStatus::Failed | JobStatus::FailedSetup => job_exit::FAILED,
            JobStatus::Cancelled => job_exit::CANCELLED,
            _ => job_exit::NOT_FINISHED,
        };
        return if code == 0 { Ok(()) } else { Err(CliError { message: String::new(), exit_code: code }) };
    }
    let tail_lines = tail_lines.map(|t| t.min(i32::MAX as u32) as i32);
    let job = tail(&client, &cluster, job_id.unwrap_or(0), follow, tail_lines).await?;
    match job.map(|j| j.status()) {
        Some(JobStatus::Failed | JobStatus::FailedSetup) => {
            Err(CliError { message: String::new(), exit_code: job_exit::FAILED })
        }
        Some(JobStatus::Cancelled) => {
            Err(CliError { message: String::new(), exit_code: job_exit::CANCELLED })
        }
        _ => Ok(()),
    }
}

/// `sky cancel`.
pub async fn cancel(cluster: String, job_ids: Vec<i64>, all: bool, yes: bool) -> CliResult {
    if job_ids.is_empty() && !all {
        return Err(CliError::new(
            "Specify job IDs to cancel, or use -a/--all to cancel all of the cluster's jobs.",
        ));
    }
    if all
        && !yes
        && std::io::stdin().is_terminal()
        && !confirm(&format!("Cancelling all jobs on cluster {cluster}. Proceed?"))?
    {
        return Err(CliError::new("Aborted."));
    }
    let client = connect().await?;
    let operation = client
        .cancel_jobs(CancelJobsRequest {
            cluster_name: cluster,
            job_ids,
            all,
            idempotency_key: String::new(),
        })
        .await?;
    let id = request_metadata(&operation)?.request_id;
    follow::follow_to_end(&client, &id).await?;
    Ok(())
}

/// `sky stop|start|down`: every matching cluster (names or globs), one request each.
pub async fn cluster_action(action: &str, selection: crate::ClusterSelection) -> CliResult {
    let crate::ClusterSelection { clusters: patterns, all, all_users, yes } = selection;
    if patterns.is_empty() && !all {
        return Err(CliError::new(format!(
            "Specify the clusters to {action} (names or glob patterns), or use -a/--all."
        )));
    }
    let client = connect().await?;
    let names = matching_clusters(&client, &patterns, all_users).await?;
    if names.is_empty() {
        println!("No clusters to {action}.");
        return Ok(());
    }
    let verb = match action {
        "stop" => "Stopping",
        "start" => "Starting",
        _ => "Terminating",
    };
    if !yes
        && action != "start"
        && std::io::stdin().is_terminal()
        && !confirm(&format!("{verb} {} cluster(s): {}. Proceed?", names.len(), names.join(", ")))?
    {
        return Err(CliError::new("Aborted."));
    }
    let mut failures = Vec::new();
    for name in &names {
        let result = async {
            let operation = client.cluster_action(action, name).await?;
            let id = request_metadata(&operation)?.request_id;
            follow::follow_to_end(&client, &id).await
        }
        .await;
        if let Err(err) = result {
            eprintln!("{err}");
            failures.push(name.clone());
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(CliError::new(format!("Failed to {action}: {}", failures.join(", "))))
    }
}

/// `sky autostop`.
pub async fn autostop(
    patterns: Vec<String>,
    all: bool,
    idle_minutes: Option<i32>,
    down: bool,
    cancel: bool,
) -> CliResult {
    if patterns.is_empty() && !all {
        return Err(CliError::new("Specify the clusters (names or glob patterns), or use -a/--all."));
    }
    if !cancel && idle_minutes.is_none() && !down {
        return Err(CliError::new("Specify -i/--idle-minutes MINUTES, --down, or --cancel."));
    }
    let client = connect().await?;
    let names = matching_clusters(&client, &patterns, false).await?;
    for name in names {
        let request = AutostopRequest {
            cluster_name: name,
            idle_minutes: idle_minutes.unwrap_or(if down { 0 } else { 5 }),
            down,
            cancel,
            idempotency_key: String::new(),
        };
        let operation = client.autostop(request).await?;
        let id = request_metadata(&operation)?.request_id;
        follow::follow_to_end(&client, &id).await?;
    }
    Ok(())
}

/// Cluster names matching `patterns` (all when empty); an exact name that
/// matches nothing is an error.
async fn matching_clusters(client: &Client, patterns: &[String], all_users: bool) -> CliResult<Vec<String>> {
    let clusters =
        client.list_clusters(ListClustersRequest { cluster_names: patterns.to_vec(), all_users }).await?;
    let names: Vec<String> = clusters.into_iter().map(|c| c.name).collect();
    let missing: Vec<&String> =
        patterns.iter().filter(|p| !p.contains(['*', '?']) && !names.contains(p)).collect();
    if !missing.is_empty() {
        let missing: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
        return Err(CliError::new(format!(
            "Cluster(s) not found: {}. `sky status` lists clusters.",
            missing.join(", ")
        )));
    }
    Ok(names)
}

fn confirm(question: &str) -> CliResult<bool> {
    eprint!("{question} [Y/n]: ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(matches!(answer.trim().to_ascii_lowercase().as_str(), "" | "y" | "yes"))
}
