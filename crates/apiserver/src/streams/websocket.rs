//! The `v5.channel.k8s.io` WebSocket protocol: binary messages whose first byte is the channel
//! (0 stdin, 1 stdout, 2 stderr, 3 the final Status, 4 resize; 255 + channel closes a stream).
//! The session ends with the Status on channel 3 and a normal close, which is when kubectl exits.

use futures::{SinkExt, StreamExt};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::{Role, frame::coding::CloseCode};

use super::{Input, Session, final_status, parse_resize};

/// `Sec-WebSocket-Accept` for a client's key (RFC 6455).
pub(super) fn accept_key(key: &str) -> String {
    tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes())
}

pub(super) async fn run(io: Upgraded, mut session: Session, attach: bool) {
    let ws = WebSocketStream::from_raw_socket(TokioIo::new(io), Role::Server, None).await;
    let (mut sink, mut stream) = ws.split();
    let mut output_open = true;
    loop {
        tokio::select! {
            incoming = stream.next() => match incoming {
                Some(Ok(Message::Binary(data))) if !data.is_empty() => {
                    let payload = bytes::Bytes::copy_from_slice(&data[1..]);
                    let input = match data[0] {
                        0 => Some(Input::Stdin(payload)),
                        4 => parse_resize(&payload),
                        255 if payload.first() == Some(&0) => Some(Input::CloseStdin),
                        _ => None,
                    };
                    if let Some(input) = input {
                        let _ = session.input.send(input);
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    // The client went away: the session's process keeps its own fate.
                    let _ = session.input.send(Input::CloseStdin);
                    return;
                }
                Some(Ok(_)) => {}
            },
            out = session.output.recv(), if output_open => match out {
                Some((channel, data)) => {
                    let mut frame = Vec::with_capacity(data.len() + 1);
                    frame.push(channel);
                    frame.extend_from_slice(&data);
                    if sink.send(Message::Binary(frame.into())).await.is_err() {
                        return;
                    }
                }
                None => output_open = false,
            },
            exit = &mut session.exit, if !output_open => {
                let exit = exit.unwrap_or_else(|_| Err("the session ended without an exit status".into()));
                let mut frame = vec![3u8];
                frame.extend_from_slice(&final_status(exit, attach));
                let _ = sink.send(Message::Binary(frame.into())).await;
                let close = CloseFrame { code: CloseCode::Normal, reason: "".into() };
                let _ = sink.send(Message::Close(Some(close))).await;
                // Wait briefly for the client's close, then drop the connection.
                let _ = tokio::time::timeout(std::time::Duration::from_secs(5), async {
                    while let Some(Ok(m)) = stream.next().await {
                        if matches!(m, Message::Close(_)) {
                            break;
                        }
                    }
                })
                .await;
                return;
            }
        }
    }
}
