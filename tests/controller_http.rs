//! The HTTP endpoints on a loopback port: liveness, readiness gated on the
//! first lists, metrics text, and shutdown through the token.

use imagedrift::controller::runner::Readiness;
use imagedrift::metrics::Metrics;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).await.unwrap();
    let status = buf.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = buf
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn endpoints_answer_and_stop_on_cancel() {
    let prom = prometheus::Registry::new();
    let metrics = Metrics::register(&prom).unwrap();
    let ready = Readiness::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let token = CancellationToken::new();
    let server = tokio::spawn(imagedrift::http::serve(
        listener,
        imagedrift::http::router(metrics, ready.clone()),
        token.clone(),
    ));

    assert_eq!(get(addr, "/livez").await, (200, "ok".into()));
    let (status, body) = get(addr, "/readyz").await;
    assert_eq!(status, 503, "not ready before the first lists");
    assert!(body.contains("waiting for the first pod and node lists"));
    let (status, body) = get(addr, "/metrics").await;
    assert_eq!(status, 200);
    assert!(body.contains("imagedrift_build_info{version=\""), "{body}");
    assert!(
        body.contains("# TYPE imagedrift_check_duration_seconds histogram"),
        "{body}"
    );
    assert_eq!(get(addr, "/nope").await.0, 404);

    token.cancel();
    server.await.unwrap().unwrap();
    assert!(!ready.is_ready());
}
