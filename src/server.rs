//! One freshet node: store, API, delivery engine and (in development) the sandbox bank,
//! started and stopped together.

use std::{net::SocketAddr, time::Duration};

use anyhow::Context;
use freshet_api::{ApiOptions, AppState};
use freshet_engine::{
    Engine,
    delivery::{dispatcher::DispatcherConfig, outbox::DeliveryConfig},
    metrics::Exporter,
    products::{Products, ProductsConfig},
    refresh::{RefreshConfig, Refresher},
    retention::{Retention, RetentionConfig},
    signing_keys::{self, SigningKeys},
    webhooks::Endpoints,
};
use freshet_sandbox::{Sandbox, SandboxConfig};
use freshet_store::{Store, StoreOptions};
use secrecy::ExposeSecret;
use std::sync::Arc;
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, redact_url};

/// A running node.
pub struct Server {
    addr: SocketAddr,
    store: Store,
    stop: CancellationToken,
    serving: Option<JoinHandle<std::io::Result<()>>>,
    dispatching: Option<JoinHandle<()>>,
    refreshing: Option<JoinHandle<()>>,
    generating: Option<JoinHandle<()>>,
    retaining: Option<JoinHandle<()>>,
    grace: Duration,
}

impl Server {
    /// Connects and migrates the store, binds the listener and starts serving.
    pub async fn start(config: Config) -> anyhow::Result<Self> {
        // Checked before anything else starts: a wrong registry stops the node.
        let registry = config
            .providers
            .as_deref()
            .map(freshet_banks::registry::load)
            .transpose()?;
        let (master_key, key_source) = crate::keys::master_key(&config, true)?;
        if let crate::keys::KeySource::Development {
            path,
            created: true,
        } = &key_source
        {
            tracing::info!(
                file = %path.display(),
                "made the master key that seals secrets at rest: keep this file, and back it up apart from the database"
            );
        }
        let url = config.database_url.expose_secret();
        let mut store = Store::connect(
            url,
            &StoreOptions {
                max_connections: config.db_max_connections,
                ..Default::default()
            },
        )
        .await
        .with_context(|| format!("connecting to {}", redact_url(url)))?;
        store.migrate().await.context("migrating the database")?;
        let unlocked = store
            .unlock(&master_key)
            .await
            .context("opening the data keys with the master key")?;
        if unlocked.sealed > 0 {
            tracing::info!(
                sealed = unlocked.sealed,
                "sealed secrets an older freshet stored in plaintext"
            );
        }

        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("listening on {}", config.listen))?;
        let addr = listener.local_addr()?;

        if store.kind() == freshet_store::StoreKind::Sqlite {
            // SQLite serves one node: leases left by a previous run of it are orphans.
            let released = store.release_all_leases().await?;
            if released > 0 {
                tracing::info!(
                    released,
                    "re-queued deliveries left in flight by the last run"
                );
            }
        }
        let keys = SigningKeys::load(store.clone(), signing_keys::DEFAULT_TTL)
            .await
            .context("loading the signing keys")?;
        let policy = Arc::new(config.target_policy());
        let stop = CancellationToken::new();
        let (engine, dispatching) = Engine::start(
            store.clone(),
            keys.clone(),
            policy.clone(),
            DeliveryConfig {
                dispatcher: DispatcherConfig {
                    node: config.node_name.clone(),
                    lease: config.delivery_lease,
                    ..Default::default()
                },
                timeout: config.delivery_timeout,
                partition_lease: config.partition_lease,
            },
            stop.clone(),
        );
        let public_url = config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{addr}"));
        let sandbox_root = match &config.sandbox_url {
            Some(url) => Some(url.clone()),
            None => config.sandbox.then(|| format!("{public_url}/sandbox")),
        };
        let providers = match registry {
            Some(providers) => providers,
            None => sandbox_root
                .map(|root| sandbox_providers(&root, config.bank_timeout))
                .unwrap_or_default(),
        };
        let refresher = Refresher::new(
            engine.clone(),
            providers,
            RefreshConfig {
                refreshes_per_day: config.refreshes_per_day,
                tick: config.refresh_tick,
                callback_url: format!("{public_url}/v1/consents/callback"),
                public_url: public_url.clone(),
                default_consent_days: config.default_consent_days,
                node: config.node_name.clone(),
                ..Default::default()
            },
        );
        let products = Products::new(
            engine.clone(),
            refresher.clone(),
            policy.clone(),
            ProductsConfig {
                node: config.node_name.clone(),
                ..Default::default()
            },
        );
        let state = AppState {
            store: store.clone(),
            engine: engine.clone(),
            endpoints: Endpoints::new(store.clone(), policy.clone()),
            refresher: refresher.clone(),
            products: products.clone(),
            signing_keys: keys.clone(),
            admin_token: config.admin_token.clone(),
            keys: Default::default(),
            auth_failures: Arc::new(freshet_api::throttle::AuthThrottle::per_minute(
                config.auth_failures_per_minute,
            )),
            exporter: Arc::new(Exporter::new(
                engine.metrics().clone(),
                store.clone(),
                refresher.providers(),
                config.metrics_cache,
            )),
        };
        let mut app = freshet_api::router(
            state,
            &ApiOptions {
                max_body_bytes: config.max_body_bytes,
            },
        );
        if config.sandbox {
            let sandbox = Sandbox::new(SandboxConfig {
                seed: config.sandbox_seed,
                ..Default::default()
            });
            app = app.nest("/sandbox", freshet_sandbox::router(sandbox));
        }

        let refreshing = refresher.spawn(stop.clone());
        let generating = products.spawn(stop.clone());
        let retaining = Retention::new(
            store.clone(),
            engine.metrics().clone(),
            RetentionConfig {
                period: config.retention,
                every: config.retention_every,
                pause: config.retention_pause,
                node: config.node_name.clone(),
                ..Default::default()
            },
        )
        .spawn(stop.clone());
        let serving = tokio::spawn(crate::serve::serve(
            listener,
            app,
            config.serve_limits(),
            stop.clone(),
        ));
        tracing::info!(%addr, store = store.kind().as_str(), profile = ?config.profile, "freshet is serving");
        Ok(Self {
            addr,
            store,
            stop,
            serving: Some(serving),
            dispatching: Some(dispatching),
            refreshing: Some(refreshing),
            generating: Some(generating),
            retaining: Some(retaining),
            grace: config.shutdown_grace,
        })
    }

    /// The address the node listens on (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The node's store, for tests that reach under the API (a simulated full disk).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Stops accepting connections, lets in-flight requests finish (up to the grace period),
    /// then closes the store.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        self.stop.cancel();
        let serving = self.serving.take();
        let dispatching = self.dispatching.take();
        let refreshing = self.refreshing.take();
        let generating = self.generating.take();
        let retaining = self.retaining.take();
        let drained = tokio::time::timeout(self.grace, async {
            let served = match serving {
                Some(s) => s
                    .await
                    .context("the server task failed")?
                    .map_err(anyhow::Error::from),
                None => Ok(()),
            };
            if let Some(d) = dispatching {
                d.await.context("the dispatcher failed")?;
            }
            if let Some(r) = refreshing {
                r.await.context("the refresh engine failed")?;
            }
            if let Some(g) = generating {
                g.await.context("the products engine failed")?;
            }
            if let Some(r) = retaining {
                r.await.context("the retention task failed")?;
            }
            served
        })
        .await;
        match drained {
            Ok(result) => result?,
            Err(_) => {
                tracing::warn!(grace = ?self.grace, "in-flight work outlived the grace period")
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

/// The sandbox bank's five banks, reached at `root` (this node's `/sandbox`).
pub fn sandbox_providers(root: &str, timeout: Duration) -> Vec<freshet_banks::Provider> {
    freshet_sandbox::BANKS
        .iter()
        .map(|b| {
            let paths = b.paths(root);
            freshet_banks::Provider {
                id: b.id.into(),
                name: b.name.into(),
                code: b.code.into(),
                institution_code: b.code.into(),
                numeric_id: b.numeric_id,
                standard: b.standard,
                country: b.country.into(),
                api_base: paths.api_base,
                authorize_url: paths.authorize,
                token_url: paths.token,
                concurrency: 16,
                unattended_per_day: 4,
                // Tatra banka's sandbox bank notifies of new transactions.
                push: b.id == "tatrabanka",
                timeout,
                security: None,
            }
        })
        .collect()
}
