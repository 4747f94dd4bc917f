//! A real nats-server with JetStream on a random port and a temporary store, which can be
//! stopped and restarted on the same store and port, and is killed on drop.
//! Without authentication by default; with the users and permissions `configsync up` gives
//! its server ([`NatsServer::start_with_auth`]), or any configuration file.

use std::ops::{Deref, DerefMut};

use tempfile::TempDir;

use crate::local_nats::LocalNats;
pub use crate::local_nats::nats_server_bin;
use crate::nats_auth::{self, Credentials};

/// A nats-server on a temporary directory, removed with it.
pub struct NatsServer {
    // Field order matters: the server is killed before its directory is removed.
    server: LocalNats,
    credentials: Option<Credentials>,
    _dir: TempDir,
}

fn temp_dir() -> std::io::Result<TempDir> {
    tempfile::Builder::new()
        .prefix("configsync-nats-")
        .tempdir()
}

impl NatsServer {
    /// Starts a server with JetStream on a free port with a fresh store.
    pub async fn start() -> std::io::Result<Self> {
        let dir = temp_dir()?;
        let server = LocalNats::start(dir.path()).await?;
        Ok(Self {
            server,
            credentials: None,
            _dir: dir,
        })
    }

    /// Starts a server as `configsync up` does: every user of [`nats_auth::users`] with a
    /// random password ([`NatsServer::credentials`]) and the permissions of
    /// `nats/permissions.conf`.
    pub async fn start_with_auth() -> std::io::Result<Self> {
        let dir = temp_dir()?;
        let (credentials, config) = nats_auth::prepare(dir.path(), &dir.path().join("server"))
            .map_err(std::io::Error::other)?;
        let server = LocalNats::start_with_config(dir.path(), Some(&config)).await?;
        Ok(Self {
            server,
            credentials: Some(credentials),
            _dir: dir,
        })
    }

    /// Starts a server with the configuration `text` (written to a file in the server's
    /// directory; paths in it should be absolute).
    pub async fn start_with_config(text: &str) -> std::io::Result<Self> {
        let dir = temp_dir()?;
        let config = dir.path().join("test.conf");
        std::fs::write(&config, text)?;
        let server = LocalNats::start_with_config(dir.path(), Some(&config)).await?;
        Ok(Self {
            server,
            credentials: None,
            _dir: dir,
        })
    }

    /// The users' passwords, for a server of [`NatsServer::start_with_auth`].
    pub fn credentials(&self) -> Option<&Credentials> {
        self.credentials.as_ref()
    }
}

impl Deref for NatsServer {
    type Target = LocalNats;
    fn deref(&self) -> &LocalNats {
        &self.server
    }
}

impl DerefMut for NatsServer {
    fn deref_mut(&mut self) -> &mut LocalNats {
        &mut self.server
    }
}
