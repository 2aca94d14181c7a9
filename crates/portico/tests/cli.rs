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
#[allow(clippy::zombie_processes)] // The child goes to the caller, which waits for it.
fn serve(path: &std::path::Path) -> Serving {
    let mut child = portico()
        .args(["serve", "--workers", "1", "-c"])
        .arg(path)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "portico exited before serving"
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
            return Serving {
                child,
                stderr,
                proxy,
                admin,
            };
        }
    }
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
