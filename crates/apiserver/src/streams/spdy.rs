//! SPDY/3.1 as kubectl's streaming client uses it (RFC-less; the SPDY/3 draft): the client opens
//! one stream per standard stream (`streamtype` header: error, stdin, stdout, stderr, resize),
//! the server replies to each, then carries data both ways; the session ends with the Status on
//! the error stream (`v4.channel.k8s.io`). Header blocks are zlib-compressed with the SPDY/3
//! dictionary, one context per direction for the whole connection.
//!
//! No maintained Rust crate implements SPDY (it was superseded by HTTP/2), so the small part
//! kubectl needs — SYN_STREAM, SYN_REPLY, DATA, PING, RST_STREAM, GOAWAY — is written here.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use bytes::Bytes;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::{Input, Session, Streams, final_status, parse_resize};

const VERSION: u16 = 3;
const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const FLAG_FIN: u8 = 0x01;
const MAX_DATA: usize = 32 * 1024;

/// The SPDY/3 header compression dictionary (draft 3, section 2.6.10.1): length-prefixed
/// header names and values, then a run of common values.
static DICTIONARY: LazyLock<Vec<u8>> = LazyLock::new(|| {
    const WORDS: &[&str] = &[
        "options",
        "head",
        "post",
        "put",
        "delete",
        "trace",
        "accept",
        "accept-charset",
        "accept-encoding",
        "accept-language",
        "accept-ranges",
        "age",
        "allow",
        "authorization",
        "cache-control",
        "connection",
        "content-base",
        "content-encoding",
        "content-language",
        "content-length",
        "content-location",
        "content-md5",
        "content-range",
        "content-type",
        "date",
        "etag",
        "expect",
        "expires",
        "from",
        "host",
        "if-match",
        "if-modified-since",
        "if-none-match",
        "if-range",
        "if-unmodified-since",
        "last-modified",
        "location",
        "max-forwards",
        "pragma",
        "proxy-authenticate",
        "proxy-authorization",
        "range",
        "referer",
        "retry-after",
        "server",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "vary",
        "via",
        "warning",
        "www-authenticate",
        "method",
        "get",
        "status",
        "200 OK",
        "version",
        "HTTP/1.1",
        "url",
        "public",
        "set-cookie",
        "keep-alive",
        "origin",
    ];
    const TAIL: &str = concat!(
        "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505",
        "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized",
        "403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service Unavailable",
        "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT",
        "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,",
        "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
    );
    let mut out = Vec::with_capacity(1423);
    for word in WORDS {
        out.extend_from_slice(&(word.len() as u32).to_be_bytes());
        out.extend_from_slice(word.as_bytes());
    }
    out.extend_from_slice(TAIL.as_bytes());
    out
});

#[derive(Debug)]
enum Frame {
    Control { kind: u16, flags: u8, payload: Vec<u8> },
    Data { stream: u32, flags: u8, payload: Vec<u8> },
}

async fn read_frame(r: &mut (impl AsyncReadExt + Unpin)) -> std::io::Result<Frame> {
    let mut head = [0u8; 8];
    r.read_exact(&mut head).await?;
    let flags = head[4];
    let length = u32::from_be_bytes([0, head[5], head[6], head[7]]) as usize;
    let mut payload = vec![0u8; length];
    r.read_exact(&mut payload).await?;
    if head[0] & 0x80 != 0 {
        let kind = u16::from_be_bytes([head[2], head[3]]);
        Ok(Frame::Control { kind, flags, payload })
    } else {
        let stream = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) & 0x7fff_ffff;
        Ok(Frame::Data { stream, flags, payload })
    }
}

fn control(kind: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 8);
    out.extend_from_slice(&(0x8000 | VERSION).to_be_bytes());
    out.extend_from_slice(&kind.to_be_bytes());
    out.push(flags);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    out.extend_from_slice(payload);
    out
}

fn data(stream: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 8);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.push(flags);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    out.extend_from_slice(payload);
    out
}

/// Header-block compression state of one direction.
struct Headers {
    inflate: Decompress,
    deflate: Compress,
}

impl Headers {
    fn new() -> Headers {
        let mut deflate = Compress::new(Compression::default(), true);
        // Setting the dictionary on a fresh compressor cannot fail.
        let _ = deflate.set_dictionary(&DICTIONARY);
        Headers { inflate: Decompress::new(true), deflate }
    }

    fn decode(&mut self, block: &[u8]) -> Option<BTreeMap<String, String>> {
        let mut out: Vec<u8> = Vec::with_capacity(block.len() * 4 + 256);
        let mut used = 0usize;
        for _ in 0..64 {
            if out.capacity() - out.len() < 256 {
                out.reserve(4096);
            }
            let before = self.inflate.total_in();
            match self.inflate.decompress_vec(&block[used..], &mut out, FlushDecompress::Sync) {
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.inflate.set_dictionary(&DICTIONARY).ok()?;
                }
                Err(_) => return None,
            }
            used += (self.inflate.total_in() - before) as usize;
            if used >= block.len() && out.capacity() > out.len() {
                break;
            }
        }
        parse_block(&out)
    }

    fn encode(&mut self, headers: &[(&str, &str)]) -> Vec<u8> {
        let mut raw = (headers.len() as u32).to_be_bytes().to_vec();
        for (k, v) in headers {
            raw.extend_from_slice(&(k.len() as u32).to_be_bytes());
            raw.extend_from_slice(k.as_bytes());
            raw.extend_from_slice(&(v.len() as u32).to_be_bytes());
            raw.extend_from_slice(v.as_bytes());
        }
        let mut out = Vec::with_capacity(raw.len() + 64);
        let _ = self.deflate.compress_vec(&raw, &mut out, FlushCompress::Sync);
        out
    }
}

fn parse_block(raw: &[u8]) -> Option<BTreeMap<String, String>> {
    let mut at = 0usize;
    let next_u32 = |at: &mut usize| -> Option<usize> {
        let b = raw.get(*at..*at + 4)?;
        *at += 4;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let count = next_u32(&mut at)?;
    let mut out = BTreeMap::new();
    for _ in 0..count {
        let n = next_u32(&mut at)?;
        let name = String::from_utf8_lossy(raw.get(at..at + n)?).to_ascii_lowercase();
        at += n;
        let n = next_u32(&mut at)?;
        let value = String::from_utf8_lossy(raw.get(at..at + n)?).to_string();
        at += n;
        out.insert(name, value);
    }
    Some(out)
}

pub(super) async fn run(io: Upgraded, mut session: Session, attach: bool, wanted: Streams) {
    let io = TokioIo::new(io);
    let (mut reader, mut writer) = tokio::io::split(io);
    let (frames_tx, mut frames) = mpsc::channel::<Frame>(64);
    let read_task = tokio::spawn(async move {
        while let Ok(frame) = read_frame(&mut reader).await {
            if frames_tx.send(frame).await.is_err() {
                return;
            }
        }
    });
    let mut headers = Headers::new();
    // streamtype → stream id, as the client opens them.
    let mut ids: BTreeMap<String, u32> = BTreeMap::new();
    let mut pending: Vec<(u8, Bytes)> = Vec::new();
    let mut output_open = true;
    let ready = |ids: &BTreeMap<String, u32>| {
        ids.contains_key("error")
            && (!wanted.stdout || ids.contains_key("stdout"))
            && (!wanted.stderr || ids.contains_key("stderr"))
            && (!wanted.stdin || ids.contains_key("stdin"))
    };
    loop {
        tokio::select! {
            frame = frames.recv() => {
                let Some(frame) = frame else {
                    let _ = session.input.send(Input::CloseStdin);
                    break;
                };
                match frame {
                    Frame::Control { kind: SYN_STREAM, payload, .. } if payload.len() >= 10 => {
                        let id = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]) & 0x7fff_ffff;
                        let h = headers.decode(&payload[10..]).unwrap_or_default();
                        let kind = h.get("streamtype").cloned().unwrap_or_default();
                        ids.insert(kind, id);
                        let mut reply = id.to_be_bytes().to_vec();
                        reply.extend_from_slice(&headers.encode(&[]));
                        if writer.write_all(&control(SYN_REPLY, 0, &reply)).await.is_err() {
                            break;
                        }
                        if ready(&ids) && !pending.is_empty() {
                            for (channel, bytes) in std::mem::take(&mut pending) {
                                if send_output(&mut writer, &ids, channel, &bytes).await.is_err() {
                                    break;
                                }
                            }
                        }
                    }
                    Frame::Control { kind: PING, flags, payload } => {
                        if writer.write_all(&control(PING, flags, &payload)).await.is_err() {
                            break;
                        }
                    }
                    Frame::Control { kind: GOAWAY, .. } => {
                        let _ = session.input.send(Input::CloseStdin);
                        break;
                    }
                    Frame::Control { kind: RST_STREAM, .. } | Frame::Control { .. } => {}
                    Frame::Data { stream, flags, payload } => {
                        if Some(&stream) == ids.get("stdin") {
                            if !payload.is_empty() {
                                let _ = session.input.send(Input::Stdin(Bytes::from(payload)));
                            }
                            if flags & FLAG_FIN != 0 {
                                let _ = session.input.send(Input::CloseStdin);
                            }
                        } else if Some(&stream) == ids.get("resize") {
                            for line in payload.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                                if let Some(resize) = parse_resize(line) {
                                    let _ = session.input.send(resize);
                                }
                            }
                        }
                    }
                }
            }
            out = session.output.recv(), if output_open => match out {
                Some((channel, bytes)) => {
                    if ready(&ids) {
                        if send_output(&mut writer, &ids, channel, &bytes).await.is_err() {
                            break;
                        }
                    } else {
                        pending.push((channel, bytes));
                    }
                }
                None => output_open = false,
            },
            exit = &mut session.exit, if !output_open && ready(&ids) => {
                let exit = exit.unwrap_or_else(|_| Err("the session ended without an exit status".into()));
                for (channel, bytes) in std::mem::take(&mut pending) {
                    let _ = send_output(&mut writer, &ids, channel, &bytes).await;
                }
                for kind in ["stdout", "stderr"] {
                    if let Some(id) = ids.get(kind) {
                        let _ = writer.write_all(&data(*id, FLAG_FIN, &[])).await;
                    }
                }
                if let Some(id) = ids.get("error") {
                    let _ = writer.write_all(&data(*id, FLAG_FIN, &final_status(exit, attach))).await;
                }
                let _ = writer.flush().await;
                // The client resets its streams and goes away; do not wait for it forever.
                let _ = tokio::time::timeout(std::time::Duration::from_secs(5), async {
                    while let Some(frame) = frames.recv().await {
                        if matches!(frame, Frame::Control { kind: GOAWAY, .. }) {
                            break;
                        }
                    }
                })
                .await;
                break;
            }
        }
    }
    read_task.abort();
    let _ = writer.shutdown().await;
}

/// `pods/{name}/portforward` over SPDY (`portforward.k8s.io`): for each local connection the
/// client opens an error stream and a data stream carrying `port` and `requestid` headers; the
/// server dials the port inside the pod (`dial`) and carries bytes both ways, a half-close in
/// either direction passed on as FIN, and a dial failure written on the error stream.
pub(super) async fn run_port_forward<D, Io>(io: Io, dial: D)
where
    D: Fn(u16) -> futures::future::BoxFuture<'static, Result<tokio::net::TcpStream, String>> + Send + 'static,
    Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    let (mut reader, mut writer) = tokio::io::split(io);
    let (out, mut outgoing) = mpsc::unbounded_channel::<Vec<u8>>();
    let write_task = tokio::spawn(async move {
        while let Some(frame) = outgoing.recv().await {
            if writer.write_all(&frame).await.is_err() {
                break;
            }
        }
        let _ = writer.shutdown().await;
    });
    let mut headers = Headers::new();
    // requestid → error stream id; data stream id → the bytes for its connection (None: FIN).
    let mut errors: BTreeMap<String, u32> = BTreeMap::new();
    let mut inputs: BTreeMap<u32, mpsc::UnboundedSender<Option<Vec<u8>>>> = BTreeMap::new();
    let mut connections: Vec<tokio::task::JoinHandle<()>> = Vec::new();
    while let Ok(frame) = read_frame(&mut reader).await {
        match frame {
            Frame::Control { kind: SYN_STREAM, payload, .. } if payload.len() >= 10 => {
                let id = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]) & 0x7fff_ffff;
                let h = headers.decode(&payload[10..]).unwrap_or_default();
                let mut reply = id.to_be_bytes().to_vec();
                reply.extend_from_slice(&headers.encode(&[]));
                let _ = out.send(control(SYN_REPLY, 0, &reply));
                let request = h.get("requestid").cloned().unwrap_or_default();
                match h.get("streamtype").map(String::as_str) {
                    Some("error") => {
                        errors.insert(request, id);
                    }
                    Some("data") => {
                        let error = errors.get(&request).copied();
                        let (tx, rx) = mpsc::unbounded_channel();
                        inputs.insert(id, tx);
                        let port = h.get("port").and_then(|p| p.parse::<u16>().ok()).filter(|p| *p > 0);
                        let connecting = port.map(&dial);
                        connections.retain(|c| !c.is_finished());
                        connections.push(tokio::spawn(forward_one(connecting, port, id, error, rx, out.clone())));
                    }
                    _ => {}
                }
            }
            Frame::Control { kind: PING, flags, payload } => {
                let _ = out.send(control(PING, flags, &payload));
            }
            Frame::Control { kind: GOAWAY, .. } => break,
            Frame::Control { kind: RST_STREAM, payload, .. } if payload.len() >= 4 => {
                let id = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]) & 0x7fff_ffff;
                inputs.remove(&id);
            }
            Frame::Control { .. } => {}
            Frame::Data { stream, flags, payload } => {
                if let Some(tx) = inputs.get(&stream) {
                    if !payload.is_empty() {
                        let _ = tx.send(Some(payload));
                    }
                    if flags & FLAG_FIN != 0 {
                        let _ = tx.send(None);
                    }
                }
            }
        }
    }
    // The client is gone: so are its connections into the pod.
    drop(inputs);
    for connection in connections {
        connection.abort();
    }
    drop(out);
    let _ = write_task.await;
}

/// One forwarded connection: dial, then copy both ways until both sides have closed.
async fn forward_one(
    connecting: Option<futures::future::BoxFuture<'static, Result<tokio::net::TcpStream, String>>>,
    port: Option<u16>,
    data_id: u32,
    error_id: Option<u32>,
    mut input: mpsc::UnboundedReceiver<Option<Vec<u8>>>,
    out: mpsc::UnboundedSender<Vec<u8>>,
) {
    let fail = |message: String| {
        if let Some(e) = error_id {
            let _ = out.send(data(e, FLAG_FIN, message.as_bytes()));
        }
        let _ = out.send(data(data_id, FLAG_FIN, &[]));
    };
    let Some(connecting) = connecting else {
        fail("invalid port: a port forward names a port between 1 and 65535".into());
        return;
    };
    let connection = match connecting.await {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(error = %e, "port-forward dial");
            let port = port.unwrap_or_default();
            fail(format!("error forwarding port {port} to pod: {e}"));
            return;
        }
    };
    let (mut from_pod, mut to_pod) = connection.into_split();
    let upstream = async {
        while let Some(Some(bytes)) = input.recv().await {
            if to_pod.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = to_pod.shutdown().await;
    };
    let downstream = async {
        let mut buf = vec![0u8; MAX_DATA];
        loop {
            match from_pod.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if out.send(data(data_id, 0, &buf[..n])).is_err() {
                        return;
                    }
                }
            }
        }
        let _ = out.send(data(data_id, FLAG_FIN, &[]));
    };
    // Done when the pod side has ended (as kubelet's forwarder returns once the copy from the
    // pod ends): the client's half-close, if it comes first, only stops the writing.
    tokio::pin!(upstream, downstream);
    tokio::select! {
        _ = &mut downstream => {}
        _ = &mut upstream => downstream.await,
    }
    if let Some(e) = error_id {
        let _ = out.send(data(e, FLAG_FIN, &[]));
    }
}

async fn send_output(
    writer: &mut (impl AsyncWriteExt + Unpin),
    ids: &BTreeMap<String, u32>,
    channel: u8,
    bytes: &[u8],
) -> std::io::Result<()> {
    let kind = if channel == 2 { "stderr" } else { "stdout" };
    let Some(id) = ids.get(kind).or_else(|| ids.get("stdout")) else { return Ok(()) };
    for chunk in bytes.chunks(MAX_DATA) {
        writer.write_all(&data(*id, 0, chunk)).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dictionary_is_spdy3s() {
        assert_eq!(DICTIONARY.len(), 1423);
        assert_eq!(&DICTIONARY[..11], b"\0\0\0\x07options");
    }

    #[test]
    fn header_blocks_round_trip_through_one_context_per_direction() {
        let mut client = Headers::new();
        let mut server = Headers::new();
        for kind in ["error", "stdout", "stdin"] {
            let block = client.encode(&[("streamtype", kind), ("port", "")]);
            let decoded = server.decode(&block).unwrap_or_default();
            assert_eq!(decoded.get("streamtype").map(String::as_str), Some(kind));
        }
    }

    #[test]
    fn frames_encode_and_parse() {
        let frame = data(5, FLAG_FIN, b"hello");
        let parsed = futures::executor::block_on(read_frame(&mut &frame[..]));
        match parsed {
            Ok(Frame::Data { stream, flags, payload }) => {
                assert_eq!((stream, flags, payload.as_slice()), (5, FLAG_FIN, &b"hello"[..]));
            }
            other => panic!("unexpected {other:?}"),
        }
        let ping = control(PING, 0, &7u32.to_be_bytes());
        match futures::executor::block_on(read_frame(&mut &ping[..])) {
            Ok(Frame::Control { kind, payload, .. }) => {
                assert_eq!((kind, payload), (PING, 7u32.to_be_bytes().to_vec()))
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
