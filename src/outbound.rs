//! What every outgoing POST (back-channel logout tokens, webhooks) shares.

use std::time::Duration;

/// The most of an answer's body read before the connection is let go.
const MAX_ANSWER_BYTES: usize = 4096;

/// Reads (and drops) a little of an answer's body, at most a second, so that the
/// connection can be reused; the body itself is never used.
pub async fn drain(mut answer: reqwest::Response) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let mut read = 0;
        while let Ok(Some(chunk)) = answer.chunk().await {
            read += chunk.len();
            if read > MAX_ANSWER_BYTES {
                break;
            }
        }
    })
    .await;
}
