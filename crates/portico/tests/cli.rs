//! The `portico` command as a user runs it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

fn portico() -> Command {
    Command::new(env!("CARGO_BIN_EXE_portico"))
}

fn write_config(dir: &tempfile::TempDir, text: &str) -> std::path::PathBuf {
    let path = dir.path().join("portico.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Settings for a node on free loopback ports with its data in `dir`.
fn local_node(dir: &tempfile::TempDir) -> String {
    format!(
        "server:\n  proxy: {{ listen: \"127.0.0.1:0\" }}\n  admin: {{ listen: \"127.0.0.1:0\" }}\n  access_log: \"off\"\nstorage: \"sqlite://{}/data/portico.db\"\n",
        dir.path().display()
    )
}

/// A running `portico serve`, its log, and the addresses it announced.
struct Serving {
    child: std::process::Child,
    stderr: BufReader<std::process::ChildStderr>,
    proxy: SocketAddr,
    admin: SocketAddr,
}

/// Starts `portico serve -c path` and waits for "Portico is serving".
fn serve(path: &std::path::Path) -> Serving {
    serve_with_token(path, None).0
}

/// Starts `portico serve -c path` with `PORTICO_ADMIN_TOKEN` set to
/// `token` (or unset), waits for "Portico is serving", and returns the
/// lines printed on stderr before it.
fn serve_with_token(path: &std::path::Path, token: Option<&str>) -> (Serving, Vec<String>) {
    serve_with(path, token, &[])
}

/// As [`serve_with_token`], with more arguments for `serve`.
#[allow(clippy::zombie_processes)] // The child goes to the caller, which waits for it.
fn serve_with(
    path: &std::path::Path,
    token: Option<&str>,
    extra: &[&str],
) -> (Serving, Vec<String>) {
    let mut command = portico();
    command
        .args(["serve", "--workers", "1"])
        .args(extra)
        .arg("-c")
        .arg(path)
        .stderr(Stdio::piped());
    match token {
        Some(t) => command.env("PORTICO_ADMIN_TOKEN", t),
        None => command.env_remove("PORTICO_ADMIN_TOKEN"),
    };
    let mut child = command.spawn().unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let mut before = Vec::new();
    loop {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "portico exited before serving: {before:?}"
        );
        if line.contains("Portico is serving") {
            let addr = |key: &str| -> SocketAddr {
                line.split(key)
                    .nth(1)
                    .unwrap()
                    .split_whitespace()
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap()
            };
            let (proxy, admin) = (addr("proxy="), addr("admin="));
            let serving = Serving {
                child,
                stderr,
                proxy,
                admin,
            };
            return (serving, before);
        }
        before.push(line.clone());
    }
}

/// `POST /admin/v1/reload` with an optional bearer token; the status line's code.
fn admin_reload(admin: SocketAddr, token: Option<&str>) -> String {
    let mut conn = TcpStream::connect(admin).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let auth = token.map_or_else(String::new, |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        conn,
        "POST /admin/v1/reload HTTP/1.1\r\nHost: admin\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    conn.read_to_string(&mut resp).unwrap();
    resp.split(' ').nth(1).unwrap_or("").to_owned()
}

fn stop(mut child: std::process::Child) {
    assert!(
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    assert!(child.wait().unwrap().success());
}

/// Without `PORTICO_ADMIN_TOKEN`, a token is generated and printed once;
/// it opens the admin API and nothing else does.
#[test]
fn a_generated_admin_token_is_printed_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(&dir, &local_node(&dir));
    let (
        Serving {
            child,
            mut stderr,
            admin,
            ..
        },
        before,
    ) = serve_with_token(&path, None);
    let printed: Vec<&String> = before
        .iter()
        .filter(|l| l.contains("Admin API token"))
        .collect();
    assert_eq!(printed.len(), 1, "{before:?}");
    let token = printed[0].trim().rsplit(' ').next().unwrap().to_owned();
    // `pat_` and 32 random bytes in unpadded base64url.
    assert!(token.starts_with("pat_"), "{token}");
    assert_eq!(token.len(), 4 + 43, "{token}");
    assert_eq!(admin_reload(admin, None), "401");
    assert_eq!(admin_reload(admin, Some("not-the-token-at-all")), "401");
    assert_eq!(admin_reload(admin, Some(&token)), "200");
    stop(child);
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    assert!(
        !rest.contains(&token),
        "the token was printed again: {rest}"
    );
}

/// `PORTICO_ADMIN_TOKEN` sets the token, which is then never printed; a
/// weak one stops the start.
#[test]
fn the_admin_token_comes_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(&dir, &local_node(&dir));
    let token = "cli-test-admin-token-0001";
    let (
        Serving {
            child,
            stderr: _keep_open,
            admin,
            ..
        },
        before,
    ) = serve_with_token(&path, Some(token));
    assert!(
        !before
            .iter()
            .any(|l| l.contains("Admin API token") || l.contains(token)),
        "{before:?}"
    );
    assert_eq!(admin_reload(admin, Some(token)), "200");
    stop(child);

    let out = portico()
        .args(["serve", "-c"])
        .arg(&path)
        .env("PORTICO_ADMIN_TOKEN", "short")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("PORTICO_ADMIN_TOKEN must be at least 16"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn version_and_help() {
    let out = portico().arg("--version").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("portico {}", env!("CARGO_PKG_VERSION"))
    );
    for args in [&["--help"][..], &["serve", "--help"], &["check", "--help"]] {
        let out = portico().args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage: portico"),
            "{args:?}"
        );
    }
}

#[test]
fn check_accepts_a_valid_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        &dir,
        "apis:\n  - name: orders\n    base_path: /orders\n    upstream: { targets: [\"http://127.0.0.1:9\"] }\n",
    );
    let out = portico().args(["check", "-c"]).arg(&path).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok (1 APIs"));
}

#[test]
fn check_prints_every_error_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        &dir,
        "apis:\n  - name: orders\n    base_path: /orders\n    upstreem: {}\n  - name: x\n    base_path: /x\n    upstream: { targets: [\"http://h\"], timeout: soon }\n",
    );
    let out = portico().args(["check", "-c"]).arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("apis[0].upstreem: unknown field `upstreem`"),
        "{err}"
    );
    assert!(err.contains("at line 4 column 5"), "{err}");
    assert!(
        err.contains("apis[1].upstream.timeout: invalid duration `soon`"),
        "{err}"
    );
    assert!(err.contains("has 2 errors"), "{err}");
}

#[test]
fn check_reports_an_unreadable_file() {
    let out = portico()
        .args(["check", "-c", "/nonexistent/portico.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
}

#[test]
fn serve_refuses_an_invalid_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(&dir, "bogus: true\n");
    let out = portico().args(["serve", "-c"]).arg(&path).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bogus: unknown field"));
}

/// Starts a real node from a file, probes it, and stops it with SIGTERM.
#[test]
fn serve_runs_and_stops_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(&dir, &local_node(&dir));
    let Serving {
        mut child,
        mut stderr,
        admin,
        ..
    } = serve(&path);
    assert!(
        dir.path().join("data").is_dir(),
        "the data directory was not created"
    );

    let mut conn = TcpStream::connect(admin).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    conn.write_all(b"GET /readyz HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut resp = String::new();
    conn.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    assert!(rest.contains("Shutting down"), "{rest}");
}

/// `serve --demo` answers the demo API from its spec at once.
#[test]
fn serve_demo_answers_the_demo_api() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(&dir, &local_node(&dir));
    let (
        Serving {
            child,
            mut stderr,
            proxy,
            ..
        },
        _,
    ) = serve_with(&path, None, &["--demo"]);
    let mut conn = TcpStream::connect(proxy).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    conn.write_all(b"GET /demo/books/1 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut resp = String::new();
    conn.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.contains("content-type: application/json"), "{resp}");
    assert!(resp.contains("\"title\":\"Dune\""), "{resp}");
    stop(child);
    let mut log = String::new();
    stderr.read_to_string(&mut log).unwrap();
    assert!(log.contains("Shutting down"), "{log}");
}

/// SIGHUP re-reads the file: a new API becomes routable, a broken file is
/// refused with its errors logged and the running configuration stays.
#[test]
fn sighup_reloads_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let head = local_node(&dir);
    let path = write_config(&dir, &head);
    let Serving {
        mut child,
        mut stderr,
        proxy,
        ..
    } = serve(&path);
    let mut line = String::new();
    let status = |path: &str| {
        let mut conn = TcpStream::connect(proxy).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(
            conn,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut resp = String::new();
        conn.read_to_string(&mut resp).unwrap();
        resp.split(' ').nth(1).unwrap_or("").to_owned()
    };
    let hup = |pid: u32| {
        assert!(
            Command::new("kill")
                .args(["-HUP", &pid.to_string()])
                .status()
                .unwrap()
                .success()
        )
    };
    assert_eq!(status("/new/x"), "404");

    // Port 9 on loopback refuses: a live route answers 502, a missing one 404.
    std::fs::write(
        &path,
        format!("{head}apis:\n  - {{ name: new, base_path: /new, upstream: {{ targets: [\"http://127.0.0.1:9\"] }} }}\n"),
    )
    .unwrap();
    hup(child.id());
    let mut seen = String::new();
    for _ in 0..100 {
        seen = status("/new/x");
        if seen == "502" {
            break;
        }
        #[allow(clippy::disallowed_methods)]
        // A plain test thread polling a child process, no runtime.
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(seen, "502", "the reloaded route never went live");

    std::fs::write(
        &path,
        format!("{head}apis:\n  - {{ name: new, base_pth: /new }}\n"),
    )
    .unwrap();
    hup(child.id());
    line.clear();
    loop {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "portico exited");
        if line.contains("Reload refused") {
            break;
        }
    }
    assert_eq!(
        status("/new/x"),
        "502",
        "a refused reload changed the running configuration"
    );

    assert!(
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    assert!(child.wait().unwrap().success());
}
