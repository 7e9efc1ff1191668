//! The node's state pruning mode (the storage module's "State pruning"
//! says what is kept and deleted).

/// How much state history the node keeps (see the storage module's
/// "State pruning").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StatePruning {
    /// The states of the reorganisation window: `maxReorgDepth` blocks
    /// below the head and up. Older states are deleted after each commit.
    #[default]
    Window,
    /// Every state ever, for queries at any historical block.
    Archive,
}

impl std::str::FromStr for StatePruning {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "window" => Ok(StatePruning::Window),
            "archive" => Ok(StatePruning::Archive),
            other => Err(format!(
                "unknown state pruning mode `{other}`: use `window` (keep the states of the reorganisation window) or `archive` (keep every state)"
            )),
        }
    }
}
