//! Reads of the chain: stored headers and blocks, the canonical index, and
//! state (accounts, escrows, the funder index) with their Merkle proofs at
//! a block. Nothing here writes.

use super::*;

impl Chain {
    /// A stored header by hash.
    pub fn header(&self, hash: &Hash) -> Result<Option<Header>, StoreError> {
        Ok(self.store.header(hash)?.map(|s| s.header))
    }

    /// A stored block by hash (canonical or a side block of the index).
    pub fn block(&self, hash: &Hash) -> Result<Option<Block>, StoreError> {
        let Some(stored) = self.store.header(hash)? else {
            return Ok(None);
        };
        let transactions = self.store.body(hash)?.ok_or_else(|| StoreError::Corrupt {
            what: format!("body of {hash}"),
            message: "missing".into(),
        })?;
        Ok(Some(Block {
            header: stored.header,
            transactions,
        }))
    }

    /// The canonical hash at `number`.
    pub fn canonical_hash(&self, number: BlockNumber) -> Result<Option<Hash>, StoreError> {
        self.store.canonical_hash(number)
    }

    /// The canonical header at `number`.
    pub fn header_by_number(&self, number: BlockNumber) -> Result<Option<Header>, StoreError> {
        match self.store.canonical_hash(number)? {
            None => Ok(None),
            Some(h) => self.header(&h),
        }
    }

    /// Resolves an optional block hash to a canonical header (the head for `None`).
    pub fn resolve(&self, at: Option<Hash>) -> Result<(Hash, Header), ReadError> {
        match at {
            None => {
                let h = self.head();
                Ok((h.hash, h.header))
            }
            Some(hash) => {
                let header = self
                    .header(&hash)?
                    .ok_or_else(|| ReadError::UnknownBlock(hash.to_hex()))?;
                // Only canonical blocks have state, and only those the
                // pruning horizon keeps.
                if self.store.canonical_hash(header.number)? != Some(hash) {
                    return Err(ReadError::UnknownBlock(hash.to_hex()));
                }
                let oldest = self.store.pruned_below()?;
                if header.number < oldest {
                    return Err(ReadError::Store(StoreError::StatePruned {
                        number: header.number,
                        oldest,
                    }));
                }
                Ok((hash, header))
            }
        }
    }

    /// An account at a block (the head for `None`); absent accounts are zero.
    pub fn account(
        &self,
        id: &AccountId,
        at: Option<Hash>,
    ) -> Result<(Account, Hash, Header), ReadError> {
        let (hash, header) = self.resolve(at)?;
        let account = commitment::read_account(&TreeView(self.store.as_ref()), id, header.number)
            .map_err(|e| ReadError::State(e.to_string()))?
            .unwrap_or_default();
        Ok((account, hash, header))
    }

    /// An escrow at a block (the head for `None`).
    pub fn escrow(
        &self,
        id: &EscrowId,
        at: Option<Hash>,
    ) -> Result<(Option<Escrow>, Hash, Header), ReadError> {
        let (hash, header) = self.resolve(at)?;
        let escrow = commitment::read_escrow(&TreeView(self.store.as_ref()), id, header.number)
            .map_err(|e| ReadError::State(e.to_string()))?;
        Ok((escrow, hash, header))
    }

    /// Up to `limit` open escrows funded by `funder` from index slot
    /// `start` on, at a block (the head for `None`).
    pub fn funder_escrows(
        &self,
        funder: &AccountId,
        at: Option<Hash>,
        start: u64,
        limit: u64,
    ) -> Result<Vec<EscrowId>, ReadError> {
        let (_, header) = self.resolve(at)?;
        let view = TreeView(self.store.as_ref());
        let state = commitment::TreeState::new(&view, header.number);
        cachecash_runtime::state::funder_escrows_page(&state, funder, start, limit)
            .map_err(|e| ReadError::State(e.to_string()))
    }

    /// An account with its Merkle proof against the block's state root.
    pub fn account_proof(
        &self,
        id: &AccountId,
        at: Option<Hash>,
    ) -> Result<(Option<Account>, AccountProof, Hash, Header), ReadError> {
        let (hash, header) = self.resolve(at)?;
        let (account, proof) = commitment::prove(&TreeView(self.store.as_ref()), id, header.number)
            .map_err(|e| ReadError::State(e.to_string()))?;
        Ok((account, proof, hash, header))
    }

    /// An escrow (or its absence) with its Merkle proof against the block's
    /// state root.
    pub fn escrow_proof(
        &self,
        id: &EscrowId,
        at: Option<Hash>,
    ) -> Result<(Option<Escrow>, AccountProof, Hash, Header), ReadError> {
        let (hash, header) = self.resolve(at)?;
        let (escrow, proof) =
            commitment::prove_escrow(&TreeView(self.store.as_ref()), id, header.number)
                .map_err(|e| ReadError::State(e.to_string()))?;
        Ok((escrow, proof, hash, header))
    }
}
