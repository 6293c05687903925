//! The resource API: the bearer-token guard and the endpoints it protects.

pub mod cases;
pub mod grants;
pub mod guard;
pub mod idempotency;
pub mod me;
