//! The sign-in, consent and sign-out pages (form contract in DESIGN.md: `username`,
//! `password`, `decision=approve|deny`, and a `csrf_token` in every form).

mod consent;
mod sign_in;
mod sign_out;

pub use consent::*;
pub use sign_in::*;
pub use sign_out::*;
