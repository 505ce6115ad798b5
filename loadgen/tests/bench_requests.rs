//! What `loadgen bench` sends, checked where it arrives: a body from a file, basic
//! authentication and headers; a scenario stream's mix of requests by weight; and
//! an open loop whose rate follows stages.

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri};
use axum::routing::any;
use axum::Router;
use support::processes::{bench_report as report, loadgen_ok as loadgen, temp_dir};
use support::serve_in_background;

/// What a recording server saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

/// A server on 127.0.0.1 that answers 200 and keeps every request it saw.
struct RecordingServer {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    _thread: std::thread::JoinHandle<()>,
}

impl RecordingServer {
    fn start() -> RecordingServer {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&seen);
        let (addr, thread) = serve_in_background(move |listener| async move {
            let app = Router::new().fallback(any(
                move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                    let kept = Arc::clone(&kept);
                    async move {
                        kept.lock().unwrap().push(Seen {
                            method,
                            path: uri.to_string(),
                            headers,
                            body,
                        });
                        "ok"
                    }
                },
            ));
            axum::serve(listener, app).await.unwrap();
        });
        RecordingServer {
            addr,
            seen,
            _thread: thread,
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

#[test]
fn a_body_file_basic_auth_and_headers_arrive_as_given() {
    let server = RecordingServer::start();
    let dir = temp_dir("bench-body-file");
    let body_path = dir.join("body.bin");
    // Bytes that are not text: a body file is sent as is.
    let body: Vec<u8> = (0..=255u8).chain(*b"\r\n\r\nGET / HTTP/1.1\r\n").collect();
    std::fs::write(&body_path, &body).unwrap();
    let json = dir.join("r.json");
    loadgen(&[
        "bench",
        "--url",
        &format!("http://{}/upload?x=1", server.addr),
        "-m",
        "PUT",
        "--body-file",
        body_path.to_str().unwrap(),
        "--auth",
        "Aladdin:open sesame",
        "-H",
        "X-Trace: abc",
        "--rate",
        "50",
        "-d",
        "1s",
        "-w",
        "0s",
        "--json",
        json.to_str().unwrap(),
    ]);
    let seen = server.seen();
    let r = report(&json);
    assert_eq!(r.streams[0].counts.status_2xx, 50, "50/s for 1 s answered");
    assert_eq!(seen.len(), 50, "no request more or less reached the server");
    for s in &seen {
        assert_eq!(s.method, Method::PUT);
        assert_eq!(s.path, "/upload?x=1");
        assert_eq!(&s.body[..], &body[..], "the body file's bytes, unchanged");
        assert_eq!(
            s.headers["authorization"],
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        assert_eq!(s.headers["x-trace"], "abc");
        assert_eq!(s.headers["content-length"], body.len().to_string());
    }
}

#[test]
fn a_scenario_stream_sends_its_mix_by_weight_under_one_name() {
    let server = RecordingServer::start();
    let dir = temp_dir("bench-mix");
    std::fs::write(dir.join("order.json"), br#"{"item": 7}"#).unwrap();
    let scenario = dir.join("mix.toml");
    std::fs::write(
        &scenario,
        format!(
            r#"
            base_url = "http://{}/api"
            duration = "1s"
            warmup = "0s"
            [[stream]]
            name = "shop"
            rate = 200
            headers = {{ "x-client" = "test" }}
            [[stream.request]]
            path = "/items"
            weight = 3
            [[stream.request]]
            method = "POST"
            path = "/orders"
            body_file = "order.json"
            headers = {{ "content-type" = "application/json" }}
            "#,
            server.addr
        ),
    )
    .unwrap();
    let json = dir.join("r.json");
    loadgen(&[
        "bench",
        "--scenario",
        scenario.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    let r = report(&json);
    assert_eq!(r.streams.len(), 1, "one stream, whatever it requests");
    assert_eq!(r.streams[0].name, "shop");
    assert_eq!(r.streams[0].counts.status_2xx, 200);
    let seen = server.seen();
    let mut by_path: HashMap<&str, Vec<&Seen>> = HashMap::new();
    for s in &seen {
        assert_eq!(
            s.headers["x-client"], "test",
            "the stream's headers go with each"
        );
        by_path.entry(s.path.as_str()).or_default().push(s);
    }
    // 200 turns of a rotation of 3 + 1: exactly 150 and 50.
    assert_eq!(by_path["/api/items"].len(), 150);
    let orders = &by_path["/api/orders"];
    assert_eq!(orders.len(), 50);
    for o in orders {
        assert_eq!(o.method, Method::POST);
        assert_eq!(&o.body[..], br#"{"item": 7}"#);
        assert_eq!(o.headers["content-type"], "application/json");
    }
    assert!(by_path["/api/items"].iter().all(|s| s.body.is_empty()));
}

#[test]
fn a_staged_open_loop_follows_its_ramp_interval_by_interval() {
    let server = RecordingServer::start();
    let dir = temp_dir("bench-stages");
    let json = dir.join("r.json");
    // From 400/s, ramp to 2,000/s over 3 s, hold 1 s: 3,600 + 2,000 requests.
    loadgen(&[
        "bench",
        "--url",
        &format!("http://{}/", server.addr),
        "--rate",
        "400",
        "--stages",
        "3s:2000,1s:2000",
        "-c",
        "32",
        "--json",
        json.to_str().unwrap(),
    ]);
    let r = report(&json);
    let s = &r.streams[0];
    assert_eq!(s.start_rate, Some(400.0));
    assert_eq!(s.stages.len(), 2);
    assert_eq!(
        s.counts.sent + s.unsent,
        5_600,
        "every request the integrated rate made due was sent or counted unsent"
    );
    assert_eq!(server.seen().len() as u64, s.counts.sent);
    let target = s.target_rate.unwrap();
    assert!((target - 1_400.0).abs() < 1.0, "mean target {target}");
    // Whole intervals of the measured window: achieved within 2 % of the target,
    // and the target climbing through the ramp.
    let whole: Vec<_> = s
        .intervals
        .iter()
        .filter(|i| i.length_s > 0.9 && i.start_s + i.length_s <= s.measured_s + 0.01)
        .collect();
    assert!(whole.len() >= 3, "{} whole intervals", whole.len());
    for i in &whole {
        let target = i.target_rate.expect("an open loop's interval has a target");
        let off = (i.sent_rate - target).abs() / target;
        eprintln!(
            "interval at {:.2}s: target {target:.0}/s, achieved {:.0}/s",
            i.start_s, i.sent_rate
        );
        assert!(
            off <= 0.02,
            "at {:.2}s: achieved {:.0}/s against {target:.0}/s",
            i.start_s,
            i.sent_rate
        );
    }
    let first = whole[0].target_rate.unwrap();
    let third = whole[2].target_rate.unwrap();
    // The ramp's first second averages 667/s, its third 1,733/s.
    assert!(
        (first - 667.0).abs() < 15.0,
        "first second's target {first}"
    );
    assert!(
        (third - 1_733.0).abs() < 15.0,
        "third second's target {third}"
    );
}
