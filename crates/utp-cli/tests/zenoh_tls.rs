//! zenoh:// over TLS (feature `zenoh-tls`), with real processes: a server
//! whose zenoh config listens on `tls/localhost:PORT` with a certificate
//! signed by a test CA; a client trusting that CA gets answers; a client
//! that does not trust it, and a plain-TCP client, get a clear error within
//! the call's deadline and no answer. With mutual TLS, a client without a
//! certificate of the CA is refused too. Certificates are made with the
//! `openssl` command (the test is skipped, saying so, without it).

#![cfg(feature = "zenoh-tls")]

mod util;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use util::{run, unique, utp};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A directory removed with everything in it on drop.
struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA (`NAME-ca.crt`) and a key and certificate for `localhost` it signed
/// (`NAME.key`, `NAME.crt`).
fn certificates(dir: &Path, name: &str) {
    let ca = format!("{name}-ca");
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={ca}"),
            "-keyout",
            &format!("{ca}.key"),
            "-out",
            &format!("{ca}.crt"),
        ],
    );
    std::fs::write(
        dir.join(format!("{name}.ext")),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.crt"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &format!("{name}.ext"),
            "-out",
            &format!("{name}.crt"),
        ],
    );
}

/// Writes a zenoh config NAME.json5 that `listen`s or `connect`s on
/// `tls/localhost:PORT`, without multicast scouting, with the given
/// `transport.link.tls` settings; returns its path.
fn config(dir: &Path, name: &str, endpoint: &str, port: u16, tls: &str) -> String {
    let path = dir.join(format!("{name}.json5"));
    let body = format!(
        r#"{{ {endpoint}: {{ endpoints: ["tls/localhost:{port}"] }},
             scouting: {{ multicast: {{ enabled: false }} }},
             transport: {{ link: {{ tls: {{ {tls} }} }} }} }}"#
    );
    std::fs::write(&path, body).unwrap();
    path.display().to_string()
}

/// `utp serve calc` on `zenoh://KEY` with the zenoh config at `config`.
fn serve(key: &str, config: &str) -> Proc {
    Proc(
        utp()
            .args([
                "serve",
                "calc",
                "--on",
                &format!("zenoh://{key}?config={config}"),
            ])
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

fn call(url: &str) -> std::process::Output {
    run(&["call", url, "ADD", "10", "20", "--timeout", "3s"])
}

fn answers_within(url: &str, limit: Duration) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        let out = call(url);
        if out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "30" {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

fn refused(url: &str) {
    let started = Instant::now();
    let out = call(url);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    eprintln!(
        "refused as expected: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

#[test]
fn a_tls_service_answers_only_clients_that_trust_its_certificate() {
    if Command::new("openssl").arg("version").output().is_err() {
        eprintln!("SKIPPED: no openssl command to make test certificates");
        return;
    }
    let dir = Dir(PathBuf::from(format!("/tmp/{}", unique("utp-tls"))));
    std::fs::create_dir_all(&dir.0).unwrap();
    let d = &dir.0;
    certificates(d, "server");
    certificates(d, "other"); // a CA the server's certificate is not from
    certificates(d, "client");
    let port = free_port();
    let key = unique("tls");
    let file = |f: &str| d.join(f).display().to_string();
    let server = config(
        d,
        "server",
        "listen",
        port,
        &format!(
            r#"listen_private_key: "{}", listen_certificate: "{}""#,
            file("server.key"),
            file("server.crt")
        ),
    );
    let client = |name: &str, ca: &str| {
        let tls = format!(r#"root_ca_certificate: "{}""#, file(ca));
        config(d, name, "connect", port, &tls)
    };
    let trusting = client("trusting", "server-ca.crt");
    let distrusting = client("distrusting", "other-ca.crt");
    let _server = serve(&key, &server);
    assert!(
        answers_within(
            &format!("zenoh://{key}?config={trusting}"),
            Duration::from_secs(30)
        ),
        "a client trusting the server's CA got no answer over TLS"
    );
    refused(&format!("zenoh://{key}?config={distrusting}"));
    refused(&format!("zenoh://{key}?connect=tcp/127.0.0.1:{port}"));

    // Mutual TLS: the server also wants a client certificate from its CA.
    let port = free_port();
    let key = unique("mtls");
    let server = config(
        d,
        "mserver",
        "listen",
        port,
        &format!(
            r#"listen_private_key: "{}", listen_certificate: "{}",
               root_ca_certificate: "{}", enable_mtls: true"#,
            file("server.key"),
            file("server.crt"),
            file("client-ca.crt")
        ),
    );
    let with_cert = config(
        d,
        "with-cert",
        "connect",
        port,
        &format!(
            r#"root_ca_certificate: "{}", enable_mtls: true,
               connect_private_key: "{}", connect_certificate: "{}""#,
            file("server-ca.crt"),
            file("client.key"),
            file("client.crt")
        ),
    );
    let without_cert = config(
        d,
        "without-cert",
        "connect",
        port,
        &format!(r#"root_ca_certificate: "{}""#, file("server-ca.crt")),
    );
    let _mserver = serve(&key, &server);
    assert!(
        answers_within(
            &format!("zenoh://{key}?config={with_cert}"),
            Duration::from_secs(30)
        ),
        "a client with a certificate of the server's client CA got no answer"
    );
    refused(&format!("zenoh://{key}?config={without_cert}"));
}
