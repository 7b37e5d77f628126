//! A stream of many small messages read by a client that falls behind: h2 (since 0.4.16) closes
//! the connection with `ENHANCE_YOUR_CALM` when too many small DATA frames sit unread. Our client
//! windows keep what can be in flight inside that allowance (see `client::STREAM_WINDOW`).
//!
//! The server here is raw h2, so that every message is its own DATA frame, as a log stream's
//! lines are when they trickle in.

use berth_proto::v1 as pb;
use bytes::{BufMut, Bytes, BytesMut};
use prost::Message;
use std::time::Duration;

const LINES: i64 = 30_000;

/// One gRPC length-prefixed message.
fn grpc_frame(line: &pb::LogLine) -> Bytes {
    let body = line.encode_to_vec();
    let mut frame = BytesMut::with_capacity(5 + body.len());
    frame.put_u8(0);
    frame.put_u32(u32::try_from(body.len()).expect("small"));
    frame.extend_from_slice(&body);
    frame.freeze()
}

async fn serve_small_frames(listener: tokio::net::TcpListener) {
    let Ok((socket, _)) = listener.accept().await else {
        return;
    };
    let Ok(mut conn) = h2::server::handshake(socket).await else {
        return;
    };
    // Accepting drives the connection; the one request is answered on its own task.
    while let Some(Ok((_request, mut respond))) = conn.accept().await {
        tokio::spawn(async move {
            let response = http::Response::builder()
                .header("content-type", "application/grpc")
                .body(())
                .expect("response");
            let Ok(mut send) = respond.send_response(response, false) else {
                return;
            };
            for i in 0..LINES {
                let line = pb::LogLine {
                    stream: pb::log_line::Stream::Stdout as i32,
                    timestamp_unix_ns: i,
                    line: b"x".to_vec(),
                };
                // Queued beyond the window, h2 sends each as its own frame as the window opens.
                if send.send_data(grpc_frame(&line), false).is_err() {
                    return;
                }
            }
            let mut trailers = http::HeaderMap::new();
            trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
            let _ = send.send_trailers(trailers);
        });
    }
}

#[tokio::test]
async fn a_slow_reader_of_many_small_messages_keeps_its_connection() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(serve_small_frames(listener));

    let mut client = berth_shared::client::connect(&addr.to_string(), None)
        .await
        .expect("connect");
    let mut stream = client
        .logs(pb::LogsRequest {
            container: "c".into(),
            ..Default::default()
        })
        .await
        .expect("stream opens")
        .into_inner();
    // The reader is busy elsewhere while the server fills the window with tiny frames.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut next = 0;
    while let Some(line) = stream
        .message()
        .await
        .unwrap_or_else(|s| panic!("after {next} lines: {s}"))
    {
        assert_eq!(line.timestamp_unix_ns, next, "in order, none lost");
        next += 1;
        if next % 5_000 == 0 {
            // And falls behind again now and then.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert_eq!(next, LINES);
}
