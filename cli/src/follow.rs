//! Following a request: stream its log until it finishes, then report its
//! outcome (or decode its response). Ctrl-C detaches: the request goes on,
//! and the user is told how to follow or cancel it.

use std::io::Write;

use prost::Message;
use skypilot_api::{
    Client,
    client::request_metadata,
    proto::{
        google::longrunning::{Operation, operation},
        skypilot::v1::StreamLogsRequest,
    },
};

use crate::error::{CliError, CliResult, EXIT_DETACHED};

/// Streams the log of request `id` to stdout. With `follow`, until the
/// request is done. Ctrl-C detaches.
pub async fn stream_log(client: &Client, id: &str, follow: bool, tail_lines: Option<i32>) -> CliResult {
    stream_log_to(client, id, follow, tail_lines, &mut std::io::stdout()).await
}

/// Streams the log of request `id` to `out`, resuming from the last byte
/// written when the server goes away meanwhile (a restart).
pub async fn stream_log_to(
    client: &Client,
    id: &str,
    follow: bool,
    tail_lines: Option<i32>,
    out: &mut (dyn Write + Send),
) -> CliResult {
    let copy = copy_log(client, id, follow, tail_lines, None, out);
    tokio::select! {
        result = copy => result.map(|_| ()),
        _ = tokio::signal::ctrl_c() => Err(detached(id)),
    }
}

/// Copies request `id`'s log to `out` from `offset` (else from the start, or
/// the last `tail_lines` lines); returns the offset after the last byte
/// written. A stream broken by an unavailable server is opened again from there.
async fn copy_log(
    client: &Client,
    id: &str,
    follow: bool,
    tail_lines: Option<i32>,
    mut offset: Option<u64>,
    out: &mut (dyn Write + Send),
) -> CliResult<u64> {
    loop {
        let request = StreamLogsRequest {
            name: skypilot_api::client::operation_name(id),
            follow,
            tail_lines: if offset.is_none() { tail_lines } else { None },
            offset: offset.map(|o| o as i64),
        };
        let mut stream = client.stream_logs(request).await?;
        let ended = loop {
            match stream.message().await {
                Ok(Some(chunk)) => {
                    out.write_all(&chunk.data)?;
                    out.flush()?;
                    offset = Some(chunk.offset as u64 + chunk.data.len() as u64);
                }
                Ok(None) => break Ok(()),
                Err(status) => break Err(client.stream_error(status)),
            }
        };
        match ended {
            Ok(()) => return Ok(offset.unwrap_or(0)),
            Err(err) if err.is_unavailable() => continue,
            Err(err) => return Err(err.into()),
        }
    }
}

/// Streams the request's log to stdout until it finishes and returns the
/// finished operation; an error when it failed or was cancelled.
pub async fn follow_to_end(client: &Client, id: &str) -> CliResult<Operation> {
    follow_to_end_on(client, id, &mut std::io::stdout()).await
}

/// Like `follow_to_end`, writing the request's log to `out`. Follows the
/// request across a server restart, printing every line once.
pub async fn follow_to_end_on(
    client: &Client,
    id: &str,
    out: &mut (dyn Write + Send),
) -> CliResult<Operation> {
    let follow = async {
        let mut offset = copy_log(client, id, true, None, None, out).await?;
        loop {
            let operation = client.get_operation(id).await?;
            if operation.done {
                copy_log(client, id, false, None, Some(offset), out).await?;
                return Ok::<_, CliError>(operation);
            }
            // The log ended before the request did: the server went away; resume.
            offset = copy_log(client, id, true, None, Some(offset), out).await?;
        }
    };
    let operation = tokio::select! {
        result = follow => result?,
        _ = tokio::signal::ctrl_c() => return Err(detached(id)),
    };
    outcome(operation)
}

/// Follows the request's log on stderr until it finishes; decodes its response.
pub async fn follow_to_response<M: Message + Default>(
    client: &Client,
    operation: &Operation,
) -> CliResult<M> {
    let id = request_metadata(operation)?.request_id;
    let done = follow_to_end_on(client, &id, &mut std::io::stderr()).await?;
    match done.result {
        Some(operation::Result::Response(any)) => M::decode(any.value.as_slice())
            .map_err(|err| CliError::new(format!("unreadable response of request {id}: {err}"))),
        _ => Err(CliError::new(format!("request {id} finished without a response"))),
    }
}

/// The operation if it succeeded; its error otherwise.
pub fn outcome(operation: Operation) -> CliResult<Operation> {
    let metadata = request_metadata(&operation)?;
    match &operation.result {
        Some(operation::Result::Error(status)) => {
            let what = match metadata.state() {
                skypilot_api::proto::skypilot::v1::RequestState::Cancelled => "was cancelled",
                _ => "failed",
            };
            let hint = if metadata.retryable { " Run the command again to retry it." } else { "" };
            Err(CliError::new(format!(
                "Request {} ({}) {what}: {}.{hint}",
                metadata.request_id,
                metadata.request_name,
                status.message.trim_end_matches('.')
            )))
        }
        Some(operation::Result::Response(_)) => Ok(operation),
        None => Err(CliError::new(format!(
            "Request {} ({}) has not finished yet; follow it with: sky api logs {}",
            metadata.request_id, metadata.request_name, metadata.request_id
        ))),
    }
}

/// The message printed when the user presses Ctrl-C while waiting.
pub fn detached(id: &str) -> CliError {
    let _ = std::io::stdout().flush();
    CliError {
        message: format!(
            "\n\u{2699}\u{fe0e} Request will continue running asynchronously.\n\
             \u{251c}\u{2500}\u{2500} View logs: sky api logs {id}\n\
             \u{2514}\u{2500}\u{2500} To cancel the request, run: sky api cancel {id}"
        ),
        exit_code: EXIT_DETACHED,
    }
}

/// Prints how to follow a request submitted with --async.
pub fn print_submitted(operation: &Operation) -> CliResult {
    let metadata = request_metadata(operation)?;
    println!("Submitted {} request: {}", metadata.request_name, metadata.request_id);
    eprintln!("\u{251c}\u{2500}\u{2500} Check logs with: sky api logs {}", metadata.request_id);
    eprintln!("\u{2514}\u{2500}\u{2500} Or, cancel with: sky api cancel {}", metadata.request_id);
    Ok(())
}
