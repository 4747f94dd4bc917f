//! The state directory that `configsync up` writes and other commands read: where to find
//! NATS (and, for the nats-server `up` started, the users' passwords), the audit API and the
//! clusters of a running instance.

use std::path::{Path, PathBuf};

use anyhow::Context;
use configsync_core::config::NatsArgs;
use configsync_core::nats_auth::Credentials;
use serde::{Deserialize, Serialize};

/// The file `configsync up` writes once everything is ready.
pub const ENDPOINTS_FILE: &str = "endpoints.json";

/// The contents of `endpoints.json`.
#[derive(Debug, Serialize, Deserialize)]
pub struct Endpoints {
    pub nats_url: String,
    /// The passwords of the NATS users, when `up` runs its own nats-server (absent with
    /// `--nats-url`: then commands take `--nats-user`/`--nats-password` as usual).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nats_credentials: Option<PathBuf>,
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

    /// How `user` reaches this instance's NATS: with the password `up` made for it when `up`
    /// runs its own server, else with `flags` (credentials, TLS) at the endpoints' URL.
    pub fn nats_args(&self, user: &str, flags: &NatsArgs) -> anyhow::Result<NatsArgs> {
        let mut args = match &self.nats_credentials {
            Some(file) => Credentials::load(file)?.nats_args(&self.nats_url, user)?,
            None => NatsArgs {
                nats_url: self.nats_url.clone(),
                ..flags.clone()
            },
        };
        args.connect_deadline = flags.connect_deadline;
        Ok(args)
    }
}

/// How a command finds NATS: `--nats-url`, or the endpoints of a running `configsync up`.
#[derive(clap::Args, Debug, Clone)]
pub struct Connection {
    #[command(flatten)]
    pub nats: NatsArgs,
    /// Find NATS through the endpoints.json of `configsync up --state-dir DIR`, connecting as
    /// the user `up` made for this command (unless `up` was given --nats-url).
    #[arg(long, env = "CONFIGSYNC_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
}

impl Connection {
    /// Connects to the NATS named by `--state-dir` if given, as `user` (`operator` to read and
    /// to act as a person, `admin` to manage the stream), else to `--nats-url` with the
    /// credentials of the flags.
    pub async fn connect(
        &self,
        client_name: &str,
        user: &str,
    ) -> anyhow::Result<async_nats::Client> {
        let nats = match &self.state_dir {
            Some(dir) => Endpoints::read(dir)?.nats_args(user, &self.nats)?,
            None => self.nats.clone(),
        };
        Ok(nats.connect(client_name).await?)
    }
}
