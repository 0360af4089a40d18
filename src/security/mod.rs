//! Authentication and authorization building blocks shared by the listeners and the APIs: SCRAM
//! (`scram`), client certificates' principals (`principal`) and access control lists (`acl`).

pub mod acl;
pub mod principal;
pub mod scram;

/// Whether `a` and `b` are equal, in a time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut difference = a.len() ^ b.len();
    for index in 0..a.len().max(b.len()) {
        let x = a.get(index).copied().unwrap_or(0);
        let y = b.get(index).copied().unwrap_or(0);
        difference |= usize::from(x ^ y);
    }
    difference == 0
}
