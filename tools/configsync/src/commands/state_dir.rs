//! The state directory that `configsync up` writes and other commands read: where to find
//! NATS, the audit API and the clusters of a running instance.

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// The file `configsync up` writes once everything is ready.
pub const ENDPOINTS_FILE: &str = "endpoints.json";

/// The contents of `endpoints.json`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Endpoints {
    pub nats_url: String,
    pub audit_url: Option<String>,
    pub kubeconfig: Option<String>,
    #[serde(default)]
    pub services: serde_json::Value,
}

impl Endpoints {
    /// Reads `<dir>/endpoints.json`.
    pub fn read(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join(ENDPOINTS_FILE);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "cannot read {} (is `configsync up --state-dir {}` running?)",
                path.display(),
                dir.display()
            )
        })?;
        serde_json::from_str(&text)
            .with_context(|| format!("{} is not a ConfigSync endpoints file", path.display()))
    }
}

/// How a command finds NATS: `--nats-url`, or the endpoints of a running `configsync up`.
#[derive(clap::Args, Debug, Clone)]
pub struct Connection {
    #[command(flatten)]
    pub nats: configsync_core::config::NatsArgs,
    /// Find NATS through the endpoints.json of `configsync up --state-dir DIR`.
    #[arg(long, env = "CONFIGSYNC_STATE_DIR")]
    pub state_dir: Option<std::path::PathBuf>,
}

impl Connection {
    /// Connects to the NATS named by `--state-dir` if given, else `--nats-url`.
    pub async fn connect(&self, client_name: &str) -> anyhow::Result<async_nats::Client> {
        let mut nats = self.nats.clone();
        if let Some(dir) = &self.state_dir {
            nats.nats_url = Endpoints::read(dir)?.nats_url;
        }
        Ok(nats.connect(client_name).await?)
    }
}
