//! `sky dashboard`: open the API server's dashboard in a browser (starting
//! the local server first, as every command does), or print its address when
//! no browser can be opened.

use std::process::{Command, Stdio};

use skypilot_api::Endpoint;
use skypilot_server::DASHBOARD_PATH;

use crate::{connect::connect_to, error::CliResult};

/// Options of `sky dashboard`.
#[derive(Debug, clap::Args)]
pub struct DashboardArgs {}

impl DashboardArgs {
    pub async fn run(self) -> CliResult {
        let endpoint = Endpoint::resolve()?;
        // The server must answer before the page can; credentials stay out of
        // the address (the page asks for them).
        connect_to(&endpoint, true).await?;
        let url = format!("{}{DASHBOARD_PATH}", endpoint.uri().trim_end_matches('/'));
        if open_browser(&url) {
            println!("Opening the SkyPilot dashboard in a browser: {url}");
        } else {
            println!("Open the SkyPilot dashboard in a browser: {url}");
        }
        Ok(())
    }
}

/// Starts a browser on `url`: the first of `$BROWSER`'s commands (`a:b`)
/// that starts, else the desktop's opener when there is a display. False
/// when none could be started.
fn open_browser(url: &str) -> bool {
    if let Ok(list) = std::env::var("BROWSER") {
        return list
            .split(':')
            .filter(|command| !command.trim().is_empty())
            .any(|command| start(command, url));
    }
    if cfg!(target_os = "macos") {
        return start("open", url);
    }
    let display = std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some();
    display && start("xdg-open", url)
}

/// Runs `command` (words split at spaces; `%s` marks where the address
/// goes, as in Python's webbrowser, else it comes last) in the background.
fn start(command: &str, url: &str) -> bool {
    let mut words: Vec<String> = command.split_whitespace().map(str::to_string).collect();
    if words.iter().any(|word| word.contains("%s")) {
        words.iter_mut().for_each(|word| *word = word.replace("%s", url));
    } else {
        words.push(url.to_string());
    }
    let Some((program, args)) = words.split_first() else {
        return false;
    };
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .is_ok()
}
