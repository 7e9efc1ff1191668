//! Gossip: blocks and transactions validated by the importer before they
//! are forwarded, and the verdicts reported back to gossipsub.

use super::*;

impl Worker {
    pub(super) fn publish(
        &mut self,
        topic: &IdentTopic,
        data: Vec<u8>,
        label: &'static str,
    ) -> bool {
        let len = data.len() as u64;
        match self
            .swarm
            .behaviour_mut()
            .gossip
            .publish(topic.clone(), data)
        {
            Ok(_) => {
                self.metrics
                    .network_bytes
                    .get_or_create(&vec![("protocol", label), ("direction", "out")])
                    .inc_by(len);
                true
            }
            Err(gossipsub::PublishError::Duplicate) => true,
            Err(e) => {
                tracing::debug!(target: "cachecash::network", "not published on {label}: {e}");
                false
            }
        }
    }

    pub(super) fn on_gossip(
        &mut self,
        peer: PeerId,
        id: gossipsub::MessageId,
        message: gossipsub::Message,
    ) {
        let allowed = self.peers.get_mut(&peer).is_none_or(|p| p.gossip.take());
        let (label, is_block) = if message.topic == self.blocks_topic.hash() {
            ("gossip_blocks", true)
        } else if message.topic == self.txs_topic.hash() {
            ("gossip_transactions", false)
        } else {
            // Subscription filters keep other topics out; never forward them.
            self.report(&id, &peer, MessageAcceptance::Ignore, "other", "ignore");
            return;
        };
        self.metrics
            .network_bytes
            .get_or_create(&vec![("protocol", label), ("direction", "in")])
            .inc_by(message.data.len() as u64);
        if !allowed {
            // Dropped, not held against the peer: an honest relay forwards
            // the whole network's traffic, and gossipsub bounds its own
            // queues. Invalid messages are what gets a peer banned.
            self.report(&id, &peer, MessageAcceptance::Ignore, label, "rate_limited");
            return;
        }
        let job = if is_block {
            Job::Block {
                peer,
                id: id.clone(),
                bytes: message.data,
            }
        } else {
            Job::Transaction {
                peer,
                id: id.clone(),
                bytes: message.data,
            }
        };
        if self.jobs.try_send(job).is_err() {
            self.report(&id, &peer, MessageAcceptance::Ignore, label, "busy");
        }
    }

    pub(super) fn report(
        &mut self,
        id: &gossipsub::MessageId,
        peer: &PeerId,
        acceptance: MessageAcceptance,
        topic: &'static str,
        verdict: &'static str,
    ) {
        self.metrics
            .gossip_messages
            .get_or_create(&vec![("topic", topic), ("verdict", verdict)])
            .inc();
        self.swarm
            .behaviour_mut()
            .gossip
            .report_message_validation_result(id, peer, acceptance);
    }

    pub(super) fn on_report(&mut self, report: Report) {
        match report {
            Report::Sync { failure, .. } => {
                self.sync.job_finished();
                if failure.is_none()
                    && let Some(p) = self.sync.round_peer
                {
                    // Its headers led to imported blocks.
                    self.progressed(p);
                }
                if let Some(f) = failure {
                    if f.invalid {
                        self.ban(f.peer, "invalid block", &f.message);
                    } else {
                        // Not the peer's fault (a fork too deep to adopt, a
                        // local failure): don't retry at once.
                        tracing::debug!(target: "cachecash::network", "sync import of {} stopped: {}", f.hash, f.message);
                        self.back_off(f.peer);
                        if let Some(p) = self.sync.round_peer.filter(|p| *p != f.peer) {
                            self.back_off(p);
                        }
                    }
                    self.sync.reset();
                }
            }
            Report::Block { peer, id, verdict } => {
                let name = verdict_name(&verdict.acceptance);
                self.report(&id, &peer, verdict.acceptance, "gossip_blocks", name);
                if let Some(reason) = verdict.ban {
                    self.ban(peer, reason, &verdict.detail);
                } else if verdict.unknown_parent {
                    // The forwarder is ahead of us: learn how far (at most
                    // once a second per peer).
                    if self
                        .peers
                        .get(&peer)
                        .is_some_and(|p| p.status_at.elapsed() >= Duration::from_secs(1))
                    {
                        self.request_status(peer);
                    }
                }
            }
            Report::Transaction { peer, id, verdict } => {
                let name = verdict_name(&verdict.acceptance);
                self.report(&id, &peer, verdict.acceptance, "gossip_transactions", name);
                if let Some(reason) = verdict.ban {
                    self.ban(peer, reason, &verdict.detail);
                }
            }
        }
    }
}
