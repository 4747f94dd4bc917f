//! `tls`: HTTPS with a self-signed certificate that the kubeconfig trusts.

use crate::common::{Kubectl, WAIT, client, start_with, test_config};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams};
use kubesim::KubeSim;

async fn start_tls() -> KubeSim {
    let mut config = test_config();
    config.tls = true;
    start_with(config).await
}

#[tokio::test]
async fn tls_serves_kube_client_and_refuses_plaintext() {
    let sim = start_tls().await;
    assert!(sim.url().starts_with("https://127.0.0.1:"));
    assert!(
        sim.ca_pem()
            .is_some_and(|p| p.contains("BEGIN CERTIFICATE"))
    );
    assert!(
        sim.kubeconfig_yaml("x")
            .contains("certificate-authority-data:")
    );

    // A plaintext client on the TLS port gets nowhere: no HTTP answer, at most a TLS alert
    // record (content type 21), and the connection is closed rather than left hanging.
    let answer = tokio::time::timeout(WAIT, async {
        let mut s = tokio::net::TcpStream::connect(sim.addr())
            .await
            .expect("connects");
        tokio::io::AsyncWriteExt::write_all(&mut s, b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("writes");
        let mut buf = Vec::new();
        // A reset instead of a clean close is also a refusal; what was read before it counts.
        let _ = tokio::io::AsyncReadExt::read_to_end(&mut s, &mut buf).await;
        buf
    })
    .await
    .expect("the server closes a plaintext connection instead of leaving it open");
    assert!(
        !answer.starts_with(b"HTTP/"),
        "plaintext got an HTTP answer: {}",
        String::from_utf8_lossy(&answer)
    );
    assert!(
        answer.is_empty() || answer[0] == 21,
        "plaintext got something other than a TLS alert: {answer:?}"
    );

    // ... and hurts nobody: a TLS client is served afterwards.
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
    sim.shutdown().await;
}

#[tokio::test]
#[cfg_attr(
    not(has_kubectl),
    ignore = "kubectl is not on PATH: run tools/install-kubectl.sh or tools/test.sh"
)]
async fn tls_serves_kubectl_with_the_kubeconfig_ca() {
    let sim = start_tls().await;
    let k = Kubectl::new(&sim);
    let out = k.ok(&["get", "namespaces", "-o", "name"]).await;
    assert!(out.contains("namespace/default"), "{out}");
    sim.shutdown().await;
}
