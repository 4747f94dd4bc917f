//! An OpenSSH server for tests: the real `sshd`, run as the current user on a free loopback
//! port with a host key, a client key (`ssh-keygen`) and a known_hosts file made for it, so
//! that Git over SSH is tested end to end without touching the machine's own SSH setup.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use super::{WAIT, free_port};

/// A running `sshd` and the keys to reach it; killed when dropped.
pub struct Sshd {
    child: Child,
    dir: TempDir,
    pub port: u16,
    /// The host name clients use (what known_hosts names).
    pub host: &'static str,
}

/// Runs `ssh-keygen` to make an Ed25519 key pair at `path` (and `path.pub`).
pub fn ssh_keygen(path: &Path, comment: &str) {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .status()
        .expect("ssh-keygen runs");
    assert!(status.success(), "ssh-keygen makes a key");
}

impl Sshd {
    /// Starts `sshd` (the program at `sshd`) accepting the client key of [`Sshd::client_key`]
    /// for the current user, and waits until it accepts connections.
    pub async fn start(sshd: &Path) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("configsync-sshd-")
            .tempdir()
            .expect("a temporary directory");
        let d = dir.path();
        ssh_keygen(&d.join("host_ed25519"), "host");
        ssh_keygen(&d.join("client_ed25519"), "client");
        ssh_keygen(&d.join("other_host_ed25519"), "impostor");
        std::fs::copy(d.join("client_ed25519.pub"), d.join("authorized_keys"))
            .expect("authorized_keys");
        let port = free_port();
        let host = "127.0.0.1";
        // The server's key under the name clients use (with HostKeyAlias, no port suffix).
        let host_pub = std::fs::read_to_string(d.join("host_ed25519.pub")).expect("host key");
        let other_pub =
            std::fs::read_to_string(d.join("other_host_ed25519.pub")).expect("other key");
        let key_of = |line: &str| {
            line.split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" ")
        };
        std::fs::write(
            d.join("known_hosts"),
            format!("{host} {}\n", key_of(&host_pub)),
        )
        .expect("known_hosts");
        std::fs::write(
            d.join("wrong_known_hosts"),
            format!("{host} {}\n", key_of(&other_pub)),
        )
        .expect("wrong known_hosts");
        let config = format!(
            "Port {port}\n\
             ListenAddress {host}\n\
             HostKey {hostkey}\n\
             PidFile {pid}\n\
             AuthorizedKeysFile {keys}\n\
             PubkeyAuthentication yes\n\
             PasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n\
             PermitRootLogin prohibit-password\n\
             StrictModes no\n\
             UsePAM no\n\
             AcceptEnv GIT_PROTOCOL\n\
             LogLevel ERROR\n",
            hostkey = d.join("host_ed25519").display(),
            pid = d.join("sshd.pid").display(),
            keys = d.join("authorized_keys").display(),
        );
        std::fs::write(d.join("sshd_config"), config).expect("sshd_config");
        // sshd started by root wants its privilege separation directory.
        if is_root() {
            let _ = std::fs::create_dir_all("/run/sshd");
        }
        let child = Command::new(sshd)
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(d.join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(d.join("sshd.log")).expect("sshd log"),
            ))
            .spawn()
            .expect("sshd starts");
        let mut sshd = Self {
            child,
            dir,
            port,
            host,
        };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = tokio::time::Instant::now() + WAIT;
        while TcpStream::connect(addr).is_err() {
            if let Ok(Some(status)) = sshd.child.try_wait() {
                panic!("sshd exited ({status}): {}", sshd.log());
            }
            assert!(tokio::time::Instant::now() < deadline, "sshd listens");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        sshd
    }

    /// `ssh://<host>:<port><path>` for the current user.
    pub fn url(&self, path: &Path) -> String {
        format!(
            "ssh://{}@{}:{}{}",
            whoami(),
            self.host,
            self.port,
            path.display()
        )
    }

    /// The private key the server accepts.
    pub fn client_key(&self) -> PathBuf {
        self.dir.path().join("client_ed25519")
    }

    /// A known_hosts file holding the server's real host key.
    pub fn known_hosts(&self) -> PathBuf {
        self.dir.path().join("known_hosts")
    }

    /// A known_hosts file naming another key for the server (as after a man in the middle).
    pub fn wrong_known_hosts(&self) -> PathBuf {
        self.dir.path().join("wrong_known_hosts")
    }

    /// The server's public host key (its base64 part).
    pub fn host_key_text(&self) -> String {
        let line = std::fs::read_to_string(self.dir.path().join("host_ed25519.pub"))
            .expect("the host key");
        line.split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_string()
    }

    /// What sshd logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is_root() -> bool {
    whoami() == "root"
}

/// The current user's name, as sshd knows it.
fn whoami() -> String {
    let out = Command::new("id").arg("-un").output().expect("id runs");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
