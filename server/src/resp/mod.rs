//! The Redis (RESP) front door. Until the Streams commands land it answers PING (so health
//! checks and `redis-cli ping` work) and refuses everything else with a clear error.
use bytes::BytesMut;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use redis_protocol::resp2::decode::decode_bytes_mut;
use redis_protocol::resp2::types::BytesFrame;

use crate::runtime::ShardRef;

/// Largest request (one command with its arguments) a RESP connection may buffer.
const RESP_REQUEST_BYTES_MAX: usize = 512 << 20;
const READ_CHUNK_BYTES: usize = 16 << 10;

pub fn listen(shard: ShardRef) -> Result<glommio::Task<()>, String> {
    let address = shard.config.resp_listen;
    let listener =
        TcpListener::bind(address).map_err(|error| format!("cannot listen for RESP on {address}: {error}"))?;
    if shard.id == 0 {
        tracing::info!(%address, "RESP listener ready");
    }
    Ok(glommio::spawn_local(async move {
        loop {
            match listener.accept().await {
                Ok(stream) => {
                    glommio::spawn_local(async move {
                        if let Err(error) = serve_connection(stream).await {
                            tracing::debug!(%error, "RESP connection closed");
                        }
                    })
                    .detach();
                }
                Err(error) => {
                    tracing::warn!(%error, "RESP accept failed");
                    glommio::timer::sleep(std::time::Duration::from_millis(10)).await;
                }
            }
        }
    }))
}

async fn serve_connection(mut stream: TcpStream) -> std::io::Result<()> {
    let mut buffer = BytesMut::with_capacity(READ_CHUNK_BYTES);
    let mut chunk = vec![0u8; READ_CHUNK_BYTES];
    loop {
        loop {
            let decoded = decode_bytes_mut(&mut buffer)
                .map_err(|error| std::io::Error::new(std::io::ErrorKind::InvalidData, error.to_string()))?;
            let Some((frame, _, _)) = decoded else { break };
            stream.write_all(&reply(&frame)).await?;
        }
        if buffer.len() > RESP_REQUEST_BYTES_MAX {
            stream.write_all(b"-ERR Protocol error: request too large\r\n").await?;
            return Ok(());
        }
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            return Ok(());
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
}

fn reply(frame: &BytesFrame) -> Vec<u8> {
    let BytesFrame::Array(parts) = frame else {
        return b"-ERR Protocol error: expected an array of bulk strings\r\n".to_vec();
    };
    let words: Vec<&[u8]> = parts
        .iter()
        .filter_map(|part| match part {
            BytesFrame::BulkString(bytes) | BytesFrame::SimpleString(bytes) => Some(&bytes[..]),
            _ => None,
        })
        .collect();
    match words.split_first() {
        Some((command, args)) if command.eq_ignore_ascii_case(b"PING") => match args {
            [] => b"+PONG\r\n".to_vec(),
            [message] => {
                let mut out = format!("${}\r\n", message.len()).into_bytes();
                out.extend_from_slice(message);
                out.extend_from_slice(b"\r\n");
                out
            }
            _ => b"-ERR wrong number of arguments for 'ping' command\r\n".to_vec(),
        },
        Some((command, _)) => {
            let name = String::from_utf8_lossy(command).replace(['\r', '\n'], " ");
            format!("-ERR unknown command '{name}'\r\n").into_bytes()
        }
        None => b"-ERR Protocol error: empty command\r\n".to_vec(),
    }
}
