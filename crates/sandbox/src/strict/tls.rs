//! HTTPS for the strict sandbox: the server certificate, client authentication offered with
//! the CA as the only root (a connection without a certificate is accepted, so a browser
//! reaches the authorisation page; one from another CA fails the handshake), and the peer
//! certificate handed to every request of the connection as a [`Peer`] extension.

use std::{future::Future, sync::Arc, time::Duration};

use axum::{Router, extract::Request};
use freshet_fapi::Certificate;
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::{
    RootCertStore, ServerConfig,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::WebPkiClientVerifier,
};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::Service;

use super::{Peer, StrictConfig, StrictError};
use crate::Sandbox;

/// How long a client may take over its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

fn tls_error(e: impl std::fmt::Display) -> StrictError {
    StrictError::Tls(e.to_string())
}

/// The rustls configuration of `config`: its server certificate, client certificates
/// offered and verified against its CA.
fn server_config(config: &StrictConfig) -> Result<ServerConfig, StrictError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(config.ca.der().to_vec()))
        .map_err(tls_error)?;
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(tls_error)?;
    let chain = Certificate::all_from_pem(&config.server_cert_pem)
        .map_err(tls_error)?
        .iter()
        .map(|c| CertificateDer::from(c.der().to_vec()))
        .collect();
    let key = PrivateKeyDer::from_pem_slice(config.server_key_pem.as_bytes()).map_err(tls_error)?;
    let mut tls = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls_error)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(tls_error)?;
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tls)
}

/// Serves `sandbox` in strict mode over HTTPS on `listener` until `shutdown` resolves.
/// The banks' links use `https://` and the address the client reached.
pub async fn serve_strict(
    listener: TcpListener,
    config: StrictConfig,
    sandbox: Sandbox,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StrictError> {
    let acceptor = TlsAcceptor::from(Arc::new(server_config(&config)?));
    let app = crate::router(sandbox.into_strict(config));
    tokio::pin!(shutdown);
    loop {
        let (tcp, addr) = tokio::select! {
            () = &mut shutdown => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%addr, error = %e, "TLS handshake refused");
                    return;
                }
                Err(_) => return,
            };
            connection(tls, app).await;
        });
    }
}

async fn connection(tls: tokio_rustls::server::TlsStream<tokio::net::TcpStream>, app: Router) {
    let peer = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|der| Certificate::from_der(der).ok())
        .map(|cert| Peer {
            thumbprint: cert.thumbprint_s256(),
            cert: Arc::new(cert),
        });
    let service = hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
        if let Some(peer) = &peer {
            req.extensions_mut().insert(peer.clone());
        }
        app.clone().call(req)
    });
    // The timer makes hyper's 30 s limit on reading a request's headers apply.
    if let Err(e) = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .serve_connection(TokioIo::new(tls), service)
        .await
    {
        tracing::debug!(error = %e, "strict sandbox connection ended with an error");
    }
}
