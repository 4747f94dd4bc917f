//! `tls`: HTTPS with a self-signed certificate that the kubeconfig trusts.

use crate::common::{Kubectl, client, start_with, test_config};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams};

#[tokio::test]
async fn tls_serves_kube_client_and_kubectl() {
    let mut config = test_config();
    config.tls = true;
    let sim = start_with(config).await;
    assert!(sim.url().starts_with("https://127.0.0.1:"));
    assert!(
        sim.ca_pem()
            .is_some_and(|p| p.contains("BEGIN CERTIFICATE"))
    );
    assert!(
        sim.kubeconfig_yaml("x")
            .contains("certificate-authority-data:")
    );

    // A plaintext client on the TLS port gets nowhere, and hurts nobody.
    let _ = tokio::time::timeout(crate::common::WAIT, async {
        let mut s = tokio::net::TcpStream::connect(sim.addr())
            .await
            .expect("connects");
        tokio::io::AsyncWriteExt::write_all(&mut s, b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("writes");
        let mut buf = Vec::new();
        let _ = tokio::io::AsyncReadExt::read_to_end(&mut s, &mut buf).await;
    })
    .await;

    let c = client(&sim).await;
    let namespaces: Api<Namespace> = Api::all(c);
    let names: Vec<String> = namespaces
        .list(&ListParams::default())
        .await
        .expect("listed over TLS")
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    assert!(names.contains(&"kube-system".to_string()), "{names:?}");

    if let Some(k) = Kubectl::new(&sim) {
        let out = k.ok(&["get", "namespaces", "-o", "name"]).await;
        assert!(out.contains("namespace/default"), "{out}");
    }
    sim.shutdown().await;
}
