//! One freshet node: store, API and (later) engines, started and stopped together.

use std::{net::SocketAddr, time::Duration};

use anyhow::Context;
use freshet_api::{ApiOptions, AppState};
use freshet_engine::Engine;
use freshet_store::{Store, StoreOptions};
use secrecy::ExposeSecret;
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, redact_url};

/// A running node.
pub struct Server {
    addr: SocketAddr,
    store: Store,
    stop: CancellationToken,
    serving: Option<JoinHandle<std::io::Result<()>>>,
    grace: Duration,
}

impl Server {
    /// Connects and migrates the store, binds the listener and starts serving.
    pub async fn start(config: Config) -> anyhow::Result<Self> {
        let url = config.database_url.expose_secret();
        let store = Store::connect(
            url,
            &StoreOptions {
                max_connections: config.db_max_connections,
                ..Default::default()
            },
        )
        .await
        .with_context(|| format!("connecting to {}", redact_url(url)))?;
        store.migrate().await.context("migrating the database")?;

        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("listening on {}", config.listen))?;
        let addr = listener.local_addr()?;

        let engine = Engine::new(store.clone());
        let state = AppState {
            store: store.clone(),
            engine: engine.clone(),
            admin_token: config.admin_token.clone(),
        };
        let app = freshet_api::router(
            state,
            &ApiOptions {
                max_body_bytes: config.max_body_bytes,
            },
        );

        let stop = CancellationToken::new();
        let serving = tokio::spawn(
            axum::serve(listener, app)
                .with_graceful_shutdown(stop.clone().cancelled_owned())
                .into_future(),
        );
        tracing::info!(%addr, store = store.kind().as_str(), profile = ?config.profile, "freshet is serving");
        Ok(Self {
            addr,
            store,
            stop,
            serving: Some(serving),
            grace: config.shutdown_grace,
        })
    }

    /// The address the node listens on (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting connections, lets in-flight requests finish (up to the grace period),
    /// then closes the store.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        self.stop.cancel();
        if let Some(serving) = self.serving.take() {
            match tokio::time::timeout(self.grace, serving).await {
                Ok(joined) => joined.context("the server task failed")??,
                Err(_) => tracing::warn!(
                    grace = ?self.grace,
                    "in-flight requests outlived the grace period"
                ),
            }
        }
        self.store.close().await;
        tracing::info!("freshet stopped");
        Ok(())
    }
}

impl Drop for Server {
    /// A node dropped without [`Server::shutdown`] stops accepting at once.
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
