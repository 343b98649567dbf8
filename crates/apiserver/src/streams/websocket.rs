//! The WebSocket channel protocols: `v5.channel.k8s.io` (kubectl 1.30+) and `v4.channel.k8s.io`
//! (client-go before it, the official Python client): binary messages whose first byte is the
//! channel (0 stdin, 1 stdout, 2 stderr, 3 the final Status, 4 resize; v5 only: 255 + channel
//! closes a stream); and their base64 forms (`v4.base64.channel.k8s.io`,
//! `base64.channel.k8s.io`, for clients that can only send text): text messages whose first
//! character is the channel digit and the rest the data in base64. The session ends with the
//! Status on channel 3 and a normal close, which is when the client exits.

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

/// The channel subprotocols, in the order the server prefers them.
pub(super) const SUBPROTOCOLS: &[&str] =
    &["v5.channel.k8s.io", "v4.channel.k8s.io", "v4.base64.channel.k8s.io", "base64.channel.k8s.io"];

/// One channel message in the chosen framing.
fn message(base64: bool, channel: u8, data: &[u8]) -> Message {
    if base64 {
        let mut text = String::with_capacity(data.len() * 4 / 3 + 4);
        text.push(char::from(b'0' + channel));
        text.push_str(&base64::Engine::encode(&base64::engine::general_purpose::STANDARD, data));
        Message::Text(text.into())
    } else {
        let mut frame = Vec::with_capacity(data.len() + 1);
        frame.push(channel);
        frame.extend_from_slice(data);
        Message::Binary(frame.into())
    }
}

/// A client message as (channel, data), whichever framing it came in.
fn channel_data(m: &Message) -> Option<(u8, Vec<u8>)> {
    match m {
        Message::Binary(data) if !data.is_empty() => Some((data[0], data[1..].to_vec())),
        Message::Text(text) if !text.is_empty() => {
            let channel = text.as_bytes()[0].checked_sub(b'0')?;
            let data =
                base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &text.as_bytes()[1..]).ok()?;
            Some((channel, data))
        }
        _ => None,
    }
}

pub(super) async fn run(io: Upgraded, mut session: Session, attach: bool, protocol: &'static str) {
    let base64 = protocol.contains("base64");
    let v5 = protocol.starts_with("v5.");
    let ws = WebSocketStream::from_raw_socket(TokioIo::new(io), Role::Server, None).await;
    let (mut sink, mut stream) = ws.split();
    let mut output_open = true;
    loop {
        tokio::select! {
            incoming = stream.next() => match incoming {
                Some(Ok(m)) if channel_data(&m).is_some() => {
                    let Some((channel, data)) = channel_data(&m) else { continue };
                    let input = match channel {
                        0 => Some(Input::Stdin(bytes::Bytes::from(data))),
                        4 => parse_resize(&data),
                        255 if v5 && data.first() == Some(&0) => Some(Input::CloseStdin),
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
                    if sink.send(message(base64, channel, &data)).await.is_err() {
                        return;
                    }
                }
                None => output_open = false,
            },
            exit = &mut session.exit, if !output_open => {
                let exit = exit.unwrap_or_else(|_| Err("the session ended without an exit status".into()));
                let _ = sink.send(message(base64, 3, &final_status(exit, attach))).await;
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

/// A WebSocket carrying a byte stream in its binary messages (KEP-4006 tunnelling: kubectl
/// 1.31+ runs SPDY port-forwarding inside `SPDY/3.1+portforward.k8s.io`), as one end of an
/// in-memory pipe whose other end is returned.
pub(super) fn tunnel(io: Upgraded) -> tokio::io::DuplexStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move {
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(io), Role::Server, None).await;
        let (mut sink, mut stream) = ws.split();
        let (mut from_pipe, mut to_pipe) = tokio::io::split(ours);
        let inbound = async move {
            while let Some(Ok(m)) = stream.next().await {
                match m {
                    Message::Binary(data) if to_pipe.write_all(&data).await.is_err() => break,
                    Message::Close(_) => break,
                    _ => {}
                }
            }
            let _ = to_pipe.shutdown().await;
        };
        let outbound = async move {
            let mut buf = vec![0u8; 32 * 1024];
            while let Ok(n) = from_pipe.read(&mut buf).await {
                if n == 0 || sink.send(Message::Binary(buf[..n].to_vec().into())).await.is_err() {
                    break;
                }
            }
            let close = CloseFrame { code: CloseCode::Normal, reason: "".into() };
            let _ = sink.send(Message::Close(Some(close))).await;
        };
        tokio::pin!(inbound, outbound);
        // The session is over when the client closes its side; what the server still had to
        // say is flushed first if it is already ending.
        tokio::select! {
            _ = &mut inbound => {}
            _ = &mut outbound => {}
        }
    });
    theirs
}

/// Port-forwarding over the channel protocol: for the `i`-th requested port, channel `2i`
/// carries data and `2i+1` errors; the server opens each channel with the port number (two
/// bytes, little-endian), as kubelet's WebSocket port-forwarder does. One connection per port,
/// dialled at once, for the socket's life.
pub(super) async fn run_port_forward<D>(io: Upgraded, protocol: &'static str, ports: Vec<u16>, dial: D)
where
    D: Fn(u16) -> futures::future::BoxFuture<'static, Result<tokio::net::TcpStream, String>> + Send + 'static,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let base64 = protocol.contains("base64");
    let ws = WebSocketStream::from_raw_socket(TokioIo::new(io), Role::Server, None).await;
    let (mut sink, mut stream) = ws.split();
    let (out, mut outgoing) = tokio::sync::mpsc::unbounded_channel::<Message>();
    let mut writers = Vec::new();
    let mut tasks = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let (data, error) = ((2 * i) as u8, (2 * i + 1) as u8);
        let _ = out.send(message(base64, data, &port.to_le_bytes()));
        let _ = out.send(message(base64, error, &port.to_le_bytes()));
        match dial(*port).await {
            Ok(connection) => {
                let (mut from_pod, to_pod) = connection.into_split();
                writers.push(Some(to_pod));
                let out = out.clone();
                tasks.push(tokio::spawn(async move {
                    let mut buf = vec![0u8; 32 * 1024];
                    while let Ok(n) = from_pod.read(&mut buf).await {
                        if n == 0 || out.send(message(base64, data, &buf[..n])).is_err() {
                            break;
                        }
                    }
                }));
            }
            Err(e) => {
                writers.push(None);
                let _ =
                    out.send(message(base64, error, format!("error forwarding port {port} to pod: {e}").as_bytes()));
            }
        }
    }
    let writer_task = tokio::spawn(async move {
        while let Some(m) = outgoing.recv().await {
            if sink.send(m).await.is_err() {
                break;
            }
        }
        let close = CloseFrame { code: CloseCode::Normal, reason: "".into() };
        let _ = sink.send(Message::Close(Some(close))).await;
    });
    while let Some(Ok(m)) = stream.next().await {
        if matches!(m, Message::Close(_)) {
            break;
        }
        let Some((channel, data)) = channel_data(&m) else { continue };
        // Data channels are even; what comes on an error channel is ignored.
        let index = usize::from(channel / 2);
        if channel % 2 == 0
            && let Some(Some(writer)) = writers.get_mut(index)
            && writer.write_all(&data).await.is_err()
        {
            writers[index] = None;
        }
    }
    for task in tasks {
        task.abort();
    }
    drop(out);
    let _ = writer_task.await;
}
