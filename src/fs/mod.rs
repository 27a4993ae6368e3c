//! Files on disk: the small layer below `suite`, `integrity` and `report` that reads and
//! writes them safely.

pub mod read;
pub mod write;

pub use write::write_atomic;
