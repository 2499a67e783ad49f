//! The dashboard as the server serves it, through the real `sky` binary:
//! `sky dashboard` (browser or printed address), the embedded build with its
//! security headers, and gRPC-Web calls from the page's own origin (accepted)
//! and from any other (refused). The page itself is driven in a real browser
//! by the TypeScript suite (clients/typescript/test/dashboard.test.ts).

mod common;

use std::{
    io::{Read, Write},
    path::Path,
    time::{Duration, Instant},
};

use common::{Home, Run};

/// The raw HTTP/1.1 response to `request` (a request head, plus a body after
/// it when `body` is not empty) sent to the server at `port`.
fn http(port: u16, head: &str, body: &[u8]) -> String {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    String::from_utf8_lossy(&response).into_owned()
}

fn get(port: u16, path: &str) -> String {
    http(port, &format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"), b"")
}

/// A gRPC-Web call of `GetServerInfo` (an empty message) as a page of
/// `origin` makes it, with `authorization` when given.
fn grpc_web_call(port: u16, origin: &str, authorization: Option<&str>) -> String {
    let frame = [0u8, 0, 0, 0, 0];
    let authorization = authorization.map(|value| format!("authorization: {value}\r\n")).unwrap_or_default();
    http(
        port,
        &format!(
            "POST /skypilot.v1.ServerService/GetServerInfo HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
             Origin: {origin}\r\ncontent-type: application/grpc-web+proto\r\nx-grpc-web: 1\r\n\
             {authorization}content-length: {}\r\nConnection: close\r\n\r\n",
            frame.len()
        ),
        &frame,
    )
}

/// The built file of the dashboard named `name`.
fn built(name: &str) -> String {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../clients/typescript/dashboard/dist").join(name);
    std::fs::read_to_string(&file).unwrap_or_else(|err| panic!("{}: {err}", file.display()))
}

#[test]
fn sky_dashboard_prints_the_address_without_a_browser_and_opens_it_with_one() {
    let home = Home::new();
    let url = format!("http://127.0.0.1:{}/dashboard/", home.port);
    let mut command = home.command(&["dashboard"]);
    command.env_remove("BROWSER").env_remove("DISPLAY").env_remove("WAYLAND_DISPLAY");
    let printed = Run::from(command.output().unwrap()).ok();
    assert!(
        printed.stdout.contains(&format!("Open the SkyPilot dashboard in a browser: {url}")),
        "{}",
        printed.stdout
    );
    assert!(get(home.port, "/dashboard/").starts_with("HTTP/1.1 200"), "the printed address does not answer");

    // A browser given as $BROWSER gets the address (and no credentials); a
    // first entry that cannot start is passed over.
    let opened = home.path().join("opened");
    let browser = home.path().join("browser.sh");
    std::fs::write(
        &browser,
        format!("#!/bin/sh\necho \"$@\" > {}.tmp && mv {0}.tmp {0}\n", opened.display()),
    )
    .unwrap();
    std::fs::set_permissions(&browser, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let browsers = format!("/nonexistent/browser:{}", browser.display());
    let run = home.sky_with_env(&["dashboard"], "BROWSER", &browsers).ok();
    assert!(
        run.stdout.contains(&format!("Opening the SkyPilot dashboard in a browser: {url}")),
        "{}",
        run.stdout
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !opened.exists() {
        assert!(Instant::now() < deadline, "the browser was not started");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(std::fs::read_to_string(&opened).unwrap().trim(), url);
}

#[test]
fn the_server_serves_the_embedded_build_with_a_policy_that_loads_nothing_else() {
    let home = Home::new();
    home.sky(&["api", "start"]).ok();
    let port = home.port;

    let root = get(port, "/");
    assert!(root.starts_with("HTTP/1.1 308"), "{root}");
    assert!(root.to_ascii_lowercase().contains("location: /dashboard/"), "{root}");
    for (path, name, content_type) in [
        ("/dashboard/", "index.html", "text/html"),
        ("/dashboard/app.js", "app.js", "text/javascript"),
        ("/dashboard/app.css", "app.css", "text/css"),
    ] {
        let response = get(port, path);
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        let head = head.to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 200"), "{path}: {head}");
        assert!(head.contains(&format!("content-type: {content_type}")), "{path}: {head}");
        assert!(head.contains("content-security-policy: default-src 'self'; script-src 'self'"), "{head}");
        assert!(head.contains("frame-ancestors 'none'") && head.contains("x-frame-options: deny"), "{head}");
        assert!(head.contains("x-content-type-options: nosniff"), "{head}");
        assert_eq!(
            body,
            built(name),
            "{path} is not the build in clients/typescript/dashboard/dist: rebuild"
        );
        // Unchanged files are not sent again.
        let tag = head.lines().find_map(|line| line.strip_prefix("etag: ")).unwrap().to_string();
        let again = http(
            port,
            &format!(
                "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nIf-None-Match: {tag}\r\nConnection: close\r\n\r\n"
            ),
            b"",
        );
        assert!(again.starts_with("HTTP/1.1 304"), "{again}");
    }
    assert!(get(port, "/dashboard/../server.pid").starts_with("HTTP/1.1 404"));
    assert!(get(port, "/dashboard/secret.txt").starts_with("HTTP/1.1 404"));
    let put = http(
        port,
        &format!(
            "PUT /dashboard/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        ),
        b"",
    );
    assert!(put.starts_with("HTTP/1.1 405"), "{put}");
    // A page reached through another host name (DNS rebinding) gets nothing.
    let rebound =
        http(port, "GET /dashboard/ HTTP/1.1\r\nHost: rebind.example:80\r\nConnection: close\r\n\r\n", b"");
    assert!(rebound.starts_with("HTTP/1.1 403"), "{rebound}");
    assert!(rebound.contains("answers only calls addressed to localhost"), "{rebound}");
    home.sky(&["api", "stop"]).ok();
}

#[test]
fn the_page_calls_its_own_server_and_other_origins_are_refused() {
    let home = Home::new();
    let password = "dashboard-admin-pw-3";
    let start = home
        .command(&["api", "start", "--deploy", "--host", "127.0.0.1"])
        .env("SKYPILOT_INITIAL_BASIC_AUTH", format!("admin:{password}"))
        .output()
        .unwrap();
    Run::from(start).ok();
    let port = home.port;
    let own = format!("http://127.0.0.1:{port}");

    // The page itself is public (it holds no data); its calls are not.
    assert!(get(port, "/dashboard/").starts_with("HTTP/1.1 200"));
    let anonymous = grpc_web_call(port, &own, None);
    assert!(anonymous.contains("grpc-status: 16") || anonymous.contains("grpc-status:16"), "{anonymous}");

    let basic = format!("Basic {}", skypilot_api::base64::encode(format!("admin:{password}").as_bytes()));
    let signed_in = grpc_web_call(port, &own, Some(&basic));
    assert!(signed_in.contains("grpc-status:0"), "{signed_in}");
    for other in ["http://evil.example", &format!("http://127.0.0.1:{}", port.wrapping_add(1)), "null"] {
        let refused = grpc_web_call(port, other, Some(&basic));
        assert!(refused.contains("grpc-status: 7"), "{other}: {refused}");
        assert!(refused.contains("are%20not%20allowed"), "{refused}");
    }
}
