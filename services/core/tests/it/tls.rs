//! TLS between the services and NATS, against a real nats-server with certificates from a
//! local CA made by the test (rcgen): a client given the CA (`--nats-ca`) connects and
//! publishes; one without it, or with another CA, is refused at once with a TLS error that
//! says what to give; a server that verifies clients takes only a certificate of its CA
//! (`--nats-cert`, `--nats-key`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Parser;
use configsync_core::config::{ConnectError, NatsArgs};
use configsync_core::harness::NatsServer;
use configsync_core::log::{EventLog, stream};
use configsync_core::metrics::Metrics;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

use crate::support::health;

/// A CA and the PEM files it issued, in a temporary directory.
struct Pki {
    dir: tempfile::TempDir,
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let pki = Self {
            dir: tempfile::tempdir().unwrap(),
            ca,
        };
        std::fs::write(pki.path("ca.pem"), pki.ca.pem()).unwrap();
        pki
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Issues a certificate for `names` (IP addresses or DNS names) and writes
    /// `<file>.pem` and `<file>-key.pem`.
    fn issue(
        &self,
        file: &str,
        names: &[&str],
        usage: ExtendedKeyUsagePurpose,
    ) -> (PathBuf, PathBuf) {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name.push(DnType::CommonName, file);
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        let (cert_file, key_file) = (
            self.path(&format!("{file}.pem")),
            self.path(&format!("{file}-key.pem")),
        );
        std::fs::write(&cert_file, cert.pem()).unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        (cert_file, key_file)
    }
}

/// A nats-server with JetStream that speaks only TLS, with a certificate for 127.0.0.1 from
/// `pki`; with `verify`, it also demands a client certificate signed by the same CA.
async fn tls_server(pki: &Pki, verify: bool) -> NatsServer {
    let (cert, key) = pki.issue(
        "server",
        &["127.0.0.1", "localhost"],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let config = format!(
        "tls {{\n  cert_file: \"{}\"\n  key_file: \"{}\"\n  ca_file: \"{}\"\n  verify: {verify}\n  timeout: 5\n}}\n",
        cert.display(),
        key.display(),
        pki.path("ca.pem").display()
    );
    NatsServer::start_with_config(&config)
        .await
        .expect("nats-server starts with TLS")
}

fn args(server: &NatsServer, ca: Option<&Path>) -> NatsArgs {
    let mut args = NatsArgs::for_url(server.url());
    args.auth.nats_ca = ca.map(Path::to_path_buf);
    // Long: a TLS refusal must not wait for it.
    args.connect_deadline = Duration::from_secs(20);
    args
}

/// Connects and publishes an event through the stream, awaiting its ack.
async fn publishes(args: &NatsArgs) {
    let client = args.connect("tls-test").await.expect("connects over TLS");
    assert!(
        client.server_info().tls_required,
        "the server speaks only TLS"
    );
    let log = EventLog::new(client, "configsync://test/tls", Metrics::new()).unwrap();
    stream::ensure(&log.js, &log.spec)
        .await
        .expect("stream is created");
    let ack = log
        .publisher(Duration::from_secs(10))
        .publish(&health(1))
        .await
        .expect("published and acked");
    assert_eq!(ack.sequence, 1);
}

/// Connects, expecting a TLS refusal at once (not after the connect deadline).
async fn refused(args: &NatsArgs) -> String {
    let started = Instant::now();
    let error = args.connect("tls-test").await.expect_err("refused by TLS");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "a TLS refusal is final, not retried until the deadline: {:?}",
        started.elapsed()
    );
    assert!(matches!(error, ConnectError::Tls { .. }), "{error:?}");
    let text = error.to_string();
    assert!(text.contains(&args.nats_url), "names the server: {text}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_with_the_ca_connects_over_tls_and_one_without_it_is_refused() {
    let pki = Pki::new("configsync test CA");
    let server = tls_server(&pki, false).await;

    publishes(&args(&server, Some(&pki.path("ca.pem")))).await;

    let without = refused(&args(&server, None)).await;
    assert!(
        without.contains("UnknownIssuer") && without.contains("give its CA with --nats-ca"),
        "{without}"
    );

    let other = Pki::new("another CA");
    let wrong = refused(&args(&server, Some(&other.path("ca.pem")))).await;
    assert!(
        wrong.contains("not signed by the CA of --nats-ca")
            && wrong.contains(&other.path("ca.pem").display().to_string()),
        "{wrong}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_verifies_clients_takes_a_certificate_of_its_ca_only() {
    let pki = Pki::new("configsync test CA");
    let server = tls_server(&pki, true).await;
    let ca = pki.path("ca.pem");

    let no_certificate = refused(&args(&server, Some(&ca))).await;
    assert!(
        no_certificate.contains("give --nats-cert and --nats-key"),
        "{no_certificate}"
    );

    let (cert, key) = pki.issue("applier", &["applier"], ExtendedKeyUsagePurpose::ClientAuth);
    let mut mutual = args(&server, Some(&ca));
    mutual.auth.nats_cert = Some(cert);
    mutual.auth.nats_key = Some(key);
    publishes(&mutual).await;

    // A client certificate of another CA is refused by the server.
    let other = Pki::new("another CA");
    let (cert, key) = other.issue(
        "intruder",
        &["intruder"],
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    let mut intruder = args(&server, Some(&ca));
    intruder.auth.nats_cert = Some(cert.clone());
    intruder.auth.nats_key = Some(key);
    let refused_certificate = refused(&intruder).await;
    assert!(
        refused_certificate.contains("does not accept the certificate of --nats-cert")
            && refused_certificate.contains(&cert.display().to_string()),
        "{refused_certificate}"
    );
}

#[derive(clap::Parser, Debug)]
struct Flags {
    #[command(flatten)]
    nats: NatsArgs,
}

#[test]
fn tls_flags_are_files_that_exist_and_a_certificate_comes_with_its_key() {
    let pki = Pki::new("configsync test CA");
    let (cert, key) = pki.issue("client", &["client"], ExtendedKeyUsagePurpose::ClientAuth);
    let ca = pki.path("ca.pem");
    let (ca, cert, key) = (
        ca.to_str().unwrap(),
        cert.to_str().unwrap(),
        key.to_str().unwrap(),
    );

    let flags =
        Flags::try_parse_from(["t", "--nats-ca", ca, "--nats-cert", cert, "--nats-key", key])
            .expect("all three");
    assert_eq!(flags.nats.auth.nats_ca.as_deref(), Some(Path::new(ca)));
    assert_eq!(flags.nats.auth.nats_cert.as_deref(), Some(Path::new(cert)));
    assert_eq!(flags.nats.auth.nats_key.as_deref(), Some(Path::new(key)));

    let missing = pki.path("nope.pem");
    let error = Flags::try_parse_from(["t", "--nats-ca", missing.to_str().unwrap()])
        .expect_err("a CA file that does not exist");
    assert!(error.to_string().contains("cannot read"), "{error}");

    let error = Flags::try_parse_from(["t", "--nats-cert", cert])
        .expect_err("a certificate without its key");
    assert!(error.to_string().contains("--nats-key"), "{error}");
}
