//! Balances in JSON are decimal strings: u128 does not fit a JSON number
//! that every client parses exactly.

use crate::primitives::Balance;

/// Serializes a balance as a decimal string.
pub fn serialize<S: serde::Serializer>(v: &Balance, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&v.to_string())
}

/// Deserializes a balance from a decimal string (or a small JSON number).
pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Balance, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Str(String),
        Num(u64),
    }
    match <Repr as serde::Deserialize>::deserialize(d)? {
        Repr::Str(s) => s.parse::<Balance>().map_err(|e| {
            serde::de::Error::custom(format!(
                "balance '{s}' is not a decimal integer in the smallest unit: {e}"
            ))
        }),
        Repr::Num(n) => Ok(Balance::from(n)),
    }
}
