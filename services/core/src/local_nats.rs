//! A nats-server child process with JetStream on loopback: `configsync up` runs one on its state
//! directory (with the users and permissions of [`crate::nats_auth`]), and the test harness one
//! per test on a temporary directory. It picks a free port on first start, keeps it across
//! restarts on the same store, and is killed on drop.
//!
//! The binary is `$NATS_SERVER_BIN` or `nats-server` on `PATH`
//! (`tools/install-nats-server.sh` installs the pinned version).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A nats-server child process.
pub struct LocalNats {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    /// A configuration file (`-c`): authentication, TLS. Command-line flags override it.
    config: Option<PathBuf>,
    child: Option<Child>,
}

/// The nats-server binary to run.
pub fn nats_server_bin() -> PathBuf {
    std::env::var_os("NATS_SERVER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("nats-server"))
}

impl LocalNats {
    /// Starts a server with JetStream whose store, log and ports file live under `dir`, on a
    /// free port (`-p -1`).
    pub async fn start(dir: &Path) -> std::io::Result<Self> {
        Self::start_with_config(dir, None).await
    }

    /// [`LocalNats::start`] with a configuration file (`nats-server -c`), such as the one of
    /// [`crate::nats_auth::prepare`]. The address, port and store stay those of `start`.
    pub async fn start_with_config(dir: &Path, config: Option<&Path>) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut server = Self {
            dir: dir.to_path_buf(),
            bin: nats_server_bin(),
            port: 0,
            config: config.map(Path::to_path_buf),
            child: None,
        };
        server.spawn().await?;
        Ok(server)
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The JetStream store directory.
    pub fn store_dir(&self) -> PathBuf {
        self.dir.join("store")
    }

    /// The server's log file.
    pub fn log_file(&self) -> PathBuf {
        self.dir.join("nats-server.log")
    }

    /// Stops the server gracefully (SIGTERM) and waits for it to exit.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = child.id().to_string();
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            loop {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if tokio::time::Instant::now() >= deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    /// Kills the server (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and store.
    pub async fn restart(&mut self) -> std::io::Result<()> {
        self.stop().await;
        self.spawn().await
    }

    async fn spawn(&mut self) -> std::io::Result<()> {
        let ports_dir = self.dir.join("ports");
        let _ = std::fs::remove_dir_all(&ports_dir);
        std::fs::create_dir_all(&ports_dir)?;
        let port_arg = if self.port == 0 {
            "-1".to_string()
        } else {
            self.port.to_string()
        };
        let log = std::fs::File::create(self.dir.join("nats-server.log"))?;
        let mut command = Command::new(&self.bin);
        if let Some(config) = &self.config {
            command.arg("-c").arg(config);
        }
        let child = command
            .args(["-a", "127.0.0.1", "-p", &port_arg, "-js", "--store_dir"])
            .arg(self.store_dir())
            .arg("--ports_file_dir")
            .arg(&ports_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!(
                        "cannot run {} ({e}); install it with tools/install-nats-server.sh",
                        self.bin.display()
                    ),
                )
            })?;
        self.child = Some(child);
        self.port = wait_for_port(&ports_dir, self.port, &self.dir).await?;
        Ok(())
    }
}

/// Waits for the ports file and for the port to accept connections.
async fn wait_for_port(ports_dir: &Path, known: u16, dir: &Path) -> std::io::Result<u16> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(port) =
            read_ports_file(ports_dir).or(if known != 0 { Some(known) } else { None })
            && tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            && read_ports_file(ports_dir).is_some()
        {
            return Ok(port);
        }
        if tokio::time::Instant::now() >= deadline {
            let log = std::fs::read_to_string(dir.join("nats-server.log")).unwrap_or_default();
            return Err(std::io::Error::other(format!(
                "nats-server did not start within 20s; its log:\n{log}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn read_ports_file(ports_dir: &Path) -> Option<u16> {
    let entry = std::fs::read_dir(ports_dir)
        .ok()?
        .flatten()
        .find(|e| e.file_name().to_string_lossy().ends_with(".ports"))?;
    let text = std::fs::read_to_string(entry.path()).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    let url = json["nats"].as_array()?.first()?.as_str()?;
    url.rsplit(':').next()?.parse().ok()
}

impl Drop for LocalNats {
    fn drop(&mut self) {
        self.kill();
    }
}
