//! Serving the sync protocol: requests are answered from storage on the
//! blocking pool, in order (status, headers after a locator, blocks by
//! hash, within the response bounds).

use super::*;

/// Answers sync requests from storage on the blocking pool, in order.
pub(super) async fn serve(
    chain: Arc<Chain>,
    mut requests: mpsc::Receiver<(PeerId, ResponseChannel<SyncResponse>, SyncRequest)>,
    responses: mpsc::Sender<(ResponseChannel<SyncResponse>, SyncResponse)>,
) {
    while let Some((peer, channel, request)) = requests.recv().await {
        let chain = chain.clone();
        let response = tokio::task::spawn_blocking(move || answer(&chain, request))
            .await
            .unwrap_or_else(|e| SyncResponse::Refused(format!("internal error: {e}")));
        tracing::trace!(target: "cachecash::network", %peer, "served a sync request");
        if responses.send((channel, response)).await.is_err() {
            break;
        }
    }
}

/// Our status.
pub(super) fn status(chain: &Chain) -> Status {
    let head = chain.head();
    Status {
        genesis: chain.genesis_hash(),
        best_number: head.header.number,
        best_hash: head.hash,
        total_work: head.total_work.to_big_endian(),
    }
}

/// The answer to one sync request.
pub(super) fn answer(chain: &Chain, request: SyncRequest) -> SyncResponse {
    let result: Result<SyncResponse, crate::storage::StoreError> = (|| {
        Ok(match request {
            SyncRequest::Status(_) => SyncResponse::Status(status(chain)),
            SyncRequest::Headers { locator, max } => {
                let mut start = None;
                for h in &locator {
                    if let Some(header) = chain.header(h)?
                        && chain.canonical_hash(header.number)? == Some(*h)
                    {
                        start = Some(header.number);
                        break;
                    }
                }
                let mut headers = Vec::new();
                if let Some(n) = start {
                    let max = u64::from(max.min(MAX_HEADERS));
                    let end = chain.head().header.number.min(n.saturating_add(max));
                    let mut prev = chain.canonical_hash(n)?;
                    for number in n.saturating_add(1)..=end {
                        // Stop where a concurrent reorganisation broke the
                        // sequence: the client gets a linked prefix.
                        match chain.header_by_number(number)? {
                            Some(h) if Some(h.parent_hash) == prev => {
                                prev = Some(h.hash());
                                headers.push(h);
                            }
                            _ => break,
                        }
                    }
                }
                SyncResponse::Headers(headers)
            }
            SyncRequest::Blocks { hashes } => {
                let mut blocks = Vec::new();
                let mut bytes = 0usize;
                for h in hashes.iter().take(MAX_BLOCKS as usize) {
                    let Some(block) = chain.block(h)? else {
                        break;
                    };
                    let encoded = block.encode();
                    bytes = bytes.saturating_add(encoded.len());
                    if !blocks.is_empty() && bytes > SOFT_RESPONSE_BYTES {
                        break;
                    }
                    blocks.push(encoded);
                }
                SyncResponse::Blocks(blocks)
            }
            SyncRequest::HeadersByRange { start, count } => {
                let count = u64::from(count.min(MAX_HEADERS));
                let mut headers = Vec::new();
                let mut prev: Option<Hash> = None;
                for number in start..start.saturating_add(count) {
                    match chain.header_by_number(number)? {
                        // Stop where a concurrent reorganisation broke the
                        // sequence.
                        Some(h) if prev.is_none_or(|p| p == h.parent_hash) => {
                            prev = Some(h.hash());
                            headers.push(h);
                        }
                        _ => break,
                    }
                }
                SyncResponse::Headers(headers)
            }
            SyncRequest::BlocksByRange { start, count } => {
                let count = u64::from(count.min(MAX_BLOCKS));
                let mut hashes = Vec::new();
                for number in start..start.saturating_add(count) {
                    match chain.canonical_hash(number)? {
                        Some(h) => hashes.push(h),
                        None => break,
                    }
                }
                return Ok(answer(chain, SyncRequest::Blocks { hashes }));
            }
            SyncRequest::HeadersByHash { hashes } => {
                let mut headers = Vec::new();
                for h in hashes.iter().take(MAX_BLOCKS as usize) {
                    match chain.header(h)? {
                        Some(header) => headers.push(header),
                        None => break,
                    }
                }
                SyncResponse::Headers(headers)
            }
        })
    })();
    result.unwrap_or_else(|e| SyncResponse::Refused(format!("storage error: {e}")))
}

/// Block locator from our canonical chain.
pub(super) fn locator_of(chain: &Chain) -> Vec<Hash> {
    let head = chain.head().header.number;
    protocol::locator_heights(head)
        .into_iter()
        .filter_map(|n| chain.canonical_hash(n).ok().flatten())
        .collect()
}
