//! The HTTP listener (shard 0): `/health` answers once the shard recovered its partitions and
//! listens. Metrics are served here once they land.
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};

use crate::runtime::ShardRef;

const HTTP_REQUEST_BYTES_MAX: usize = 8 << 10;

pub fn listen(shard: ShardRef) -> Result<glommio::Task<()>, String> {
    let address = shard.config.http_listen;
    let listener =
        TcpListener::bind(address).map_err(|error| format!("cannot listen for HTTP on {address}: {error}"))?;
    tracing::info!(%address, "HTTP listener ready");
    Ok(glommio::spawn_local(async move {
        loop {
            match listener.accept().await {
                Ok(stream) => {
                    glommio::spawn_local(async move {
                        if let Err(error) = serve(stream).await {
                            tracing::debug!(%error, "HTTP connection closed");
                        }
                    })
                    .detach();
                }
                Err(error) => {
                    tracing::warn!(%error, "HTTP accept failed");
                    glommio::timer::sleep(std::time::Duration::from_millis(10)).await;
                }
            }
        }
    }))
}

async fn serve(mut stream: TcpStream) -> std::io::Result<()> {
    let mut request = Vec::new();
    let mut chunk = [0u8; 1024];
    while !request.windows(4).any(|window| window == b"\r\n\r\n") {
        let read = stream.read(&mut chunk).await?;
        if read == 0 || request.len() + read > HTTP_REQUEST_BYTES_MAX {
            return Ok(());
        }
        request.extend_from_slice(&chunk[..read]);
    }
    let line = request.split(|byte| *byte == b'\n').next().unwrap_or_default();
    let path = line.split(|byte| *byte == b' ').nth(1).unwrap_or_default();
    let (status, body) = match path {
        b"/health" => ("200 OK", "ok\n"),
        _ => ("404 Not Found", "not found\n"),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.close().await
}
